#[lpc::service]
pub trait Filter {
    fn invert(&self, pixels: &mut [u8]);
}

fn main() {}
