//! ipc-channel 0.23: a request channel and a reply channel per client, handed over through an
//! `IpcOneShotServer`. The small call as typed messages (`(i32, i32)` → `i32`, bincode), the
//! payloads as raw bytes (`IpcBytesSender` / `IpcBytesReceiver`).
//!
//! ipc-channel has no named, reusable endpoint: a one-shot server accepts one connection. So
//! the server always keeps one pending, and writes its name to `ipc-channel.name` in the run's
//! directory; a client reads the name, connects and sends its channels. The server publishes
//! the next name before it answers the new client's first call, so a client that connects
//! after another's first call has returned always finds a fresh name.

use std::path::{Path, PathBuf};

use ipc_channel::ipc::{
    self, IpcBytesReceiver, IpcBytesSender, IpcOneShotServer, IpcReceiver, IpcSender,
};
use serde::{Deserialize, Serialize};

use crate::{check_echo, Client};

/// What a client sends the server when it connects: the ends the server uses.
#[derive(Serialize, Deserialize)]
struct Hello {
    add_requests: IpcReceiver<(i32, i32)>,
    add_replies: IpcSender<i32>,
    echo_requests: IpcBytesReceiver,
    echo_replies: IpcBytesSender,
}

fn name_file(dir: &Path) -> PathBuf {
    dir.join("ipc-channel.name")
}

/// Creates the next one-shot server and publishes its name.
fn publish(dir: &Path) -> Result<IpcOneShotServer<Hello>, String> {
    let (server, name) = IpcOneShotServer::new().map_err(|e| format!("ipc-channel: {e}"))?;
    let file = name_file(dir);
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, name).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, &file).map_err(|e| format!("{}: {e}", file.display()))?;
    Ok(server)
}

/// The server: two threads per client (one per channel pair), until the parent leaves.
pub fn serve(dir: &Path) -> Result<(), String> {
    let _exit = lpc_bench::child::exit_with_parent();
    let mut server = publish(dir)?;
    lpc_bench::child::ready();
    loop {
        let (_, hello) = server
            .accept()
            .map_err(|e| format!("ipc-channel accept: {e:?}"))?;
        server = publish(dir)?;
        let Hello {
            add_requests,
            add_replies,
            echo_requests,
            echo_replies,
        } = hello;
        std::thread::spawn(move || {
            while let Ok((a, b)) = add_requests.recv() {
                if add_replies.send(a.wrapping_add(b)).is_err() {
                    break;
                }
            }
        });
        std::thread::spawn(move || {
            while let Ok(data) = echo_requests.recv() {
                if echo_replies.send(&data).is_err() {
                    break;
                }
            }
        });
    }
}

pub struct IpcClient {
    add_requests: IpcSender<(i32, i32)>,
    add_replies: IpcReceiver<i32>,
    echo_requests: IpcBytesSender,
    echo_replies: IpcBytesReceiver,
    data: Vec<u8>,
}

impl IpcClient {
    pub fn connect(dir: &Path) -> Result<IpcClient, String> {
        let file = name_file(dir);
        let name =
            std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        let e = |e: std::io::Error| format!("ipc-channel: {e}");
        let bootstrap: IpcSender<Hello> = IpcSender::connect(name).map_err(e)?;
        let (add_tx, add_rx) = ipc::channel().map_err(e)?;
        let (add_reply_tx, add_reply_rx) = ipc::channel().map_err(e)?;
        let (echo_tx, echo_rx) = ipc::bytes_channel().map_err(e)?;
        let (echo_reply_tx, echo_reply_rx) = ipc::bytes_channel().map_err(e)?;
        bootstrap
            .send(Hello {
                add_requests: add_rx,
                add_replies: add_reply_tx,
                echo_requests: echo_rx,
                echo_replies: echo_reply_tx,
            })
            .map_err(|e| format!("ipc-channel: {e:?}"))?;
        Ok(IpcClient {
            add_requests: add_tx,
            add_replies: add_reply_rx,
            echo_requests: echo_tx,
            echo_replies: echo_reply_rx,
            data: Vec::new(),
        })
    }
}

impl Client for IpcClient {
    fn add(&mut self, a: i32, b: i32) -> Result<i32, String> {
        self.add_requests
            .send((a, b))
            .map_err(|e| format!("ipc-channel: {e:?}"))?;
        self.add_replies
            .recv()
            .map_err(|e| format!("ipc-channel: {e:?}"))
    }

    fn echo(&mut self, n: usize, stamp: u8) -> Result<(), String> {
        crate::stamped(&mut self.data, n, stamp);
        self.echo_requests
            .send(&self.data)
            .map_err(|e| format!("ipc-channel: {e}"))?;
        self.data = self
            .echo_replies
            .recv()
            .map_err(|e| format!("ipc-channel: {e:?}"))?;
        check_echo(&self.data, n, stamp)
    }
}
