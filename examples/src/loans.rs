//! Large byte buffers: four ways to send the same bytes to a service, and a result the
//! service fills in place.
//!
//! - `checksum(&[u8])`: a byte buffer as a parameter of its own. lpc sends top-level
//!   `&[u8]` and `Vec<u8>` parameters and results as one block of bytes.
//! - `checksum_frame(&Frame)`: the bytes in a plain `Vec<u8>` field of a struct. serde sees
//!   such a field as a sequence of `u8`, so it is encoded and decoded one byte at a time:
//!   several times slower for large buffers (see `loans-client --bench`).
//! - `checksum_frame_bytes(&FrameBytes)`: the same field marked
//!   `#[serde(with = "serde_bytes")]`, which serde encodes as one block again.
//! - `checksum_loan(&Loan)`: an [`lpc::Loan`], a buffer in the connection's shared memory that
//!   the client fills in place and the service reads where it is: no copy at all.
//!
//! `render` returns a `Loan` the service fills, which the client reads in place.

use lpc::Loan;
use serde::{Deserialize, Serialize};

/// An image whose pixels are a plain `Vec<u8>` field: a sequence of `u8` to serde, sent one
/// byte at a time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frame {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// One byte per pixel.
    pub pixels: Vec<u8>,
}

/// The same image with its pixels marked `#[serde(with = "serde_bytes")]`: serde sends them
/// as one block of bytes, as fast as a `&[u8]` parameter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameBytes {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// One byte per pixel.
    #[serde(with = "serde_bytes")]
    pub pixels: Vec<u8>,
}

/// The image service's interface.
#[lpc::service]
pub trait Images {
    /// The checksum of `pixels`, sent as a parameter of its own.
    fn checksum(&self, pixels: &[u8]) -> u64;
    /// The checksum of a frame's pixels (a plain `Vec<u8>` field).
    fn checksum_frame(&self, frame: &Frame) -> u64;
    /// The checksum of a frame's pixels (a `serde_bytes` field).
    fn checksum_frame_bytes(&self, frame: &FrameBytes) -> u64;
    /// The checksum of a lent buffer, read in place in shared memory.
    fn checksum_loan(&self, pixels: &Loan) -> u64;
    /// A buffer of `len` bytes, each `value`, that the service fills in place and the client
    /// reads in place.
    fn render(&self, len: u64, value: u8) -> Loan;
}

/// The sum of all bytes: what every checksum method computes, here and in the client.
pub fn checksum_of(bytes: &[u8]) -> u64 {
    bytes.iter().map(|&b| u64::from(b)).sum()
}

/// [`checksum_of`] a loan's bytes, read a cache-sized chunk at a time: a received loan lives
/// in the other process's memory, which lpc copies out rather than lend you a reference into.
pub fn checksum_of_loan(loan: &Loan) -> u64 {
    let mut sum = 0;
    loan.for_each_chunk(|chunk| sum += checksum_of(chunk));
    sum
}

/// The image service.
pub struct ImageService;

impl Images for ImageService {
    fn checksum(&self, pixels: &[u8]) -> u64 {
        checksum_of(pixels)
    }

    fn checksum_frame(&self, frame: &Frame) -> u64 {
        checksum_of(&frame.pixels)
    }

    fn checksum_frame_bytes(&self, frame: &FrameBytes) -> u64 {
        checksum_of(&frame.pixels)
    }

    fn checksum_loan(&self, pixels: &Loan) -> u64 {
        // The bytes stay where the client wrote them, in its memory (which this process maps
        // read-only); they are read in cache-sized copies, never through a reference the
        // client could change under us.
        checksum_of_loan(pixels)
    }

    fn render(&self, len: u64, value: u8) -> Loan {
        // Inside a handler, `Loan::new` takes a buffer of the caller's connection. A handler
        // cannot return an lpc error, so a failure here panics (the caller gets
        // `Error::Remote`); a real service would rather return a `Result`.
        let len = usize::try_from(len).expect("length fits in memory");
        let mut out = Loan::new(len).expect("no shared memory for the result");
        out.as_mut()
            .expect("a loan made here can be written")
            .fill(value);
        out
    }
}
