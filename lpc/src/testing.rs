//! Hooks for lpc's own hostile-client tests and fuzz targets. Not a stable API.
//!
//! A [`RawPeer`] speaks the socket protocol by hand and exposes the connection's shared region
//! as plain bytes, so that a test can do what an enemy would: scribble over headers, states
//! and lengths, send malformed messages, half-close the socket, never read a reply.

use std::io;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::channel::Channel;
use crate::shm::layout::{ConnectionMemory, Geometry, HEADER_SIZE};
use crate::shm::Region;
use crate::sys::{self, Listener, SharedMemory, Stream};
use crate::wire::frame::Status;
use crate::wire::handshake::{Hello, Message, Welcome, MAX_MESSAGE, PROTOCOL_VERSION};
use crate::wire::info::ServiceInfo;
use crate::wire::interface::InterfaceInfo;
use crate::wire::FrameHeader;

/// Decodes one socket message as the service would (for fuzzing the handshake decoder).
pub fn decode_message(bytes: &[u8]) -> Result<(), String> {
    Message::decode(bytes)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Decodes a frame header as the service would (for fuzzing the frame decoder). Inputs of
/// the wrong length are rejected like a short read.
pub fn decode_frame(bytes: &[u8]) -> Result<(), String> {
    let array = bytes
        .try_into()
        .map_err(|_| "frame of the wrong size".to_string())?;
    FrameHeader::decode(array).map(|_| ())
}

/// Decodes `bytes` as a call payload of type `T`, as either side decodes arguments or
/// results copied into private memory, under the payload limit `limit` (for fuzzing the
/// decode budget: see `wire::budget`).
pub fn decode_payload<T: serde::de::DeserializeOwned>(bytes: &[u8], limit: u64) -> Result<T, String> {
    crate::wire::codec::decode_exact(bytes, limit)
}

/// Decodes `bytes` as a JSON call payload of type `T`, as a service decodes JSON arguments and
/// a client a JSON reply: parsed into a `Value`, then decoded, both within one budget.
pub fn decode_json<T: serde::de::DeserializeOwned>(bytes: &[u8], limit: u64) -> Result<T, String> {
    let budget = crate::wire::budget::Budget::for_payload(bytes.len(), limit);
    let value = crate::wire::budget::json_value(bytes, &budget).map_err(|e| e.to_string())?;
    budget.deserialize(value).map_err(|e| e.to_string())
}

/// A spill buffer to decode payloads from where they lie, as both sides decode a spilled
/// payload (copied out piece by piece, `channel::payload::SpillSource`).
pub struct SpillArea {
    region: Region,
}

impl SpillArea {
    /// A buffer of `len` bytes.
    pub fn new(len: usize) -> io::Result<SpillArea> {
        let shm = SharedMemory::create("lpc-test", len)?;
        Ok(SpillArea {
            region: Region::new(shm.map()?),
        })
    }

    /// Writes `bytes` at the start of the buffer (up to its length) and decodes them as a
    /// payload of type `T`, under the payload limit `limit`.
    pub fn decode<T: serde::de::DeserializeOwned>(&self, bytes: &[u8], limit: u64) -> Result<T, String> {
        let len = bytes.len().min(self.region.len());
        self.region
            .copy_in(0, &bytes[..len])
            .map_err(|_| "outside the buffer".to_string())?;
        let mut spare = Vec::new();
        let source = crate::channel::payload::SpillSource::new(&self.region, len, &mut spare);
        crate::wire::codec::decode_exact_from(source, limit)
    }
}

/// The size of an encoded frame header.
pub const FRAME_SIZE: usize = crate::shm::layout::FRAME_SIZE;

/// A socket to a service, with nothing sent yet.
pub struct RawSocket {
    stream: Stream,
}

impl RawSocket {
    /// Connects to service `name` in `dir` without a handshake.
    pub fn connect(dir: &Path, name: &str) -> io::Result<RawSocket> {
        let path = crate::registry::socket_path(dir, name);
        Ok(RawSocket {
            stream: Stream::connect(&path, Instant::now() + Duration::from_secs(5))?,
        })
    }

    /// Sends `bytes` as one message.
    pub fn send(&self, bytes: &[u8]) -> io::Result<()> {
        self.stream.send(bytes, None)
    }

    /// Sends `bytes` with a fresh shared-memory object of `len` bytes attached.
    pub fn send_with_memory(&self, bytes: &[u8], len: usize) -> io::Result<()> {
        let shm = SharedMemory::create("lpc-test", len)?;
        self.stream.send(bytes, Some(&shm))
    }

    /// Sends `bytes` with a fresh shared-memory object of `len` bytes attached, which starts
    /// with `contents` (a forged spill buffer, say).
    pub fn send_with_contents(&self, bytes: &[u8], len: usize, contents: &[u8]) -> io::Result<()> {
        let shm = SharedMemory::create("lpc-test", len)?;
        crate::shm::Region::new(shm.map()?)
            .copy_in(0, contents)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "contents exceed len"))?;
        self.stream.send(bytes, Some(&shm))
    }

    /// Receives one message (its bytes; empty when the service closed), waiting up to `timeout`.
    pub fn recv(&self, timeout: Duration) -> io::Result<Vec<u8>> {
        let mut buf = vec![0u8; MAX_MESSAGE];
        let (n, _) = self.stream.recv(&mut buf, Some(Instant::now() + timeout))?;
        buf.truncate(n);
        Ok(buf)
    }

    /// Shuts both directions of the socket down (the process keeps the descriptor).
    pub fn shutdown(&self) {
        self.stream.shutdown();
    }

    /// True once the service has closed its end.
    pub fn closed_by_peer(&self) -> bool {
        self.stream.peer_closed()
    }

    /// Completes a valid handshake (no interface check) and maps the connection's region.
    pub fn handshake(self) -> io::Result<RawPeer> {
        let hello = Hello {
            service: String::new(),
            interface: None,
            max_reply: 1 << 30,
        };
        self.stream.send(&Message::Hello(hello).encode(), None)?;
        let mut buf = vec![0u8; MAX_MESSAGE];
        let (n, shm) = self
            .stream
            .recv(&mut buf, Some(Instant::now() + Duration::from_secs(5)))?;
        let welcome = match Message::decode(&buf[..n]) {
            Ok(Message::Welcome(w)) => w,
            other => return Err(io::Error::other(format!("no welcome: {other:?}"))),
        };
        let shm = shm.ok_or_else(|| io::Error::other("welcome without memory"))?;
        let region = Region::new(shm.map()?);
        Ok(RawPeer {
            socket: self,
            region,
            geometry: Geometry {
                slot_count: welcome.slot_count,
                slot_size: welcome.slot_size,
            },
        })
    }
}

