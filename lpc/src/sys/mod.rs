//! The operating-system layer: the only place that talks to the kernel.
//!
//! Everything above this module sees portable types — [`SharedMemory`], [`Mapping`],
//! [`Listener`], [`Stream`], [`Reactor`], the futex-style [`wait`]/[`wake`] on a 32-bit word —
//! never a file descriptor. One submodule per operating system implements them; the Linux one
//! is built on `rustix`, and most of its calls are safe wrappers. The `unsafe` that remains
//! (mapping memory) is confined here, each block with its justification.

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub(crate) use linux::*;

#[cfg(not(target_os = "linux"))]
compile_error!("lpc supports Linux; the Windows backend is planned behind this same interface");

/// The credentials of the process at the other end of a connection, as the kernel recorded
/// them when it connected (not anything the peer wrote).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCredentials {
    /// Process id.
    pub pid: u32,
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// How a [`wait`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WaitOutcome {
    /// Woken, or the word no longer held the expected value, or a signal: re-check the word.
    Woken,
    /// The timeout passed.
    TimedOut,
}
