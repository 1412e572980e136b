#[lpc::service]
pub trait Store {
    fn get(&self, key: &&str) -> u32;
    fn update(&self, value: &mut &u32);
}

fn main() {}