/// A connection whose shared region a test can write at will.
pub struct RawPeer {
    socket: RawSocket,
    region: Region,
    geometry: Geometry,
}

impl RawPeer {
    /// The socket.
    pub fn socket(&self) -> &RawSocket {
        &self.socket
    }

    /// The region's length in bytes.
    pub fn len(&self) -> usize {
        self.region.len()
    }

    /// Never true: a region has at least its header.
    pub fn is_empty(&self) -> bool {
        self.region.len() == 0
    }

    /// Number of call slots.
    pub fn slot_count(&self) -> u32 {
        self.geometry.slot_count
    }

    /// Byte offset of slot `index` (its state word; the frame header follows at +8, the inline
    /// payload at +48).
    pub fn slot_offset(&self, index: u32) -> usize {
        HEADER_SIZE + index as usize * self.geometry.slot_size as usize
    }

    /// Writes `bytes` at `offset` (clipped to the region).
    pub fn write(&self, offset: usize, bytes: &[u8]) {
        let end = (offset + bytes.len()).min(self.region.len());
        if offset < end {
            let _ = self.region.copy_in(offset, &bytes[..end - offset]);
        }
    }

    /// Reads `len` bytes at `offset`.
    pub fn read(&self, offset: usize, len: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let _ = self.region.copy_out(offset, len, &mut out);
        out
    }

