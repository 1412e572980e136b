//! `lpc-chaos`: see [`unix/lpc-chaos.rs`](unix/lpc-chaos.rs). Unix only: it counts and passes descriptors
//! (`/proc`, `OwnedFd`), which the Windows build of the tests does not port.

#[cfg(unix)]
#[path = "unix/lpc-chaos.rs"]
mod imp;

#[cfg(unix)]
fn main() -> std::process::ExitCode {
    imp::main()
}

#[cfg(not(unix))]
fn main() {
    eprintln!("lpc-chaos runs on Unix only");
    std::process::exit(2);
}
