//! Opens the segment `frames` of `segment-writer` read-only (this process cannot write it:
//! its mapping and descriptor are read-only), waits for a message (a futex wait on the
//! sequence word, at most 10 s), and prints it.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use lpc::Segment;

fn main() -> std::process::ExitCode {
    lpc_examples::report(run())
}

fn run() -> Result<(), lpc::Error> {
    let segment = Segment::open_read_only("frames")?;
    let until = Instant::now() + Duration::from_secs(10);
    let seq = loop {
        let seq = segment.load_u32(0, Ordering::Acquire)?;
        if seq != 0 || Instant::now() >= until {
            break seq;
        }
        segment.wait_u32(0, 0, until.saturating_duration_since(Instant::now()))?;
    };
    if seq == 0 {
        println!("no message in segment `frames` yet");
        return Ok(());
    }
    let len = segment.load_u64(8, Ordering::Acquire)?.min(4096 - 16) as usize;
    let mut bytes = vec![0u8; len];
    segment.read_at(16, &mut bytes)?;
    println!("read-only: {}", !segment.writable());
    println!("message {seq}: {}", String::from_utf8_lossy(&bytes));
    Ok(())
}
