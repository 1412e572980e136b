//! `lpc-test-client NAME`: connects to `Probe` in `$LPC_RUNTIME_DIR`, makes one call, prints
//! `connected`, then waits to be killed.

use lpc_tests::ProbeClient;

fn main() -> Result<(), lpc::Error> {
    let name = std::env::args().nth(1).unwrap_or_else(|| "probe".into());
    let probe = ProbeClient::connect(&name)?;
    probe.add(1, 2)?;
    println!("connected");
    loop {
        std::thread::park();
    }
}
