//! The service the lpc systems call: the small call and an echo of bytes.

use std::path::Path;

use lpc::{Loan, Server, ServerOptions};

/// What `lpc-bench` calls.
#[lpc::service]
pub trait Bench {
    /// The small call: adds two numbers (wrapping on overflow).
    fn add(&self, a: i32, b: i32) -> i32;
    /// Returns `data` unchanged: `data.len()` bytes in and as many out.
    fn echo(&self, data: Vec<u8>) -> Vec<u8>;
    /// The same through loaned buffers: the service reads `data` in place and copies it into
    /// a loan of its own, which the caller reads in place.
    fn echo_loan(&self, data: &Loan) -> Loan;
}

/// The service's implementation.
pub struct Bencher;

impl Bench for Bencher {
    fn add(&self, a: i32, b: i32) -> i32 {
        a.wrapping_add(b)
    }

    fn echo(&self, data: Vec<u8>) -> Vec<u8> {
        data
    }

    fn echo_loan(&self, data: &Loan) -> Loan {
        // A failure here (no memory) reaches the caller as `Error::Remote`.
        let mut out = Loan::new(data.len()).expect("a loan for the result");
        out.as_mut().expect("our own loan").copy_from_slice(data);
        out
    }
}

/// Child side: serves [`Bench`] in `dir` under `name` until the parent leaves.
pub fn serve(dir: &Path, name: &str, block: bool, statistics: bool) -> Result<(), String> {
    let options = ServerOptions::new()
        .runtime_dir(dir)
        .spin(!block)
        .statistics(statistics);
    let server = Server::bind_with(name, options).map_err(|e| e.to_string())?;
    lpc_bench::child::ready();
    server
        .serve(BenchServer::new(Bencher))
        .map_err(|e| e.to_string())
}
