#[lpc::service]
pub trait Counter {
    fn get(self: Box<Self>) -> u64;
}

fn main() {}
