#[lpc::service]
pub trait Memory {
    unsafe fn read(&self, address: usize) -> u8;
}

fn main() {}
