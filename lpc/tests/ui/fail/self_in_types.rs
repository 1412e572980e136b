#[lpc::service]
pub trait Node {
    fn child(&self) -> Option<Box<Self>>;
}

fn main() {}
