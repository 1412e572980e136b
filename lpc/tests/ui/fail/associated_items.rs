#[lpc::service]
pub trait Store {
    type Value;
    const CAPACITY: usize;
    fn get(&self, key: String) -> u32;
}

fn main() {}
