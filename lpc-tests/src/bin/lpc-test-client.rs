//! `lpc-test-client NAME [whoami | wait-cancel]`: connects to `Probe` in `$LPC_RUNTIME_DIR`.
//!
//! Without a command: makes one call, prints `connected`, then waits to be killed. With
//! `whoami`: prints `whoami PID UID GID` as the service sees this process, or `error: ...`
//! (exit code 1). With `wait-cancel`: prints `connected`, then calls `wait_for_cancel` for
//! up to a minute (the test kills it meanwhile).

use lpc_tests::ProbeClient;

fn main() -> std::process::ExitCode {
    let name = std::env::args().nth(1).unwrap_or_else(|| "probe".into());
    let command = std::env::args().nth(2);
    let result = ProbeClient::connect(&name).and_then(|probe| {
        if command.as_deref() == Some("whoami") {
            let (pid, uid, gid) = probe.whoami()?;
            println!("whoami {pid} {uid} {gid}");
            return Ok(None);
        }
        probe.add(1, 2)?;
        if command.as_deref() == Some("wait-cancel") {
            println!("connected");
            probe.wait_for_cancel(60_000)?;
        }
        Ok(Some(probe))
    });
    match result {
        Ok(None) => std::process::ExitCode::SUCCESS,
        Ok(Some(_probe)) => {
            println!("connected");
            loop {
                std::thread::park();
            }
        }
        Err(e) => {
            println!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
