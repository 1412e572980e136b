pub struct Handle(u32);

#[lpc::service]
pub trait Files {
    fn open(&self, path: String) -> Handle;
    fn close(&self, handle: Handle);
}

fn main() {}
