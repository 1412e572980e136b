#[lpc::service]
pub trait Counter {
    fn finish(mut self) -> u64;
}

fn main() {}
