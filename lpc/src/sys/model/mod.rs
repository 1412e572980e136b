//! The model backend: the `sys` contract on a machine that the loom model checker explores,
//! selected instead of the OS backend under `RUSTFLAGS="--cfg loom"`, so that loom runs the
//! real `shm` and `channel` code (see `channel::model`) rather than a copy of the protocol.
//!
//! | piece | in the model |
//! |---|---|
//! | [`AtomicU32`](crate::sys::AtomicU32), [`fence`](crate::sys::fence) | loom's: every load, store and fence on shared memory is a point where loom switches threads and chooses what a load sees |
//! | [`SharedMemory`], [`Mapping`] | heap memory made of a loom atomic per 4-byte word and plain bytes whose accesses loom tracks per 64-byte line, shared by every mapping of the object (`memory`) |
//! | [`wait`], [`wake`] | a futex whose value check and sleep are atomic with respect to wakers, as in the kernel; **a wait ignores its timeout** (`futex`) |
//! | [`Stream`] | an in-memory pair: messages with an attached [`SharedMemory`], the peer alive while its end is; a receive ignores its deadline (`endpoint`) |
//! | [`thread_identity`], [`thread_alive`] | a number per modelled thread; every thread alive |
//! | [`monotonic_ns`] | a clock that stands still: loom needs every execution to be deterministic, so deadlines in the model never pass |
//! | [`can_run_apart`] | false: nothing spins in the model |
//! | everything else | stubs: names, sockets, reactors and processes fail with `ErrorKind::Unsupported` |
//!
//! Loom runs the threads of a model one at a time, on one OS thread, which is what makes the
//! few `unsafe` blocks here sound.

mod endpoint;
mod futex;
mod memory;

use std::io;
use std::path::Path;

pub(crate) use endpoint::{Listener, Reactor, Received, Stream};
pub(crate) use futex::{wait_in, wake_in};
pub(crate) use memory::{Mapping, SharedMemory};

use crate::sys::UserId;

/// Explores `f` with loom, with at most `bound` preemptions (unless `LOOM_MAX_PREEMPTIONS`
/// says otherwise), and says (with `--nocapture`) how many executions it took: the driver of
/// every model test (`channel::model`, `shared::model`).
#[cfg(test)]
pub(crate) fn explore(bound: usize, f: impl Fn() + Sync + Send + 'static) {
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
    use std::sync::Arc;
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound.get_or_insert(bound);
    let executions = Arc::new(AtomicUsize::new(0));
    let counted = executions.clone();
    let started = std::time::Instant::now();
    builder.check(move || {
        counted.fetch_add(1, Relaxed);
        f()
    });
    eprintln!(
        "loom: {} executions in {:.1?} (preemption bound {:?})",
        executions.load(Relaxed),
        started.elapsed(),
        builder.preemption_bound,
    );
}

// `lpc::floor` and `lpc::testing` work on `std` words and real processes: not modelled.
#[cfg(feature = "test-util")]
compile_error!("the loom model (cfg(loom)) does not support the `test-util` feature");

fn unsupported(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        format!("{what} is not modelled under loom"),
    )
}

/// The model's fixed user.
pub(crate) fn current_user() -> UserId {
    UserId::from_uid(0)
}

/// Who a modelled thread is (for shared values' writer locks): a number of its own, never 0
/// (a lock's "free").
pub(crate) fn thread_identity() -> u64 {
    // Bookkeeping of the model, not modelled: loom does not see it.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    loom::thread_local! {
        static ID: u64 = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    ID.with(|id| *id)
}

/// Every modelled thread is alive: the model's waits never time out, which is when a writer
/// lock's waiter asks (a writer "dies" in the model by stopping mid-write: `shared::model`).
pub(crate) fn thread_alive(_identity: u64) -> bool {
    true
}

/// The model's clock, which stands still (see the module docs).
pub(crate) fn monotonic_ns() -> u64 {
    1_000_000_000
}

/// Nothing spins in the model: a spin is a loop of loads that loom would have to explore.
pub(crate) fn can_run_apart(_peer: Option<u32>) -> bool {
    false
}

pub(crate) fn process_name(_pid: u32) -> String {
    String::new()
}

pub(crate) fn process_alive(_pid: u32) -> bool {
    true
}

pub(crate) fn raise_open_file_limit() -> u64 {
    u64::MAX
}

/// Not modelled.
pub(crate) struct DirLock;

impl DirLock {
    pub(crate) fn acquire(_dir: &Path) -> io::Result<DirLock> {
        Err(unsupported("a directory lock"))
    }
}

/// Not modelled: no file has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileIdentity;

pub(crate) fn file_identity(_path: &Path) -> io::Result<FileIdentity> {
    Err(unsupported("a file identity"))
}

pub(crate) fn create_private_dir(_path: &Path) -> io::Result<()> {
    Err(unsupported("a private directory"))
}

pub(crate) fn open_to_other_users(_dir: &Path, _socket: &Path) -> io::Result<()> {
    Err(unsupported("opening a directory to other users"))
}

pub(crate) const ENDPOINT_ENV: &str = "LPC_ENDPOINT_FD";

/// No children under the model: std's type, as on Linux.
pub(crate) type ChildProcess = std::process::Child;

pub(crate) fn spawn_with_endpoint(
    _command: &mut std::process::Command,
    _endpoint: &Stream,
) -> io::Result<ChildProcess> {
    Err(unsupported("spawning a process"))
}
