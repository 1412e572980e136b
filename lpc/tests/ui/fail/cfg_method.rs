#[lpc::service]
pub trait Platform {
    #[cfg(unix)]
    fn uid(&self) -> u32;
}

fn main() {}
