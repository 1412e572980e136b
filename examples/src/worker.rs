//! A crash-prone worker, served by a child process (`spawn-worker`): the way to isolate a
//! native library that may crash, since a crash then takes only the child with it.

/// What the worker does.
#[lpc::service]
pub trait Worker {
    /// `n * n`; for 13 the "library" the worker wraps crashes (the process aborts).
    fn square(&self, n: u64) -> u64;
    /// The worker's process id.
    fn pid(&self) -> u32;
}

/// The worker the child runs.
pub struct Squarer;

impl Worker for Squarer {
    fn square(&self, n: u64) -> u64 {
        if n == 13 {
            // A bug in native code: no unwinding, no error, the process is gone.
            std::process::abort();
        }
        n * n
    }

    fn pid(&self) -> u32 {
        std::process::id()
    }
}
