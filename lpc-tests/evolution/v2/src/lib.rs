//! Build 2 of the evolution tests' interfaces: `lpc-tests/evolution/interface.rs` compiled
//! with the `v2` feature. `lpc-tests` serves it from `lpc-evolution-v2-service` and calls it
//! from `tests/evolution.rs`.

#[path = "../../interface.rs"]
mod interface;

pub use interface::*;
