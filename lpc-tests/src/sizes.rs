//! The interface of the memory-limit tests (`tests/sizes.rs`): parameters and results that are
//! small on the wire and large in memory, served by `lpc-sizes-service` and called by
//! `lpc-sizes-client`, each under a limit on its address space (`RLIMIT_AS`).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// 1,032 bytes in memory; `Small` is one byte on the wire (the size gap is the point).
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Wide {
    /// One byte on the wire.
    Small,
    /// 1,024 bytes of payload.
    Large([u64; 32], [u64; 32], [u64; 32], [u64; 32]),
}

/// A recursive type: one byte per link on the wire, a level of recursion in the decoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Chain {
    /// The end.
    End,
    /// One more link.
    Link(Box<Chain>),
}

impl Chain {
    /// A chain of `links` links.
    pub fn of(links: u64) -> Chain {
        (0..links).fold(Chain::End, |chain, _| Chain::Link(Box::new(chain)))
    }

    /// Its number of links.
    pub fn links(&self) -> u64 {
        let mut chain = self;
        let mut links = 0;
        while let Chain::Link(next) = chain {
            chain = next;
            links += 1;
        }
        links
    }
}

/// The memory-limit tests' interface: `count_*` take what a hostile client lies about, the
/// others return what a hostile service lies about.
#[lpc::service]
pub trait Sizes {
    /// `a + b`, wrapping: the honest call.
    fn add(&self, a: u64, b: u64) -> u64;
    /// How many of `items` are `Small`.
    fn count_wide(&self, items: Vec<Wide>) -> u64;
    /// How many of `items` are `Small`.
    fn count_boxed(&self, items: Vec<Box<Wide>>) -> u64;
    /// How many entries `items` has.
    fn count_map(&self, items: HashMap<u32, Wide>) -> u64;
    /// How many units `items` has.
    fn count_units(&self, items: Vec<()>) -> u64;
    /// How many bytes `items` hold.
    fn count_strings(&self, items: Vec<String>) -> u64;
    /// The links of `chain`.
    fn chain_len(&self, chain: Chain) -> u64;
    /// `n` small wides.
    fn wides(&self, n: u64) -> Vec<Wide>;
    /// `n` boxed small wides.
    fn boxed(&self, n: u64) -> Vec<Box<Wide>>;
    /// `n` units.
    fn units(&self, n: u64) -> Vec<()>;
    /// A chain of `n` links.
    fn chain(&self, n: u64) -> Chain;
    /// `n` empty strings.
    fn strings(&self, n: u64) -> Vec<String>;
}

/// What `lpc-sizes-service` runs.
pub struct SizesService;

impl Sizes for SizesService {
    fn add(&self, a: u64, b: u64) -> u64 {
        a.wrapping_add(b)
    }
    fn count_wide(&self, items: Vec<Wide>) -> u64 {
        items.iter().filter(|w| **w == Wide::Small).count() as u64
    }
    fn count_boxed(&self, items: Vec<Box<Wide>>) -> u64 {
        items.iter().filter(|w| ***w == Wide::Small).count() as u64
    }
    fn count_map(&self, items: HashMap<u32, Wide>) -> u64 {
        items.len() as u64
    }
    fn count_units(&self, items: Vec<()>) -> u64 {
        items.len() as u64
    }
    fn count_strings(&self, items: Vec<String>) -> u64 {
        items.iter().map(|s| s.len() as u64).sum()
    }
    fn chain_len(&self, chain: Chain) -> u64 {
        chain.links()
    }
    fn wides(&self, n: u64) -> Vec<Wide> {
        vec![Wide::Small; n.min(1000) as usize]
    }
    fn boxed(&self, n: u64) -> Vec<Box<Wide>> {
        vec![Box::new(Wide::Small); n.min(1000) as usize]
    }
    fn units(&self, n: u64) -> Vec<()> {
        vec![(); n.min(1000) as usize]
    }
    fn chain(&self, n: u64) -> Chain {
        Chain::of(n.min(100))
    }
    fn strings(&self, n: u64) -> Vec<String> {
        vec![String::new(); n.min(1000) as usize]
    }
}

/// Limits this process's address space to `bytes` (`RLIMIT_AS`, soft and hard): an allocation
/// beyond it fails, which Rust's infallible allocations turn into an abort.
#[cfg(not(unix))]
pub fn limit_memory(_bytes: u64) {
    panic!("limit_memory uses RLIMIT_AS, which Windows does not have (a job's memory limit would be its counterpart; not ported)");
}

/// See the other `limit_memory`.
#[cfg(unix)]
pub fn limit_memory(bytes: u64) {
    use rustix::process::{setrlimit, Resource, Rlimit};
    setrlimit(
        Resource::As,
        Rlimit {
            current: Some(bytes),
            maximum: Some(bytes),
        },
    )
    .expect("setrlimit(RLIMIT_AS)");
}

/// This process's peak address space (`VmPeak`) and peak resident memory (`VmHWM`), in bytes.
pub fn memory_peaks() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmPeak:"), field("VmHWM:"))
}
