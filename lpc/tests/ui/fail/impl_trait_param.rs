#[lpc::service]
pub trait Printer {
    fn print(&self, text: impl std::fmt::Display);
}

fn main() {}
