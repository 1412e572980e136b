//! `lpc-test-client NAME [whoami | wait-cancel | query] [--service-uid UID]`: connects to
//! `Probe` in `$LPC_RUNTIME_DIR`, run by this process's user or by `UID`
//! (`ClientOptions::service_uid`).
//!
//! Without a command: makes one call, prints `connected`, then waits to be killed. With
//! `whoami`: prints `whoami PID UID GID` as the service sees this process (PID `unknown` if it
//! cannot see it), or `error: ...` (exit code 1). With `wait-cancel`: prints `connected`, then
//! calls `wait_for_cancel` for up to a minute (the test kills it meanwhile). With `query`:
//! connected and called itself, prints what `lpc::query` shows — `service PID USER`, `connections N`,
//! then `client PID UID` per listed client — then `done`.

use lpc_tests::ProbeClient;

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let name = args.first().cloned().unwrap_or_else(|| "probe".into());
    let command = args.get(1).filter(|a| !a.starts_with("--")).cloned();
    let mut options = lpc::ClientOptions::new();
    if let Some(uid) = args
        .iter()
        .position(|a| a == "--service-uid")
        .and_then(|i| args.get(i + 1))
    {
        options = options.service_uid(uid.parse().expect("a numeric uid"));
    }
    let pid = |pid: Option<u32>| pid.map_or("unknown".into(), |p: u32| p.to_string());
    let result = ProbeClient::connect_with(&name, &options).and_then(|probe| {
        if command.as_deref() == Some("whoami") {
            let (who, uid, gid) = probe.whoami()?;
            println!("whoami {} {uid} {gid}", pid(who));
            return Ok(None);
        }
        if command.as_deref() == Some("query") {
            // A call first: the service lists a connection once its handshake is done, and
            // it is by the time a call comes back.
            probe.add(1, 2)?;
            let info = lpc::query(&name, &options)?;
            println!("service {} {}", pid(info.pid), info.user);
            println!("connections {}", info.connections);
            for client in &info.clients {
                println!("client {} {}", pid(client.pid), client.user);
            }
            println!("done");
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
