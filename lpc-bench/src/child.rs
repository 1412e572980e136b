//! Both ends of the parent/child pair: spawning the child (the parent's [`Peer`]) and what the
//! child does (the hidden subcommands).
//!
//! The child reports readiness with a line starting with `ready` on stdout. It holds the read
//! end of a pipe on its stdin: when the parent closes it (or dies), the child exits, so no
//! child outlives its parent.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Child side: announces readiness to the parent.
pub fn ready() {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "ready");
    let _ = out.flush();
}

/// Child side: exits the process when stdin reaches end of file (the parent closed it or
/// died). The lines the parent sends before that arrive on the returned receiver.
pub fn exit_with_parent() -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = std::io::stdin().lock().lines();
        loop {
            match lines.next() {
                Some(Ok(line)) => {
                    let _ = tx.send(line);
                }
                None | Some(Err(_)) => std::process::exit(0),
            }
        }
    });
    rx
}

/// Child side: prints one line for the parent (see [`Peer::next_line`]).
pub fn tell_parent(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Parent side: a child process running one of the hidden subcommands. Dropping it kills and
/// reaps the child; a watchdog thread also kills it if it outlives its time limit, so that
/// nothing waiting on it (lpc calls included) can wait forever.
pub struct Peer {
    what: String,
    child: Arc<Mutex<Child>>,
    stdin: Option<ChildStdin>,
    lines: Receiver<std::io::Result<String>>,
    /// Dropped (disconnecting the watchdog's receiver) when the peer is finished.
    _watchdog: Sender<()>,
    reaped: bool,
}

impl Peer {
    /// Runs this executable with `args`; the watchdog kills the child after `limit`.
    pub fn spawn(what: &str, args: &[OsString], limit: Duration) -> Result<Peer, String> {
        let exe = std::env::current_exe().map_err(|e| format!("finding this executable: {e}"))?;
        Peer::spawn_program(&exe, what, args, limit)
    }

    /// Runs `program` with `args`; the watchdog kills the child after `limit`.
    pub fn spawn_program(
        program: &std::path::Path,
        what: &str,
        args: &[OsString],
        limit: Duration,
    ) -> Result<Peer, String> {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("starting the {what} child: {e}"))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout is piped");
        let (line_tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                if line_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let child = Arc::new(Mutex::new(child));
        let (watchdog, done) = mpsc::channel::<()>();
        let watched = child.clone();
        let name = what.to_owned();
        std::thread::spawn(move || {
            if let Err(RecvTimeoutError::Timeout) = done.recv_timeout(limit) {
                eprintln!("lpc-bench: the {name} child exceeded its {limit:?} limit; killing it");
                let _ = lock(&watched).kill();
            }
        });
        Ok(Peer {
            what: what.to_owned(),
            child,
            stdin,
            lines,
            _watchdog: watchdog,
            reaped: false,
        })
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        lock(&self.child).id()
    }

    /// Waits (at most `timeout`) for the child's `ready` line.
    pub fn wait_ready(&self, timeout: Duration) -> Result<(), String> {
        match self.lines.recv_timeout(timeout) {
            Ok(Ok(line)) if line.starts_with("ready") => Ok(()),
            Ok(Ok(line)) => Err(format!(
                "the {} child said {line:?} instead of ready",
                self.what
            )),
            Ok(Err(e)) => Err(format!("reading the {} child's output: {e}", self.what)),
            Err(RecvTimeoutError::Timeout) => Err(format!(
                "the {} child was not ready within {timeout:?}",
                self.what
            )),
            Err(RecvTimeoutError::Disconnected) => Err(format!(
                "the {} child exited before it was ready",
                self.what
            )),
        }
    }

    /// Sends `line` to the child (see [`exit_with_parent`]).
    pub fn send_line(&mut self, line: &str) -> Result<(), String> {
        let stdin = self.stdin.as_mut().ok_or("stdin already closed")?;
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("writing to the {} child: {e}", self.what))
    }

    /// The next line the child prints (waiting at most `timeout`).
    pub fn next_line(&self, timeout: Duration) -> Result<String, String> {
        match self.lines.recv_timeout(timeout) {
            Ok(Ok(line)) => Ok(line),
            Ok(Err(e)) => Err(format!("reading the {} child's output: {e}", self.what)),
            Err(RecvTimeoutError::Timeout) => Err(format!(
                "the {} child said nothing within {timeout:?}",
                self.what
            )),
            Err(RecvTimeoutError::Disconnected) => {
                Err(format!("the {} child exited early", self.what))
            }
        }
    }

    /// Closes the child's stdin (which makes it exit) and reaps it, killing it if it has not
    /// exited within `timeout`. Errors if it did not exit cleanly by itself.
    pub fn finish(mut self, timeout: Duration) -> Result<(), String> {
        drop(self.stdin.take());
        let deadline = Instant::now() + timeout;
        let status: ExitStatus = loop {
            match lock(&self.child).try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) => {}
                Err(e) => return Err(format!("waiting for the {} child: {e}", self.what)),
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "the {} child did not exit within {timeout:?}",
                    self.what
                ));
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        self.reaped = true;
        if status.success() {
            Ok(())
        } else {
            Err(format!("the {} child ended with {status}", self.what))
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if !self.reaped {
            drop(self.stdin.take());
            let mut child = lock(&self.child);
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn lock(child: &Mutex<Child>) -> MutexGuard<'_, Child> {
    child.lock().unwrap_or_else(|p| p.into_inner())
}
