#[lpc::service]
pub trait Store {
    fn get<T: serde::de::DeserializeOwned>(&self, key: &str) -> T;
}

fn main() {}
