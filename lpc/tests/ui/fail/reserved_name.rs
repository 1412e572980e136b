#[lpc::service]
pub trait Network {
    fn connect(&self, address: String) -> bool;
}

fn main() {}
