//! iceoryx2 0.10 request-response (`ipc::Service`), busy-polling on both sides as iceoryx2's
//! own request-response benchmark does: its lowest-latency mode.
//!
//! Two services, named after the directory of the run (so that no two runs share one):
//! `…/add` with `[i32; 2]` requests and `i32` responses, and `…/echo` with `[u8]` slices
//! both ways, sized at creation for the largest payload of the run.

use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use iceoryx2::node::Node;
use iceoryx2::port::client::Client as IoxPortClient;
use iceoryx2::prelude::*;

use crate::{check_echo, Client};

/// Set when the parent closes our stdin: the server loop returns and the ports, services
/// and node are dropped (removing their resources) before the process exits.
static STOP: AtomicBool = AtomicBool::new(false);

/// Requests and responses in flight per client: one call at a time, and one spare.
const IN_FLIGHT: usize = 2;

fn names(dir: &Path) -> Result<(ServiceName, ServiceName), String> {
    let base = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "bench-peers".into());
    let name = |what: &str| {
        ServiceName::new(&format!("lpc-bench/{base}/{what}")).map_err(|e| format!("{e:?}"))
    };
    Ok((name("add")?, name("echo")?))
}

fn node() -> Result<Node<ipc::Service>, String> {
    // Warnings would only say that no config file exists: the defaults are what we want.
    set_log_level(LogLevel::Error);
    NodeBuilder::new()
        .create::<ipc::Service>()
        .map_err(|e| format!("iceoryx2 node: {e:?}"))
}

/// The server: answers both services until the parent leaves.
pub fn serve(dir: &Path, max: usize) -> Result<(), String> {
    std::thread::spawn(|| {
        let mut sink = [0u8; 64];
        let mut stdin = std::io::stdin();
        while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
        STOP.store(true, Ordering::Relaxed);
    });
    let node = node()?;
    let (add_name, echo_name) = names(dir)?;
    let e = |e: &dyn std::fmt::Debug| format!("iceoryx2: {e:?}");
    let add = node
        .service_builder(&add_name)
        .request_response::<[i32; 2], i32>()
        .max_active_requests_per_client(IN_FLIGHT)
        .max_response_buffer_size(IN_FLIGHT)
        .open_or_create()
        .map_err(|x| e(&x))?;
    let echo = node
        .service_builder(&echo_name)
        .request_response::<[u8], [u8]>()
        .max_active_requests_per_client(IN_FLIGHT)
        .max_response_buffer_size(IN_FLIGHT)
        .open_or_create()
        .map_err(|x| e(&x))?;
    let add_server = add.server_builder().create().map_err(|x| e(&x))?;
    let echo_server = echo
        .server_builder()
        .initial_max_slice_len(max)
        .create()
        .map_err(|x| e(&x))?;
    lpc_bench::child::ready();
    while !STOP.load(Ordering::Relaxed) {
        let mut idle = true;
        if let Some(request) = add_server.receive().map_err(|x| e(&x))? {
            let [a, b] = *request.payload();
            request
                .loan_uninit()
                .map_err(|x| e(&x))?
                .write_payload(a.wrapping_add(b))
                .send()
                .map_err(|x| e(&x))?;
            idle = false;
        }
        if let Some(request) = echo_server.receive().map_err(|x| e(&x))? {
            let data = request.payload();
            request
                .loan_slice_uninit(data.len())
                .map_err(|x| e(&x))?
                .write_from_slice(data)
                .send()
                .map_err(|x| e(&x))?;
            idle = false;
        }
        if idle {
            std::hint::spin_loop();
        }
    }
    Ok(())
}

/// A client of both services, with its own node.
pub struct IoxClient {
    add: IoxPortClient<ipc::Service, [i32; 2], (), i32, ()>,
    echo: IoxPortClient<ipc::Service, [u8], (), [u8], ()>,
    data: Vec<u8>,
    // Dropped last: the ports above belong to it.
    _node: Node<ipc::Service>,
}

impl IoxClient {
    pub fn connect(dir: &Path, max: usize) -> Result<IoxClient, String> {
        let node = node()?;
        let (add_name, echo_name) = names(dir)?;
        let e = |e: &dyn std::fmt::Debug| format!("iceoryx2: {e:?}");
        let add = node
            .service_builder(&add_name)
            .request_response::<[i32; 2], i32>()
            .max_active_requests_per_client(IN_FLIGHT)
            .max_response_buffer_size(IN_FLIGHT)
            .open_or_create()
            .map_err(|x| e(&x))?
            .client_builder()
            .create()
            .map_err(|x| e(&x))?;
        let echo = node
            .service_builder(&echo_name)
            .request_response::<[u8], [u8]>()
            .max_active_requests_per_client(IN_FLIGHT)
            .max_response_buffer_size(IN_FLIGHT)
            .open_or_create()
            .map_err(|x| e(&x))?
            .client_builder()
            .initial_max_slice_len(max)
            .create()
            .map_err(|x| e(&x))?;
        Ok(IoxClient {
            add,
            echo,
            data: Vec::new(),
            _node: node,
        })
    }
}

impl Client for IoxClient {
    fn add(&mut self, a: i32, b: i32) -> Result<i32, String> {
        let e = |e: &dyn std::fmt::Debug| format!("iceoryx2: {e:?}");
        let pending = self
            .add
            .loan_uninit()
            .map_err(|x| e(&x))?
            .write_payload([a, b])
            .send()
            .map_err(|x| e(&x))?;
        loop {
            if let Some(response) = pending.receive().map_err(|x| e(&x))? {
                return Ok(*response.payload());
            }
            std::hint::spin_loop();
        }
    }

    fn echo(&mut self, n: usize, stamp: u8) -> Result<(), String> {
        let e = |e: &dyn std::fmt::Debug| format!("iceoryx2: {e:?}");
        crate::stamped(&mut self.data, n, stamp);
        let pending = self
            .echo
            .loan_slice_uninit(n)
            .map_err(|x| e(&x))?
            .write_from_slice(&self.data)
            .send()
            .map_err(|x| e(&x))?;
        loop {
            if let Some(response) = pending.receive().map_err(|x| e(&x))? {
                // Zero-copy: the echo is read in place, in shared memory.
                return check_echo(response.payload(), n, stamp);
            }
            std::hint::spin_loop();
        }
    }
}
