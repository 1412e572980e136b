#[lpc::service]
pub struct Calc;

fn main() {}
