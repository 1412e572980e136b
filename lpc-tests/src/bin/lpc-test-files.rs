//! `lpc-test-files`: see [`unix/lpc-test-files.rs`](unix/lpc-test-files.rs). Unix only: it counts and passes descriptors
//! (`/proc`, `OwnedFd`), which the Windows build of the tests does not port.

#[cfg(unix)]
#[path = "unix/lpc-test-files.rs"]
mod imp;

#[cfg(unix)]
fn main() -> Result<(), lpc::Error> {
    imp::main()
}

#[cfg(not(unix))]
fn main() {
    eprintln!("lpc-test-files runs on Unix only");
    std::process::exit(2);
}
