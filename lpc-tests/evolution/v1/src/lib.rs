//! Build 1 of the evolution tests' interfaces: `lpc-tests/evolution/interface.rs` compiled
//! without the `v2` feature. `lpc-tests` serves it from `lpc-evolution-v1-service` and calls it
//! from `tests/evolution.rs`.

#[path = "../../interface.rs"]
mod interface;

pub use interface::*;
