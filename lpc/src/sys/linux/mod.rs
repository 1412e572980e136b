//! Linux implementation of the `sys` interface.

mod futex;
mod memory;
mod process;
mod reactor;
mod socket;

pub(crate) use futex::{wait, wake};
pub(crate) use memory::{Mapping, SharedMemory};
pub(crate) use process::{
    can_run_apart, create_private_dir, current_uid, file_identity, make_reachable, monotonic_ns,
    process_name, raise_open_file_limit, DirLock,
};
pub(crate) use reactor::{Reactor, ReactorEvent};
pub(crate) use socket::{Listener, Stream};
