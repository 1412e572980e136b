// `m_fybjm` and `m_jxaba` have the same FNV-1a method id.
#[lpc::service]
pub trait Colliding {
    fn m_fybjm(&self);
    fn m_jxaba(&self);
}

fn main() {}
