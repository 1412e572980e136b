//! Child services: a child process that serves an interface over a connection it inherits
//! (Windows' handle inheritance), for isolating code that may crash — a native library, say.
//!
//! ```text
//! parent: Client::spawn(command)                     child: Server::inherited()?.serve(..)
//!   socketpair ─ one end ──(inherited fd, LPC_ENDPOINT_FD=n)──> checked, variable cleared
//!   other end: hello ─────────────────────────────────────────> welcome + the region
//! ```
//!
//! The connection is a `socketpair(2)`: it has no name in the runtime directory, so no other
//! process can find or reach it. The child inherits that one descriptor and no other (see
//! `sys::spawn_with_endpoint`), dies when the parent dies (its parent-death signal, and the
//! connection's end as a fallback: `Server::inherited` serves until its one connection ends),
//! and when it crashes the parent's calls get `Disconnected`, as with any service that dies.

use std::io;
use std::process::{Command, ExitStatus};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Client, ClientOptions, Link};
use crate::error::{Error, Result};
use crate::registry;
use crate::sys::{spawn_with_endpoint, ChildProcess, Stream};
use crate::wire::interface::InterfaceDescriptor;

/// A child process started by [`Client::spawn`] (or a generated `XxxClient::spawn`) to serve
/// an interface to this process alone.
///
/// Dropping it kills the child (SIGKILL; `TerminateProcess` on Windows) and reaps it, so that no child outlives its handle
/// and no zombie is left: keep it as long as its client is used. The child also dies with
/// this process, however this process ends.
#[derive(Debug)]
#[must_use = "dropping the child kills it: keep it for as long as its client is used"]
pub struct Child {
    name: String,
    process: Option<ChildProcess>,
}

impl Child {
    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.process.as_ref().map_or(0, ChildProcess::id)
    }

    /// Kills the child (SIGKILL) and waits for it to exit; its client's calls then fail with
    /// [`Error::Disconnected`]. Returns its exit status (the kill's, or how it ended before).
    pub fn kill(&mut self) -> Result<ExitStatus> {
        let process = self.process_mut()?;
        let status = (|| {
            if let Some(status) = process.try_wait()? {
                return Ok(status);
            }
            process.kill()?;
            process.wait()
        })();
        status.map_err(|e| Error::io(&self.name, "killing the child", e))
    }

    /// Waits for the child to exit (it does once its client and every clone are dropped).
    pub fn wait(&mut self) -> Result<ExitStatus> {
        let status = self.process_mut()?.wait();
        status.map_err(|e| Error::io(&self.name, "waiting for the child", e))
    }

    /// The child's exit status if it has exited, without waiting.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        let status = self.process_mut()?.try_wait();
        status.map_err(|e| Error::io(&self.name, "waiting for the child", e))
    }

    /// Waits up to `timeout` for the child to exit (checking every few milliseconds); `None`
    /// if it still runs.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<ExitStatus>> {
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_micros(200);
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(Some(status));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            std::thread::sleep(pause.min(left));
            pause = (pause * 2).min(Duration::from_millis(10));
        }
    }

    /// The standard library's handle, which does not kill the child when dropped (the child
    /// still dies with this process).
    #[cfg(unix)]
    pub fn into_inner(mut self) -> std::process::Child {
        self.process
            .take()
            .expect("a Child holds its process until dropped")
    }

    /// The child's process handle, which does not kill the child when closed (the child still
    /// dies with this process). (On Windows lpc starts the child with `CreateProcessW` itself,
    /// to list the handles it inherits, so there is no std `Child` to hand out.)
    #[cfg(windows)]
    pub fn into_handle(mut self) -> std::os::windows::io::OwnedHandle {
        self.process
            .take()
            .expect("a Child holds its process until dropped")
            .into_handle()
    }

    fn process_mut(&mut self) -> Result<&mut ChildProcess> {
        let name = &self.name;
        self.process.as_mut().ok_or_else(|| {
            Error::io(
                name,
                "using the child",
                io::Error::other("the child was handed out"),
            )
        })
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if let Some(process) = &mut self.process {
            if let Ok(None) = process.try_wait() {
                let _ = process.kill();
            }
            let _ = process.wait();
        }
    }
}

