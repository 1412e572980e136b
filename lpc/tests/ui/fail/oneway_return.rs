// A one-way method cannot return anything, take `&mut` or a loan, and `#[lpc(...)]` knows only
// `oneway`.
#[lpc::service]
pub trait Logger {
    #[lpc(oneway)]
    fn log(&self, line: String) -> bool;

    #[lpc(oneway)]
    fn update(&self, state: &mut u32);

    #[lpc(oneway)]
    fn lend(&self, bytes: &lpc::Loan);

    #[lpc(sometimes)]
    fn other(&self);
}

fn main() {}
