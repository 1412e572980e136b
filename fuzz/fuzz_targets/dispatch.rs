//! The generated dispatchers (postcard and JSON) of the sample services never panic and keep
//! their contract, whatever the arguments. The input format is in `fuzz/src/lib.rs`.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use lpc_fuzz::{run_dispatch, Services};

static SERVICES: OnceLock<Services> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    run_dispatch(SERVICES.get_or_init(Services::default), data);
});
