//! `lpc-test-files-client`: see [`unix/lpc-test-files-client.rs`](unix/lpc-test-files-client.rs). Unix only: it counts and passes descriptors
//! (`/proc`, `OwnedFd`), which the Windows build of the tests does not port.

#[cfg(unix)]
#[path = "unix/lpc-test-files-client.rs"]
mod imp;

#[cfg(unix)]
fn main() {
    imp::main()
}

#[cfg(not(unix))]
fn main() {
    eprintln!("lpc-test-files-client runs on Unix only");
    std::process::exit(2);
}
