//! `lpc-test-spawner [--from-thread] [--busy]`: a parent that spawns `lpc-test-child` (found
//! beside this program), calls it once, prints `child <pid>`, then waits until stdin ends —
//! for the tests that SIGKILL a parent. With `--from-thread`, the spawn is made on a thread
//! that then exits (the child must survive that thread); with `--busy`, a call that sleeps a
//! minute runs in the child meanwhile (the child prints `sleeping 60000` on the stdout it
//! shares with this process).

use std::io::Read;
use std::process::Command;

use lpc_tests::child::ChildProbeClient;

fn main() -> Result<(), lpc::Error> {
    let exe = std::env::current_exe().expect("own path");
    let command =
        Command::new(exe.with_file_name(format!("lpc-test-child{}", std::env::consts::EXE_SUFFIX)));
    let (child, client) = if std::env::args().any(|a| a == "--from-thread") {
        std::thread::spawn(move || ChildProbeClient::spawn(command))
            .join()
            .expect("spawning thread")?
    } else {
        ChildProbeClient::spawn(command)?
    };
    assert_eq!(client.add(1, 2)?, 3);
    println!("child {}", child.id());
    if std::env::args().any(|a| a == "--busy") {
        let client = client.clone();
        std::thread::spawn(move || client.sleep_ms(60_000));
    }
    // Keep the child (and its connection) until stdin ends or this process is killed.
    let _ = std::io::stdin().read(&mut [0u8; 1]);
    let child_pid = client.pid()?;
    println!("alive {child_pid}");
    drop(child);
    Ok(())
}
