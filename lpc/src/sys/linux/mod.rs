//! Linux implementation of the `sys` interface.

mod futex;
mod memory;
mod named;
mod process;
mod reactor;
mod socket;

pub(crate) use futex::{wait_in, wake_in};
pub(crate) use memory::{Mapping, SharedMemory};
pub(crate) use named::{
    current_pid, holds, pid_namespace, thread_alive, thread_identity, NameFile, ObjectIdentity,
    MAX_NAME_FILE,
};
pub(crate) use process::{
    can_run_apart, create_private_dir, current_user, file_identity, monotonic_ns,
    open_to_other_users, process_alive, process_name, raise_open_file_limit, spawn_with_endpoint,
    ChildProcess, DirLock, FileIdentity, ENDPOINT_ENV,
};
pub(crate) use reactor::Reactor;
pub(crate) use socket::{Listener, Received, Stream};
