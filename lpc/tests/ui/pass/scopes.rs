// Visibility follows the trait; unused generated items do not warn; traits written by
// `macro_rules!` work; a trait may have no methods.
#![deny(warnings)]

mod private {
    #[lpc::service]
    trait Hidden {
        fn get(&self) -> u32;
    }
}

pub(crate) mod crate_visible {
    #[lpc::service]
    pub(crate) trait KvStore {
        fn put(&self, key: String, value: Vec<u8>);
        fn get(&self, key: &str) -> Option<Vec<u8>>;
    }
}

macro_rules! service_of {
    ($name:ident, $arg:ty, $ret:ty) => {
        #[lpc::service]
        pub trait $name {
            fn call(&self, arg: $arg) -> $ret;
        }
    };
}

service_of!(Echo, Vec<u8>, Vec<u8>);

/// A service with no methods yet.
#[lpc::service]
pub trait Empty {}

struct EchoImpl;

impl Echo for EchoImpl {
    fn call(&self, arg: Vec<u8>) -> Vec<u8> {
        arg
    }
}

fn main() {
    let _ = crate_visible::KV_STORE_INTERFACE.name;
    let _ = EchoServer::new(EchoImpl);
    assert!(EMPTY_INTERFACE.methods.is_empty());
    assert_eq!(
        ECHO_INTERFACE.methods[0].signature,
        "fn call(&self, arg: Vec<u8>) -> Vec<u8>"
    );
}
