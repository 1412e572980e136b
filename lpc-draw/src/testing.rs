//! A private X server for tests and screenshots: Xvfb (the X virtual framebuffer), on a
//! display number it chooses itself (`-displayfd`), so that tests running in parallel each
//! get their own. Killed when dropped.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A running Xvfb.
pub struct Xvfb {
    child: Child,
    display: String,
}

/// How long Xvfb may take to report its display.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

impl Xvfb {
    /// Starts Xvfb and waits (at most [`START_TIMEOUT`]) until it reports the display it
    /// serves, which it does once it accepts clients.
    pub fn start() -> Result<Xvfb, String> {
        let mut child = Command::new("Xvfb")
            // -displayfd 1: Xvfb picks a free display number itself and writes it on fd 1
            // (our pipe) once it is ready.
            .args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                "1024x768x24",
                "-nolisten",
                "tcp",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                format!("cannot start Xvfb: {e} (scripts/setup.sh installs it: package xvfb)")
            })?;
        let stdout = child.stdout.take().ok_or("no stdout from Xvfb")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let mut xvfb = Xvfb {
            child,
            display: String::new(),
        };
        match rx.recv_timeout(START_TIMEOUT) {
            Ok(line) if line.trim().parse::<u32>().is_ok() => {
                xvfb.display = format!(":{}", line.trim());
                Ok(xvfb)
            }
            Ok(line) => Err(format!(
                "Xvfb exited or reported no display (said {:?}; status {:?})",
                line,
                xvfb.child.try_wait()
            )),
            Err(_) => Err(format!("Xvfb reported no display within {START_TIMEOUT:?}")),
        }
    }

    /// The display, for `DISPLAY` (e.g. `:3`).
    pub fn display(&self) -> &str {
        &self.display
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
