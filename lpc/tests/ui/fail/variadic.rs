#[lpc::service]
pub trait Logger {
    fn log(&self, format: String, ...);
}

fn main() {}
