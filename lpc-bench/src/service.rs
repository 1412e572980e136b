//! The service the lpc systems call: the small call, an echo of bytes, and a slow call.

use std::path::Path;

use lpc::{Loan, Server, ServerOptions};

use crate::large::{LargeServer, Shop};
use crate::oneway::{Noter, NotesServer};

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
    /// A loan passed both ways without touching its bytes but the first and last: reads those
    /// of `data` in place and returns a loan of `len` bytes with them written at its ends.
    fn pass_loan(&self, data: &Loan, len: u64) -> Loan;
    /// A slow call: sleeps `us` microseconds, then returns `us`.
    fn sleep_us(&self, us: u64) -> u64;
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
        data.read(0, out.as_mut().expect("our own loan"));
        out
    }

    fn pass_loan(&self, data: &Loan, len: u64) -> Loan {
        let ends = (
            data.get(0),
            data.len().checked_sub(1).and_then(|i| data.get(i)),
        );
        let mut out = Loan::new(len as usize).expect("a loan for the result");
        let bytes = out.as_mut().expect("our own loan");
        if let (Some(first), Some(b)) = (ends.0, bytes.first_mut()) {
            *b = first;
        }
        if let (Some(last), Some(b)) = (ends.1, bytes.last_mut()) {
            *b = last;
        }
        out
    }

    fn sleep_us(&self, us: u64) -> u64 {
        std::thread::sleep(std::time::Duration::from_micros(us));
        us
    }
}

/// Which interface a service child serves.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Served {
    Bench,
    /// [`Large`](crate::large::Large).
    Large,
    /// [`Notes`](crate::oneway::Notes), the one-way service.
    Notes,
}

/// Child side: serves `served` in `dir` under `name` until the parent leaves.
pub fn serve(
    dir: &Path,
    name: &str,
    block: bool,
    statistics: bool,
    served: Served,
) -> Result<(), String> {
    let options = ServerOptions::new()
        .runtime_dir(dir)
        .spin(!block)
        .statistics(statistics);
    let server = Server::bind_with(name, options).map_err(|e| e.to_string())?;
    lpc_bench::child::ready();
    match served {
        Served::Large => server.serve(LargeServer::new(Shop)),
        Served::Bench => server.serve(BenchServer::new(Bencher)),
        Served::Notes => server.serve(NotesServer::new(Noter::default())),
    }
    .map_err(|e| e.to_string())
}
