// A loan the service receives is the caller's: it cannot travel back in a `&mut` parameter.
#[lpc::service]
pub trait Buffers {
    fn fill(&self, buffer: &mut lpc::Loan);
    fn fill_some(&self, buffers: &mut Vec<lpc::Loan>) -> u32;
}

fn main() {}
