//! `lpc demo draw`: the drawing demo. Process A, `lpc __draw-service`, owns a window and
//! serves the drawing functions; process B, `lpc __draw-client`, has a window of buttons (or
//! runs a script) whose every action is a call into A, so that A's window shows what B asks.
//! This process starts both, waits for A's `ready` line before starting B, relays their
//! output, and stops both when either ends.

use std::error::Error;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// How long A may take to open its window and bind its name.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long each process may take to exit once asked to.
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    Service,
    Client,
}

/// A line of a child's stdout, or `None` once it closed it (it exited).
struct Said(Who, Option<String>);

/// A child process: its stdin is its lifeline (closing it asks the child to exit, and so does
/// our own death, however we die); killed if still running when dropped.
struct Process {
    child: Child,
    who: Who,
}

impl Process {
    fn spawn(mut command: Command, who: Who, tx: mpsc::Sender<Said>) -> Result<Process> {
        // Its own process group: a Ctrl-C at the terminal stops this process only, and the
        // children then see their stdin close and exit cleanly (removing the socket).
        command.stdin(Stdio::piped()).stdout(Stdio::piped());
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        // CREATE_NEW_PROCESS_GROUP: Ctrl-C is not sent to the child's group.
        #[cfg(windows)]
        std::os::windows::process::CommandExt::creation_flags(&mut command, 0x0000_0200);
        let mut child = command.spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout from a child")?;
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
                if tx.send(Said(who, Some(line))).is_err() {
                    return;
                }
            }
            let _ = tx.send(Said(who, None));
        });
        Ok(Process { child, who })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Asks the child to exit (closes its stdin).
    fn ask_to_exit(&mut self) {
        drop(self.child.stdin.take());
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Waits (until `deadline`) for `who`'s stdout to close, relaying the lines on the way.
fn wait_closed(rx: &mpsc::Receiver<Said>, who: Who, deadline: Instant) -> bool {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(Said(w, None)) if w == who => return true,
            Ok(said) => relay(&said),
            Err(_) => return false,
        }
    }
}

fn relay(Said(who, line): &Said) {
    if let Some(line) = line {
        let tag = match who {
            Who::Service => "A (service)",
            Who::Client => "B (client)",
        };
        println!("{tag}: {line}");
    }
}

fn lpc_command(runtime_dir: &Path) -> Result<Command> {
    let mut command = Command::new(std::env::current_exe()?);
    command.arg("--runtime-dir").arg(runtime_dir);
    Ok(command)
}

/// Runs the demo: the service, then the client; returns when either ends (a window closed,
/// or the script and its screenshot done).
pub fn run(runtime_dir: &Path, script: Option<&Path>, screenshot: Option<&Path>) -> Result<()> {
    if std::env::var_os("DISPLAY").is_none() && std::env::var_os("WAYLAND_DISPLAY").is_none() {
        return Err(
            "no display to open the windows on: DISPLAY and WAYLAND_DISPLAY are unset \
                    (without a screen, run it under Xvfb: `xvfb-run -a lpc demo draw --script FILE`)"
                .into(),
        );
    }
    let name = format!("lpc-draw-{}", std::process::id());
    let (tx, rx) = mpsc::channel();

    let mut command = lpc_command(runtime_dir)?;
    command.args(["__draw-service", &name]);
    let mut service = Process::spawn(command, Who::Service, tx.clone())?;
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(Said(_, Some(line))) if line.starts_with("ready") => break,
            Ok(said @ Said(_, Some(_))) => relay(&said),
            Ok(Said(_, None)) => {
                return Err(format!(
                    "the drawing service exited before it was ready ({})",
                    service.child.wait()?
                )
                .into())
            }
            Err(_) => {
                return Err(
                    format!("the drawing service was not ready within {READY_TIMEOUT:?}").into(),
                )
            }
        }
    }
    println!(
        "lpc demo draw: process A (pid {}) shows its window and serves `{name}`",
        service.pid()
    );

    let mut command = lpc_command(runtime_dir)?;
    command.args(["__draw-client", &name]);
    if let Some(script) = script {
        command.arg("--script").arg(script);
    }
    if let Some(screenshot) = screenshot {
        command.arg("--screenshot").arg(screenshot);
    }
    let client = Process::spawn(command, Who::Client, tx)?;
    println!(
        "lpc demo draw: process B (pid {}) calls it{}; close either window to stop",
        client.pid(),
        if script.is_some() {
            " from the script"
        } else {
            " when you press its buttons"
        }
    );

    // Until one of them exits (its stdout closes).
    let first = loop {
        match rx.recv() {
            Ok(Said(who, None)) => break who,
            Ok(said) => relay(&said),
            Err(_) => break Who::Client, // both readers gone: cannot happen before a `None`
        }
    };
    let (mut gone, mut other) = match first {
        Who::Service => (service, client),
        Who::Client => (client, service),
    };
    let gone_status = gone.child.wait()?;
    other.ask_to_exit();
    let deadline = Instant::now() + EXIT_TIMEOUT;
    let other_status = if wait_closed(&rx, other.who, deadline) {
        Some(other.child.wait()?)
    } else {
        None // killed on drop
    };
    let (service_status, client_status) = match first {
        Who::Service => (Some(gone_status), other_status),
        Who::Client => (other_status, Some(gone_status)),
    };
    drop(other);
    drop(gone);
    println!("lpc demo draw: both processes have exited");
    let ok = |status: Option<std::process::ExitStatus>, what: &str| -> Result<()> {
        match status {
            Some(s) if s.success() => Ok(()),
            Some(s) => Err(format!("the {what} process failed ({s})").into()),
            None => Err(
                format!("the {what} process did not exit within {EXIT_TIMEOUT:?}: killed").into(),
            ),
        }
    };
    ok(client_status, "client")?;
    ok(service_status, "service")
}

/// `lpc __draw-service NAME`: process A.
pub fn service(runtime_dir: PathBuf, name: &str) -> Result<()> {
    lpc_draw::service::run(&lpc_draw::service::Options {
        name: name.to_owned(),
        runtime_dir: Some(runtime_dir),
        until_stdin_closes: true,
    })
}

/// `lpc __draw-client NAME [--script FILE] [--screenshot PNG]`: process B.
pub fn client(
    runtime_dir: PathBuf,
    name: &str,
    script: Option<PathBuf>,
    screenshot: Option<PathBuf>,
) -> Result<()> {
    lpc_draw::client::run(&lpc_draw::client::Options {
        name: name.to_owned(),
        runtime_dir: Some(runtime_dir),
        script,
        screenshot,
        until_stdin_closes: true,
    })
}
