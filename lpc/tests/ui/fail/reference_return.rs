#[lpc::service]
pub trait Store {
    fn name(&self) -> &str;
}

fn main() {}