impl Client {
    /// Starts `command` as a child service of `interface` and connects to it: the child
    /// inherits one end of a fresh connection (no name in the runtime directory, invisible to
    /// every other process) and no other descriptor, and serves it with
    /// [`crate::Server::inherited`]. Returns the child and a client connected to it.
    ///
    /// The child must call `Server::inherited()` and serve within
    /// [`ClientOptions::connect_timeout`] (the interface is checked as for
    /// [`Client::connect`]); else it is killed and this fails — with [`Error::Io`] saying how
    /// the child ended, if it exited first. The runtime directory, the expected service user
    /// and reconnecting do not apply: the connection is this process's own, and a child that
    /// crashed is replaced by spawning another.
    ///
    /// When the child crashes, calls get [`Error::Disconnected`] as with any service that dies;
    /// when this process dies, the child is killed (`PR_SET_PDEATHSIG` on Linux, a job object
    /// with `JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE` on Windows) and its connection ends.
    ///
    /// On Windows the child is created by lpc (`CreateProcessW` with
    /// `PROC_THREAD_ATTRIBUTE_HANDLE_LIST`, which std's `Command` cannot pass on stable Rust):
    /// `command`'s program, arguments, environment changes and working directory are used;
    /// its standard-stream settings and `env_clear` cannot be read from a `Command`, so the
    /// child gets this process's standard handles and environment, with the changes.
    pub fn spawn(
        mut command: Command,
        interface: &'static InterfaceDescriptor,
        options: &ClientOptions,
    ) -> Result<(Child, Client)> {
        let name = service_name(&command);
        let deadline = Instant::now() + options.connect_timeout;
        let (ours, theirs) =
            Stream::pair().map_err(|e| Error::io(&name, "creating the connection", e))?;
        let process = spawn_with_endpoint(&mut command, &theirs).map_err(|e| {
            Error::io(
                &name,
                format!("starting {}", command.get_program().to_string_lossy()),
                e,
            )
        })?;
        // Only the child holds its end now: its death is a hang-up here.
        drop(theirs);
        let pid = process.id();
        let mut child = Child {
            name: name.clone(),
            process: Some(process),
        };
        let conn =
            match Client::handshake(&name, ours, Some(pid), deadline, Some(interface), options) {
                Ok(conn) => conn,
                Err(e) => {
                    // A child that hung up may be exiting still: give it a moment to be reaped,
                    // so that the error can say how it ended.
                    let exited = match e {
                        Error::Disconnected { .. } => {
                            child.wait_timeout(Duration::from_secs(1)).ok().flatten()
                        }
                        _ => child.try_wait().ok().flatten(),
                    };
                    let _ = child.kill();
                    return Err(match (exited, e) {
                        (Some(status), Error::Disconnected { .. }) => Error::io(
                            &name,
                            "connecting to the child service",
                            io::Error::other(format!(
                                "the child ({}) exited before serving ({status}): it must call \
                             lpc::Server::inherited() and serve",
                                command.get_program().to_string_lossy()
                            )),
                        ),
                        (_, e) => e,
                    });
                }
            };
        let client = Client {
            link: Link::Fixed(Arc::new(conn)),
            call_timeout: options.call_timeout,
            slot_wait: options.slot_wait,
            post_wait: options.post_wait,
        };
        Ok((child, client))
    }
}

/// The name a child service goes by in errors: its program's file name, if it can name a
/// service.
fn service_name(command: &Command) -> String {
    std::path::Path::new(command.get_program())
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| registry::validate_name(n).is_ok())
        .unwrap_or_else(|| "child".to_owned())
}
