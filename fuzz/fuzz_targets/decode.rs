//! Decoding a peer's bytes never allocates more than the decode budget allows, nor recurses
//! deeper than its limit, whatever the bytes claim: arbitrary bytes decoded as each kind of
//! value a peer sends (handshake messages, and call payloads of types that are small on the
//! wire and large in memory), inline, spilled and as JSON. Run under libFuzzer's memory limits
//! (`-rss_limit_mb`, `-malloc_limit_mb`; see docs/fuzzing.md): an allocation the peer could
//! size, or a stack overflow, is a crash.
//!
//! Input: byte 0 selects the type (`% TYPES`) and the path (`/ TYPES % 3`: private memory,
//! a spill buffer, JSON); byte 1 the limit (0: none; else 2^(byte % 32) bytes); the rest is
//! the payload.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use lpc::testing::{decode_message, SpillArea};
use lpc_fuzz::sizes::{decode_as, Path, TYPES};

/// Inputs are at most this long (`-max_len`); the spill buffer holds any of them.
const AREA: usize = 1 << 20;

static SPILL: OnceLock<SpillArea> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    // Every input is also a socket message (handshake messages and notices).
    let _ = decode_message(data);
    let [selector, limit, payload @ ..] = data else {
        return;
    };
    let limit = match limit {
        0 => u64::MAX,
        n => 1u64 << (n % 32),
    };
    let which = usize::from(*selector) % TYPES;
    let path = match usize::from(*selector) / TYPES % 3 {
        0 => Path::Private,
        1 => Path::Spilled(SPILL.get_or_init(|| SpillArea::new(AREA).expect("a spill buffer"))),
        _ => Path::Json,
    };
    let _ = decode_as(which, path, payload, limit);
});
