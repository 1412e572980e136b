#[lpc::service]
pub trait Store<V> {
    fn get(&self, key: String) -> V;
}

fn main() {}
