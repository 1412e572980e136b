//! `lpc-test-files-client NAME PATH SERVICE_UID`: tries to read PATH itself (prints
//! `direct: denied` or `direct: <contents>`), then asks service NAME (running as SERVICE_UID,
//! in `$LPC_RUNTIME_DIR`) to open it and reads the file it gets back (prints
//! `via service: <contents>` or `via service failed: <error>`).

use std::io::Read;

use lpc_tests::files::FilesClient;

pub fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (name, path, uid) = (&args[0], &args[1], args[2].parse::<u32>().expect("a uid"));
    match std::fs::read_to_string(path) {
        Ok(text) => println!("direct: {text}"),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => println!("direct: denied"),
        Err(e) => println!("direct: {e}"),
    }
    let options = lpc::ClientOptions::new().service_uid(uid);
    let files = match FilesClient::connect_with(name, &options) {
        Ok(files) => files,
        Err(e) => {
            println!("via service failed: {e}");
            return;
        }
    };
    match files.open(path) {
        Ok(Ok(mut file)) => {
            let mut text = String::new();
            match file.read_to_string(&mut text) {
                Ok(_) => println!("via service: {text}"),
                Err(e) => println!("via service failed: reading: {e}"),
            }
        }
        Ok(Err(e)) => println!("via service failed: {e}"),
        Err(e) => println!("via service failed: {e}"),
    }
}
