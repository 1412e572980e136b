#[lpc::service]
pub trait Logger {
    fn log(&self, format: String, args: ...);
}

fn main() {}
