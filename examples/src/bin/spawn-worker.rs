//! Child services: a parent spawns a crash-prone worker as a child process, calls it,
//! survives its crash, and spawns it again.
//!
//! ```text
//! spawn-worker            the parent: spawns `spawn-worker --worker`, calls it
//! spawn-worker --worker   the child: serves the inherited connection (started by the parent)
//! ```
//!
//! The connection is inherited, not named: nothing appears in the runtime directory, and no
//! other process can reach the worker. The worker dies with its parent.

use std::process::Command;

use lpc_examples::worker::{Squarer, WorkerClient, WorkerServer};

fn main() -> std::process::ExitCode {
    if std::env::args().any(|a| a == "--worker") {
        // The child: serve the one connection the parent handed over, until it ends.
        return lpc_examples::report(
            lpc::Server::inherited().and_then(|s| s.serve(WorkerServer::new(Squarer))),
        );
    }
    lpc_examples::report(parent())
}

fn worker_command() -> Command {
    let exe = std::env::current_exe().expect("the path of this program");
    let mut command = Command::new(exe);
    command.arg("--worker");
    command
}

fn parent() -> Result<(), lpc::Error> {
    let (mut child, worker) = WorkerClient::spawn(worker_command())?;
    println!("spawned worker {}", worker.pid()?);
    println!("square(12) = {}", worker.square(12)?);
    match worker.square(13) {
        Ok(n) => println!("square(13) = {n}"),
        Err(e @ lpc::Error::Disconnected { .. }) => println!("the worker crashed: {e}"),
        Err(e) => return Err(e),
    }
    let status = child.wait()?;
    println!("worker exited: {status}");
    // A fresh worker, a fresh connection.
    let (_child, worker) = WorkerClient::spawn(worker_command())?;
    println!("spawned worker {}", worker.pid()?);
    println!("square(14) = {}", worker.square(14)?);
    Ok(())
}
