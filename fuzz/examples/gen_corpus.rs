//! Writes the seed corpus to `fuzz/corpus/<target>/` (run from `fuzz/`:
//! `cargo run --example gen_corpus`). Existing seeds of the same name are overwritten; other
//! files (such as saved crash inputs) are kept.

use std::fs;
use std::path::Path;

fn main() -> std::io::Result<()> {
    let services = lpc_fuzz::Services::default();
    lpc_fuzz::seeds::check(&services);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for (target, seeds) in [
        ("handshake", lpc_fuzz::seeds::handshake()),
        ("frame", lpc_fuzz::seeds::frames()),
        ("dispatch", lpc_fuzz::seeds::dispatch()),
        ("decode", lpc_fuzz::seeds::decode()),
    ] {
        let dir = root.join(target);
        fs::create_dir_all(&dir)?;
        for (name, bytes) in &seeds {
            fs::write(dir.join(name), bytes)?;
        }
        println!("{}: {} seeds", dir.display(), seeds.len());
    }
    Ok(())
}