    /// Atomically stores `value` in the 32-bit word at `offset` (4-aligned, in the region).
    pub fn store(&self, offset: usize, value: u32) {
        self.region
            .atomic_u32(offset)
            .store(value, Ordering::SeqCst);
    }

    /// Loads the 32-bit word at `offset`.
    pub fn load(&self, offset: usize) -> u32 {
        self.region.atomic_u32(offset).load(Ordering::SeqCst)
    }

    /// Raises the "slots used" mark to `count` (never lowers it), as a client does before its
    /// first request in a slot: the service then serves slots below it, each from slot 1 up
    /// with a thread of its own, started the next time the connection's thread looks (after
    /// a [`RawPeer::ring`]).
    pub fn use_slots(&self, count: u32) {
        self.region
            .atomic_u32(crate::shm::layout::SLOTS_USED)
            .fetch_max(count, Ordering::SeqCst);
    }

    /// Bumps the service's doorbell and wakes it, and wakes the service thread of every slot
    /// (slots 1 and up have one each, sleeping on the slot's state word).
    pub fn ring(&self) {
        let bell = self.region.atomic_u32(64);
        bell.fetch_add(1, Ordering::SeqCst);
        sys::wake(bell, 1);
        for slot in 1..self.geometry.slot_count {
            sys::wake(self.region.atomic_u32(self.slot_offset(slot)), 1);
        }
    }

    /// Writes a well-formed request for method `method` with `payload` inline into `slot` and
    /// publishes it.
    pub fn request(&self, slot: u32, method: u32, payload: &[u8]) {
        self.use_slots(slot + 1);
        let header = FrameHeader {
            method,
            flags: 0,
            call_id: 1,
            len: payload.len() as u64,
            spill_generation: 0,
            status: crate::wire::frame::Status::Ok,
            deadline_ns: 0,
        };
        let base = self.slot_offset(slot);
        self.write(base + 8, &header.encode());
        self.write(base + 48, payload);
        self.store(base, 1);
        self.ring();
    }

    /// The state word of `slot`.
    pub fn state(&self, slot: u32) -> u32 {
        self.load(self.slot_offset(slot))
    }
}

/// A socket message of `tag` with `body` (postcard bytes), prefixed as lpc sends it: the tag,
/// then the protocol version. Tags: 1 hello, 2 welcome, 3 refusal, 4 spill notice, 5 query,
/// 6 query answer, 7 bulk notice, 8 slots notice.
pub fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&PROTOCOL_VERSION.to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// A service that speaks the protocol by hand, for tests of what a hostile *service* can do
/// to a real client: it answers a hello or a query with bytes of the test's choosing, and calls
/// with any payload.
pub struct RawService {
    listener: Listener,
}

impl RawService {
    /// Listens as service `name` in `dir` (which must exist, private to this user).
    pub fn bind(dir: &Path, name: &str) -> io::Result<RawService> {
        let path = crate::registry::socket_path(dir, name);
        let _ = std::fs::remove_file(&path);
        Ok(RawService {
            listener: Listener::bind(&path)?,
        })
    }

    /// The next connection, with its first message (a hello or a query) read; waits up to
    /// `timeout`.
    pub fn accept(&self, timeout: Duration) -> io::Result<RawServiceConn> {
        let deadline = Instant::now() + timeout;
        let stream = loop {
            if let Some(stream) = self.listener.accept()? {
                break stream;
            }
            if Instant::now() >= deadline {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "no client connected"));
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        let mut buf = vec![0u8; MAX_MESSAGE];
        let (n, _) = stream.recv(&mut buf, Some(deadline))?;
        buf.truncate(n);
        Ok(RawServiceConn {
            stream: Arc::new(stream),
            first: buf,
        })
    }
}

/// A client's connection to a [`RawService`], its first message read.
pub struct RawServiceConn {
    stream: Arc<Stream>,
    first: Vec<u8>,
}

impl RawServiceConn {
    /// The client's first message, as received.
    pub fn first_message(&self) -> &[u8] {
        &self.first
    }

    /// Whether the first message is a query (`lpc::query`) rather than a hello.
    pub fn is_query(&self) -> bool {
        matches!(Message::decode(&self.first), Ok(Message::Query))
    }

