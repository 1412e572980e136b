//! A named file mapping, the lpc way: creates the 4 KiB segment `frames`, writes a message in
//! it, publishes it through a word that readers wait on (a futex), and holds the segment until
//! Enter (or end of input). `segment-reader` opens it read-only in another process.
//!
//! Layout (the two programs' own protocol): offset 0, a 32-bit sequence number (0: nothing
//! yet); offset 8, the message length (64-bit); offset 16, the message bytes.

use std::io::BufRead;
use std::sync::atomic::Ordering;

use lpc::Segment;

fn main() -> std::process::ExitCode {
    lpc_examples::report(run())
}

fn run() -> Result<(), lpc::Error> {
    let segment = Segment::create("frames", 4096)?;
    let message = format!("hello from segment-writer (pid {})", std::process::id());
    segment.write_at(16, message.as_bytes())?;
    segment
        .atomic_u64(8)?
        .store(message.len() as u64, Ordering::Release);
    // Publish: readers that see the new sequence number see the message before it.
    segment.atomic_u32(0)?.fetch_add(1, Ordering::Release);
    segment.wake_u32(0, u32::MAX)?;
    println!(
        "wrote {:?} to segment `frames` ({} bytes); holding it until Enter",
        message,
        segment.len()
    );
    let _ = std::io::stdin().lock().lines().next();
    Ok(())
}
