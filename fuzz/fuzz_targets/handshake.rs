//! The socket message decoder (handshake and notices) never panics, whatever a peer sends.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = lpc::testing::decode_message(data);
});
