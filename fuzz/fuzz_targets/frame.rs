//! The frame header decoder never panics, whatever a peer wrote into a slot.

#![no_main]

use libfuzzer_sys::fuzz_target;
use lpc::testing::{decode_frame, FRAME_SIZE};

fuzz_target!(|data: &[u8]| {
    // The input as is (mostly the wrong size, which must be an error, not a panic)...
    let _ = decode_frame(data);
    // ...and every whole frame in it, so that most inputs reach the field checks.
    for chunk in data.chunks_exact(FRAME_SIZE) {
        let _ = decode_frame(chunk);
    }
});
