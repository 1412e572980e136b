//! The probe client, one mode per option:
//!
//! - `probe-client timeout`: calls that give up after a deadline (`call_timeout`,
//!   `with_timeout`), and what the service sees.
//! - `probe-client reconnect`: a client made with `reconnect(true)` calls `pid()` every 50 ms
//!   until it reaches another service process than the first (restart the service meanwhile),
//!   at most 60 s.
//! - `probe-client whoami`: who the service thinks is calling (run it as another user against
//!   `probe-service --allow-uid UID`, with `--service-uid` naming the service's user).
//!
//! `--name NAME` calls another service than `probe`. `--service-uid UID` accepts a service run
//! by user UID (by default only one run by this process's own user:
//! `ClientOptions::service_uid`).

use std::time::{Duration, Instant};

use lpc::{ClientOptions, Error};
use lpc_examples::probe::ProbeClient;

fn main() -> std::process::ExitCode {
    let name = lpc_examples::name_arg("probe");
    let mode = std::env::args().nth(1).unwrap_or_default();
    lpc_examples::report(match mode.as_str() {
        "timeout" => timeout(&name),
        "reconnect" => reconnect(&name),
        "whoami" => whoami(&name),
        _ => {
            eprintln!("usage: probe-client timeout|reconnect|whoami [--name NAME]");
            std::process::exit(2)
        }
    })
}

fn timeout(name: &str) -> Result<(), Error> {
    // Every call of this client gives up after 300 ms...
    let options = ClientOptions::new().call_timeout(Duration::from_millis(300));
    let probe = ProbeClient::connect_with(name, &options)?;
    println!(
        "work(50) with a 300 ms timeout: finished = {}",
        probe.work(50)?
    );

    let started = Instant::now();
    match probe.work(10_000) {
        Ok(done) => println!("work(10000): finished = {done}"),
        Err(Error::Timeout { after, phase, .. }) => println!(
            "work(10000) with a 300 ms timeout: Error::Timeout after {after:?} (waited {} ms): {phase}",
            // Rounded down to 100 ms, so that the output is the same from run to run.
            started.elapsed().as_millis() / 100 * 100
        ),
        Err(e) => return Err(e),
    }

    // ...and a handle on the same connection can have a deadline of its own.
    let patient = probe.with_timeout(Duration::from_secs(30));
    println!(
        "work(500) with a 30 s timeout: finished = {}",
        patient.work(500)?
    );
    Ok(())
}

fn reconnect(name: &str) -> Result<(), Error> {
    let options = ClientOptions::new().reconnect(true);
    let probe = ProbeClient::connect_with(name, &options)?;
    let first = probe.pid()?;
    println!("connected to service pid {first}");
    let give_up = Instant::now() + Duration::from_secs(60);
    let mut last_error = String::new();
    while Instant::now() < give_up {
        std::thread::sleep(Duration::from_millis(50));
        match probe.pid() {
            Ok(pid) if pid == first => {}
            Ok(pid) => {
                println!("reconnected: service pid {pid}");
                return Ok(());
            }
            // The call that finds the connection lost fails (lpc never repeats a call that
            // may have run); the next one connects again, or fails with `NotFound` while no
            // service is up.
            Err(e) => {
                let kind = match &e {
                    Error::Disconnected { .. } => "disconnected",
                    Error::NotFound { .. } => "not found",
                    _ => "other",
                };
                if kind != last_error {
                    println!("call failed ({kind}): {e}");
                    last_error = kind.to_owned();
                }
            }
        }
    }
    println!("gave up: no other service process within 60 s");
    std::process::exit(1)
}

fn whoami(name: &str) -> Result<(), Error> {
    let mut options = ClientOptions::new();
    if let Some(uid) = lpc_examples::string_arg("--service-uid") {
        let Ok(uid) = uid.parse() else {
            eprintln!("error: --service-uid takes a numeric uid, not `{uid}`");
            std::process::exit(2)
        };
        // The service runs as another user by design: accept that user's process (and no
        // other: a client refuses a service of any other user, so that a socket planted by
        // someone else never answers its calls).
        options = options.service_uid(uid);
    }
    let probe = ProbeClient::connect_with(name, &options)?;
    println!("the service sees: {}", probe.whoami()?);
    Ok(())
}
