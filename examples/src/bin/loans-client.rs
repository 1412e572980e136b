//! The image client: `loans-client [--name images]` lends the service a 64 MiB buffer and
//! reads one the service filled, both in place.
//!
//! `loans-client --bench [--bytes N] [--rounds N]` sends the same N bytes (default 36 MB) the
//! four ways of `lpc_examples::loans` and prints how long each call takes; build with
//! `--release` for meaningful numbers.

use std::time::{Duration, Instant};

use lpc_examples::loans::{checksum_of, checksum_of_loan, Frame, FrameBytes, ImagesClient};

fn main() -> std::process::ExitCode {
    lpc_examples::report(run())
}

fn run() -> Result<(), lpc::Error> {
    let images = ImagesClient::connect(&lpc_examples::name_arg("images"))?;
    if std::env::args().any(|a| a == "--bench") {
        let bytes = lpc_examples::number_arg("--bytes", 36_000_000);
        let rounds = lpc_examples::number_arg("--rounds", 10).max(1);
        return bench(&images, bytes as usize, rounds as usize);
    }

    // A loan: a buffer in this connection's shared memory, written once, in place.
    let len = 64 << 20;
    let mut frame = images.client().loan(len)?;
    let pixels = frame.as_mut().expect("our own loan can be written");
    for (i, byte) in pixels.iter_mut().enumerate() {
        *byte = (i % 251) as u8;
    }
    let expected = checksum_of(frame.as_slice().expect("our own loan"));
    let sum = images.checksum_loan(&frame)?; // the service reads the bytes where they are
    println!(
        "lent {} MiB: the service's checksum {sum} {} ours",
        len >> 20,
        if sum == expected {
            "matches"
        } else {
            "DIFFERS FROM"
        }
    );

    // A loan as a result: the service fills a buffer of this connection, we read it in place.
    let rendered = images.render(16 << 20, 7)?;
    println!(
        "the service rendered {} MiB of {}s; checksum {}",
        rendered.len() >> 20,
        rendered.to_vec().first().copied().unwrap_or_default(),
        checksum_of_loan(&rendered)
    );
    Ok(())
}

/// Times each way of sending `len` bytes, `rounds` calls each after a warm-up call, taking the
/// four in turn so that they share whatever else the machine does.
fn bench(images: &ImagesClient, len: usize, rounds: usize) -> Result<(), lpc::Error> {
    let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    let expected = checksum_of(&data);
    let frame = Frame {
        width: len as u32,
        height: 1,
        pixels: data.clone(),
    };
    let frame_bytes = FrameBytes {
        width: len as u32,
        height: 1,
        pixels: data.clone(),
    };
    let mut loan = images.client().loan(len)?;
    loan.as_mut()
        .expect("our own loan can be written")
        .copy_from_slice(&data);

    let ways = [
        "&[u8] parameter",
        "Vec<u8> field of a struct",
        "Vec<u8> field, serde_bytes",
        "&lpc::Loan parameter",
    ];
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); ways.len()];
    for round in 0..=rounds {
        for (way, samples) in times.iter_mut().enumerate() {
            let started = Instant::now();
            let sum = match way {
                0 => images.checksum(&data)?,
                1 => images.checksum_frame(&frame)?,
                2 => images.checksum_frame_bytes(&frame_bytes)?,
                _ => images.checksum_loan(&loan)?,
            };
            let took = started.elapsed();
            assert_eq!(sum, expected, "{}: wrong checksum", ways[way]);
            if round > 0 {
                samples.push(took);
            }
        }
    }
    println!(
        "{:.1} MB ({len} bytes) to the service, which sums them; {rounds} calls each after a warm-up:",
        len as f64 / 1e6
    );
    for (way, samples) in ways.iter().zip(&mut times) {
        samples.sort();
        println!(
            "  {way:<28} median {:>8.2} ms   min {:>8.2} ms",
            ms(samples[samples.len() / 2]),
            ms(samples[0])
        );
    }
    let local = Instant::now();
    let sum = checksum_of(&data);
    println!(
        "  (the sum alone, in this process: {:.2} ms; all checksums agree: {})",
        ms(local.elapsed()),
        sum == expected
    );
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
