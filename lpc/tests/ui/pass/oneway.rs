// One-way methods: plain values, strings and byte slices; the client method returns
// `Result<(), lpc::Error>` and the trait keeps no `#[lpc]` attribute.
#[lpc::service]
pub trait Logger {
    #[lpc(oneway)]
    fn log(&self, line: String);

    /// Docs are kept.
    #[lpc(oneway)]
    fn copy_data(&self, kind: u32, bytes: &[u8]);

    fn flush(&self) -> u64;
}

struct Impl;

impl Logger for Impl {
    fn log(&self, _line: String) {}
    fn copy_data(&self, _kind: u32, _bytes: &[u8]) {}
    fn flush(&self) -> u64 {
        0
    }
}

fn main() {
    let _server = LoggerServer::new(Impl);
    let post: fn(&LoggerClient, String) -> Result<(), lpc::Error> = LoggerClient::log;
    let _ = post;
    assert!(LOGGER_INTERFACE.methods[0].oneway);
    assert!(!LOGGER_INTERFACE.methods[2].oneway);
}
