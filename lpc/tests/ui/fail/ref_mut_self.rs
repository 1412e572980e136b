#[lpc::service]
pub trait Counter {
    fn increment(&mut self) -> u64;
}

fn main() {}
