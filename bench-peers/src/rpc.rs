//! tarpc 0.38 over a Unix socket (`tarpc::serde_transport`, length-delimited frames, bincode),
//! the client on a tokio current-thread runtime, the server on a current-thread or a
//! multi-thread one (the driver measures both and keeps the faster per workload). Bytes travel as
//! `serde_bytes::ByteBuf` (one copy into the frame, not one serde call per byte); frames may
//! be up to 64 MiB (the codec's default limit is 8 MiB).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use futures::StreamExt;
use serde_bytes::ByteBuf;
use tarpc::serde_transport;
use tarpc::server::{BaseChannel, Channel};
use tarpc::tokio_serde::formats::Bincode;
use tarpc::tokio_util::codec::length_delimited::{self, LengthDelimitedCodec};
use tokio::net::{UnixListener, UnixStream};
use tokio::runtime::Runtime;

use crate::{check_echo, Client};

/// Largest frame either way.
const MAX_FRAME: usize = 64 << 20;

#[tarpc::service]
pub trait BenchRpc {
    async fn add(a: i32, b: i32) -> i32;
    async fn echo(data: ByteBuf) -> ByteBuf;
}

#[derive(Clone)]
struct Server;

impl BenchRpc for Server {
    async fn add(self, _: tarpc::context::Context, a: i32, b: i32) -> i32 {
        a.wrapping_add(b)
    }

    async fn echo(self, _: tarpc::context::Context, data: ByteBuf) -> ByteBuf {
        data
    }
}

fn socket(dir: &Path) -> PathBuf {
    dir.join("tarpc.sock")
}

fn codec() -> length_delimited::Builder {
    let mut builder = LengthDelimitedCodec::builder();
    builder.max_frame_length(MAX_FRAME);
    builder
}

fn runtime() -> Result<Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))
}

/// The server's runtime: current-thread, or tokio's default multi-thread one.
fn server_runtime(multi_thread: bool) -> Result<Runtime, String> {
    if !multi_thread {
        return runtime();
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))
}

/// The server: one task per connection, until the parent leaves.
pub fn serve(dir: &Path, multi_thread: bool) -> Result<(), String> {
    let _exit = lpc_bench::child::exit_with_parent();
    let rt = server_runtime(multi_thread)?;
    rt.block_on(async {
        let path = socket(dir);
        // Left by the previous server of this run (another runtime flavour), now gone.
        let _ = std::fs::remove_file(&path);
        let listener =
            UnixListener::bind(&path).map_err(|e| format!("binding {}: {e}", path.display()))?;
        lpc_bench::child::ready();
        loop {
            let (conn, _) = listener
                .accept()
                .await
                .map_err(|e| format!("accept: {e}"))?;
            let transport = serde_transport::new(codec().new_framed(conn), Bincode::default());
            tokio::spawn(
                BaseChannel::with_defaults(transport)
                    .execute(Server.serve())
                    .for_each(|call| async move {
                        tokio::spawn(call);
                    }),
            );
        }
    })
}

/// The runtime every client of this process runs on (created once, outside any timing).
fn client_runtime() -> Result<&'static Runtime, String> {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    if let Some(rt) = RUNTIME.get() {
        return Ok(rt);
    }
    let rt = runtime()?;
    Ok(RUNTIME.get_or_init(|| rt))
}

pub struct TarpcClient {
    client: BenchRpcClient,
    rt: &'static Runtime,
    data: Vec<u8>,
}

impl TarpcClient {
    pub fn connect(dir: &Path) -> Result<TarpcClient, String> {
        let rt = client_runtime()?;
        let path = socket(dir);
        let client = rt.block_on(async {
            let conn = UnixStream::connect(&path)
                .await
                .map_err(|e| format!("connecting to {}: {e}", path.display()))?;
            let transport = serde_transport::new(codec().new_framed(conn), Bincode::default());
            Ok::<_, String>(
                BenchRpcClient::new(tarpc::client::Config::default(), transport).spawn(),
            )
        })?;
        Ok(TarpcClient {
            client,
            rt,
            data: Vec::new(),
        })
    }
}

impl Client for TarpcClient {
    fn add(&mut self, a: i32, b: i32) -> Result<i32, String> {
        self.rt
            .block_on(self.client.add(tarpc::context::current(), a, b))
            .map_err(|e| format!("tarpc: {e}"))
    }

    fn echo(&mut self, n: usize, stamp: u8) -> Result<(), String> {
        crate::stamped(&mut self.data, n, stamp);
        let data = ByteBuf::from(std::mem::take(&mut self.data));
        let back = self
            .rt
            .block_on(self.client.echo(tarpc::context::current(), data))
            .map_err(|e| format!("tarpc: {e}"))?;
        self.data = back.into_vec();
        check_echo(&self.data, n, stamp)
    }
}
