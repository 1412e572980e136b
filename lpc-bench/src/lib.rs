//! The parts of `lpc-bench` that the peers' driver (`bench-peers`, outside the workspace) shares
//! with it: timing and summarising round trips, the parent/child process pair, CPU placement,
//! and the measurement record both print.

pub mod affinity;
pub mod child;
pub mod record;
pub mod stats;
