//! `lpc-flood NAME connect COUNT` | `lpc-flood NAME silent COUNT REFUSED`: what a local user
//! can throw at service `NAME` in `$LPC_RUNTIME_DIR`, for tests/admission.rs (run as another
//! user with `setpriv`).
//!
//! - `connect COUNT`: COUNT client connections, one after the other; prints
//!   `connect ok A busy B denied D other O` (with the first other error, if any), then holds
//!   the connections until killed.
//! - `silent COUNT REFUSED`: COUNT sockets that never say hello; waits (at most 20 s) until
//!   REFUSED of them were refused, then prints `silent refused R busy B denied D quiet Q` (quiet:
//!   no answer, still open) and holds them until killed.

use std::time::{Duration, Instant};

use lpc::testing::RawSocket;
use lpc_tests::ProbeClient;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let name = args[0].as_str();
    let count: usize = args[2].parse().expect("a count");
    let dir = lpc::registry::default_runtime_dir();
    match args[1].as_str() {
        "connect" => {
            let (mut ok, mut busy, mut denied, mut other) = (Vec::new(), 0, 0, Vec::new());
            for _ in 0..count {
                // The service runs as root, the flood as another user: say whom to expect.
                let options = lpc::ClientOptions::new().service_uid(0);
                match ProbeClient::connect_with(name, &options) {
                    Ok(probe) => ok.push(probe),
                    Err(lpc::Error::Busy { .. }) => busy += 1,
                    Err(lpc::Error::Denied { .. }) => denied += 1,
                    Err(e) => other.push(e.to_string()),
                }
            }
            println!(
                "connect ok {} busy {busy} denied {denied} other {} {}",
                ok.len(),
                other.len(),
                other.first().map_or("", String::as_str)
            );
            loop {
                std::thread::park();
            }
        }
        "silent" => {
            let refused_wanted: usize = args[3].parse().expect("a count");
            let sockets: Vec<RawSocket> = (0..count)
                .map(|_| RawSocket::connect(&dir, name).expect("connect"))
                .collect();
            let mut answers: Vec<Option<Vec<u8>>> = vec![None; count];
            let deadline = Instant::now() + Duration::from_secs(20);
            while answers.iter().filter(|a| a.is_some()).count() < refused_wanted
                && Instant::now() < deadline
            {
                for (socket, answer) in sockets.iter().zip(answers.iter_mut()) {
                    if answer.is_none() {
                        if let Ok(bytes) = socket.recv(Duration::from_millis(1)) {
                            *answer = Some(bytes);
                        }
                    }
                }
            }
            let refused: Vec<&Vec<u8>> = answers.iter().flatten().collect();
            let kind = |k: &str| {
                refused
                    .iter()
                    .filter(|m| lpc::testing::refusal_kind(m).as_deref() == Some(k))
                    .count()
            };
            println!(
                "silent refused {} busy {} denied {} quiet {}",
                refused.len(),
                kind("Busy"),
                kind("Denied"),
                count - refused.len()
            );
            loop {
                std::thread::park();
            }
        }
        other => panic!("unknown mode {other}"),
    }
}