    /// Sends `bytes` as one message.
    pub fn send(&self, bytes: &[u8]) -> io::Result<()> {
        self.stream.send(bytes, None)
    }

    /// Sends `bytes` with a fresh shared-memory object of `len` bytes attached (a forged
    /// welcome's region, say).
    pub fn send_with_memory(&self, bytes: &[u8], len: usize) -> io::Result<()> {
        let shm = SharedMemory::create("lpc-test", len)?;
        self.stream.send(bytes, Some(&shm))
    }

    /// Answers a query with `info`.
    pub fn answer_query(&self, info: ServiceInfo) -> io::Result<()> {
        self.send(&Message::Info(Box::new(info)).encode())
    }

    /// Answers a hello with a well-formed welcome announcing `interface` (two slots of 4 KiB),
    /// then serves the connection by hand.
    pub fn welcome(self, interface: InterfaceInfo) -> io::Result<RawCalls> {
        let geometry = Geometry {
            slot_count: 2,
            slot_size: 4096,
        };
        let shm = SharedMemory::create("lpc-test", geometry.region_len())?;
        let region = Region::new(shm.map()?);
        let memory = ConnectionMemory::initialize(region, geometry).map_err(io::Error::other)?;
        let welcome = Welcome {
            service: "raw".into(),
            interface: Arc::new(interface),
            slot_count: geometry.slot_count,
            slot_size: geometry.slot_size,
            max_request: 1 << 20,
            token: 1,
        };
        self.stream
            .send(&Message::Welcome(welcome).encode(), Some(&shm))?;
        let mut channel = Channel::new("raw", memory, self.stream.clone());
        channel.set_receive_limit(1 << 20);
        Ok(RawCalls { channel })
    }
}

/// The calls of a connection a [`RawService`] welcomed: each answered with the payload a test
/// chooses.
pub struct RawCalls {
    channel: Channel,
}

/// A request taken by [`RawCalls::next_request`], to answer with [`RawCalls::reply`].
#[derive(Debug)]
pub struct RawRequest {
    /// Its slot.
    pub slot: u32,
    /// The method id its frame names.
    pub method: u32,
    /// Its payload (an inline one; empty if spilled).
    pub payload: Vec<u8>,
    call_id: u64,
    withdrawable: bool,
}

impl RawCalls {
    /// Takes the next request in any slot, waiting up to `timeout`.
    pub fn next_request(&self, timeout: Duration) -> io::Result<RawRequest> {
        let deadline = Instant::now() + timeout;
        loop {
            for slot in 0..self.channel.memory().geometry().slot_count {
                if !self.channel.has_request(slot) {
                    continue;
                }
                let Some(taken) = self.channel.take_request(slot) else {
                    continue;
                };
                let header = taken.frame.map_err(io::Error::other)?;
                let mut payload = Vec::new();
                if !header.spilled() {
                    let _ = self
                        .channel
                        .read_payload(slot, &header, 1 << 20, &mut payload);
                }
                return Ok(RawRequest {
                    slot,
                    method: header.method,
                    payload,
                    call_id: header.call_id,
                    withdrawable: taken.withdrawable,
                });
            }
            if Instant::now() >= deadline {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "no request came"));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Answers `request` with status 0 (the payload is the result) and `payload`: inline if it
    /// fits the slot, else in a spill buffer (announced first, as lpc does).
    pub fn reply(&self, request: RawRequest, payload: &[u8]) -> io::Result<()> {
        let written = self
            .channel
            .write_payload(request.slot, payload)
            .map_err(|e| io::Error::other(e.to_string()))?;
        let header = FrameHeader {
            method: request.method,
            flags: written.flags,
            call_id: request.call_id,
            len: written.len,
            spill_generation: written.spill_generation,
            status: Status::Ok,
            deadline_ns: 0,
        };
        self.channel.slot(request.slot).write_frame(&header.encode());
        if self.channel.complete(request.slot, request.withdrawable) {
            Ok(())
        } else {
            Err(io::Error::other("the client broke the slot's state"))
        }
    }
}
