#[lpc::service]
pub trait Lister {
    fn list(&self) -> impl Iterator<Item = String>;
}

fn main() {}
