#[lpc::service]
pub trait Counter {
    fn create(start: u64) -> u64;
    fn version() -> u32;
}

fn main() {}
