//! Hooks for lpc's own hostile-client tests and fuzz targets. Not a stable API.
//!
//! A [`RawPeer`] speaks the socket protocol by hand and exposes the connection's shared region
//! as plain bytes, so that a test can do what an enemy would: scribble over headers, states
//! and lengths, send malformed messages, half-close the socket, never read a reply.

use std::io;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::sys::OwnedOsHandle as OwnedFd;

use crate::shm::layout::{ConnectionMemory, Geometry, HEADER_SIZE};
use crate::shm::Region;
use crate::sys::{self, Listener, SharedMemory, Stream};
use crate::wire::handshake::{Hello, Message, Welcome, MAX_MESSAGE, PROTOCOL_VERSION};
use crate::wire::interface::InterfaceDescriptor;
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
pub fn decode_payload<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    limit: u64,
) -> Result<T, String> {
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
    pub fn decode<T: serde::de::DeserializeOwned>(
        &self,
        bytes: &[u8],
        limit: u64,
    ) -> Result<T, String> {
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

    /// Sends `bytes` with any descriptor attached (a forged handle notice, say).
    pub fn send_descriptor(
        &self,
        bytes: &[u8],
        fd: crate::sys::BorrowedOsHandle<'_>,
    ) -> io::Result<()> {
        self.stream.send_handle(bytes, fd)
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
                queue_size: welcome.queue_size,
            },
            token: welcome.token,
        })
    }
}

/// A connection whose shared region a test can write at will.
pub struct RawPeer {
    socket: RawSocket,
    region: Region,
    geometry: Geometry,
    token: u64,
}

impl RawPeer {
    /// The connection's token, as loan handles carry it.
    pub fn token(&self) -> u64 {
        self.token
    }

    /// Wakes whoever sleeps on the state word of `slot` (a client waiting for its reply).
    pub fn wake_slot(&self, slot: u32) {
        sys::wake_in(
            self.region.atomic_u32(self.slot_offset(slot)),
            1,
            sys::Lane::Client,
        );
    }

    /// As a service: answers the request on `slot` with a frame that says its `len` bytes
    /// lie in spill buffer `generation` (status Ok), and wakes the client.
    pub fn reply_spilled(&self, slot: u32, len: u64, generation: u32) {
        let base = self.slot_offset(slot);
        let request: [u8; FRAME_SIZE] =
            self.read(base + 8, FRAME_SIZE).try_into().expect("a frame");
        let call_id = FrameHeader::decode(&request).map_or(0, |h| h.call_id);
        let header = FrameHeader {
            method: 0,
            flags: crate::wire::frame::FLAG_SPILL,
            call_id,
            len,
            spill_generation: generation,
            status: crate::wire::frame::Status::Ok,
            deadline_ns: 0,
        };
        self.write(base + 8, &header.encode());
        self.store(base, 3);
        self.wake_slot(slot);
    }

    /// As a service: answers the request on `slot` with `payload` inline (status Ok), and
    /// wakes the client.
    pub fn reply_inline(&self, slot: u32, payload: &[u8]) {
        let base = self.slot_offset(slot);
        let request: [u8; FRAME_SIZE] =
            self.read(base + 8, FRAME_SIZE).try_into().expect("a frame");
        let call_id = FrameHeader::decode(&request).map_or(0, |h| h.call_id);
        let header = FrameHeader {
            method: 0,
            flags: 0,
            call_id,
            len: payload.len() as u64,
            spill_generation: 0,
            status: crate::wire::frame::Status::Ok,
            deadline_ns: 0,
        };
        self.write(base + 8, &header.encode());
        self.write(base + 48, payload);
        self.store(base, 3);
        self.wake_slot(slot);
    }

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

    /// Where the connection's one-way queue starts, if it has one: its tail word (the client's)
    /// at this offset, its head word (the service's) 64 bytes on, its ring 128 bytes on, of
    /// [`RawPeer::queue_size`] bytes (see `shm::layout`).
    pub fn queue_offset(&self) -> Option<usize> {
        (self.geometry.queue_size != 0).then(|| {
            crate::shm::layout::HEADER_SIZE
                + self.geometry.slot_count as usize * self.geometry.slot_size as usize
        })
    }

    /// Bytes of the one-way queue's ring (0: none).
    pub fn queue_size(&self) -> usize {
        self.geometry.queue_size as usize
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
            sys::wake_in(
                self.region.atomic_u32(self.slot_offset(slot)),
                1,
                sys::Lane::Service,
            );
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

    /// Like [`RawPeer::request`], for a request whose `len` payload bytes lie in spill buffer
    /// `generation` (sent beforehand, with its notice) rather than inline.
    pub fn request_spilled(&self, slot: u32, method: u32, len: u64, generation: u32) {
        self.use_slots(slot + 1);
        let header = FrameHeader {
            method,
            flags: crate::wire::frame::FLAG_SPILL,
            call_id: 1,
            len,
            spill_generation: generation,
            status: crate::wire::frame::Status::Ok,
            deadline_ns: 0,
        };
        let base = self.slot_offset(slot);
        self.write(base + 8, &header.encode());
        self.store(base, 1);
        self.ring();
    }

    /// The state word of `slot`.
    pub fn state(&self, slot: u32) -> u32 {
        self.load(self.slot_offset(slot))
    }
}

/// `v` as postcard writes an unsigned integer (a varint): for hand-made payloads.
pub fn varint(v: u64) -> Vec<u8> {
    postcard::to_stdvec(&v).expect("a u64 always encodes")
}

/// A socket message of `tag` with `body` (postcard bytes), prefixed as lpc sends it: the tag,
/// then the protocol version. Tags: 1 hello, 2 welcome, 3 refusal, 4 spill notice, 5 query,
/// 6 query answer, 7 bulk notice, 8 slots notice, 16 handle notice.
pub fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&PROTOCOL_VERSION.to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// A service driven by hand, for tests of what a hostile *service* can do to its clients:
/// send descriptors of any kind, lie in its welcome, answer with anything.
pub struct RawService {
    listener: Listener,
    /// Tells when a client is waiting to be accepted.
    reactor: sys::Reactor,
    name: String,
}

impl RawService {
    /// Listens as service `name` in `dir` (which must exist).
    pub fn bind(dir: &Path, name: &str) -> io::Result<RawService> {
        let listener = Listener::bind(&crate::registry::socket_path(dir, name))?;
        let reactor = sys::Reactor::new()?;
        reactor.watch_listener(&listener)?;
        Ok(RawService {
            listener,
            reactor,
            name: name.to_owned(),
        })
    }

    /// The next client, waiting up to `timeout` for one to connect.
    pub fn accept(&self, timeout: Duration) -> io::Result<RawServiceConnection> {
        let deadline = Instant::now() + timeout;
        let mut events = Vec::new();
        loop {
            if let Some(stream) = self.listener.accept()? {
                return Ok(RawServiceConnection {
                    socket: RawSocket { stream },
                    name: self.name.clone(),
                });
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "no client came"));
            }
            events.clear();
            self.reactor.wait(&mut events, Some(left))?;
        }
    }
}

/// One client of a [`RawService`].
pub struct RawServiceConnection {
    socket: RawSocket,
    name: String,
}

impl RawServiceConnection {
    /// The socket (to receive the client's hello, send anything).
    pub fn socket(&self) -> &RawSocket {
        &self.socket
    }

    /// Sends `bytes` with any descriptor attached, unchecked.
    pub fn send_descriptor(&self, bytes: &[u8], fd: OwnedFd) -> io::Result<()> {
        self.socket
            .stream
            .send(bytes, Some(&SharedMemory::wrap_unchecked(fd)))
    }

    /// A welcome for `interface` (or an empty one) with one slot of 4096 bytes, as this
    /// service would send it; attach the region's descriptor to it.
    pub fn welcome_message(&self, interface: Option<&InterfaceDescriptor>) -> io::Result<Vec<u8>> {
        let interface = match interface {
            Some(i) => i
                .info()
                .map_err(|e| io::Error::other(e.to_string()))?
                .clone(),
            None => crate::wire::interface::InterfaceInfo {
                name: "Nothing".into(),
                fingerprint: 0,
                methods: Vec::new(),
                types: Default::default(),
            },
        };
        Ok(Message::Welcome(Welcome {
            service: self.name.clone(),
            interface: std::sync::Arc::new(interface),
            slot_count: RAW_SERVICE_GEOMETRY.slot_count,
            slot_size: RAW_SERVICE_GEOMETRY.slot_size,
            queue_size: 0,
            max_request: 1 << 20,
            token: 1,
        })
        .encode())
    }

    /// Welcomes the client properly (receiving its hello first), with a real region, which
    /// the returned peer can then write at will — e.g. answer a call with a forged reply.
    pub fn welcome(self, interface: Option<&InterfaceDescriptor>) -> io::Result<RawPeer> {
        self.socket.recv(Duration::from_secs(5))?;
        let shm = SharedMemory::create("lpc-test", RAW_SERVICE_GEOMETRY.region_len())?;
        ConnectionMemory::initialize(&shm, RAW_SERVICE_GEOMETRY).map_err(io::Error::other)?;
        let welcome = self.welcome_message(interface)?;
        self.socket.stream.send(&welcome, Some(&shm))?;
        Ok(RawPeer {
            socket: self.socket,
            region: Region::new(shm.map()?),
            geometry: RAW_SERVICE_GEOMETRY,
            token: 1,
        })
    }
}

/// The geometry a [`RawService`] welcomes with: one slot of 4096 bytes.
const RAW_SERVICE_GEOMETRY: Geometry = Geometry {
    slot_count: 1,
    slot_size: 4096,
    queue_size: 0,
};

/// The size of the region a [`RawService`]'s welcome announces.
pub fn raw_service_region_len() -> usize {
    RAW_SERVICE_GEOMETRY.region_len()
}

/// Sends `bytes` on `peer`'s socket with any descriptor attached, unchecked.
pub fn send_descriptor(peer: &RawPeer, bytes: &[u8], fd: OwnedFd) -> io::Result<()> {
    peer.socket
        .stream
        .send(bytes, Some(&SharedMemory::wrap_unchecked(fd)))
}

/// The socket notice that a spill buffer for `slot` of `generation` follows.
pub fn spill_notice(slot: u32, generation: u32) -> Vec<u8> {
    Message::Spill { slot, generation }.encode()
}

/// The socket notice that bulk buffer `id` follows.
pub fn bulk_notice(id: u32) -> Vec<u8> {
    Message::Bulk { id }.encode()
}

/// The kind of a refusal message (`"Denied"`, `"Busy"`, `"Protocol"`), or `None` if `message`
/// is not a refusal.
pub fn refusal_kind(message: &[u8]) -> Option<String> {
    match Message::decode(message) {
        Ok(Message::Refused(refusal)) => Some(format!("{:?}", refusal.kind)),
        _ => None,
    }
}

/// What a [`ScriptedService`] answers, whatever it is asked: every byte of it is the test's choice
/// (names, signatures, type names, users and process names with terminal escapes, say).
#[derive(Debug, Clone)]
pub struct RawAnswers {
    /// Sent as it is to every query (before the asker replaces its pid and user with the
    /// kernel's).
    pub info: crate::wire::info::ServiceInfo,
    /// Announced in the welcome to every hello.
    pub interface: crate::wire::interface::InterfaceInfo,
    /// When set, every hello is refused (`Denied`) with this reason instead.
    pub refusal: Option<String>,
    /// How every call is answered.
    pub reply: RawReply,
}

/// The answer of a [`ScriptedService`] to every call.
#[derive(Debug, Clone)]
pub enum RawReply {
    /// A successful call with these bytes as its result (JSON, for a JSON call).
    Result(Vec<u8>),
    /// A handler that panicked with this message.
    Panicked(String),
}

/// A service that speaks the protocol by hand, for tests of what a client (the CLI, say) does
/// with a hostile service's answers: it binds `<dir>/<name>.sock` and answers every query and
/// hello, and every call on slot 0, with its [`RawAnswers`]. Stopped, and its socket removed,
/// when dropped.
pub struct ScriptedService {
    path: std::path::PathBuf,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    reactor: std::sync::Arc<sys::Reactor>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ScriptedService {
    /// Binds `name` in `dir` (which must exist) and serves `answers` on a thread of its own.
    pub fn start(dir: &Path, name: &str, answers: RawAnswers) -> io::Result<ScriptedService> {
        use std::sync::atomic::AtomicBool;
        use std::sync::Arc;
        let path = crate::registry::socket_path(dir, name);
        let listener = sys::Listener::bind(&path)?;
        let reactor = Arc::new(sys::Reactor::new()?);
        reactor.watch_listener(&listener)?;
        let stop = Arc::new(AtomicBool::new(false));
        let (stop_, reactor_, name) = (stop.clone(), reactor.clone(), name.to_owned());
        let answers = Arc::new(answers);
        let thread = std::thread::spawn(move || {
            let mut events = Vec::new();
            while !stop_.load(Ordering::SeqCst) {
                events.clear();
                if reactor_.wait(&mut events, None).is_err() {
                    return;
                }
                while let Ok(Some(stream)) = listener.accept() {
                    let (answers, stop, name) = (answers.clone(), stop_.clone(), name.clone());
                    // Detached: each ends when its client leaves (or within the doorbell's
                    // recheck interval after the service stops).
                    std::thread::spawn(move || {
                        let _ = answer(stream, &name, &answers, &stop);
                    });
                }
            }
        });
        Ok(ScriptedService {
            path,
            stop,
            reactor,
            thread: Some(thread),
        })
    }
}

impl Drop for ScriptedService {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.reactor.wake();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Answers one connection of a [`ScriptedService`].
fn answer(
    stream: Stream,
    name: &str,
    answers: &RawAnswers,
    stop: &std::sync::atomic::AtomicBool,
) -> io::Result<()> {
    use crate::channel::{Channel, Taken};
    use crate::shm::layout::ConnectionMemory;
    use crate::wire::frame::Status;
    use crate::wire::handshake::{Refusal, RefusalKind, Welcome};
    let mut buf = vec![0u8; MAX_MESSAGE];
    let (n, _) = stream.recv(&mut buf, Some(Instant::now() + Duration::from_secs(5)))?;
    match Message::decode(&buf[..n]) {
        Ok(Message::Query) => {
            let info = Message::Info(Box::new(answers.info.clone()));
            stream.send(&info.encode(), None)
        }
        Ok(Message::Hello(_)) => {
            if let Some(reason) = &answers.refusal {
                let refusal = Message::Refused(Refusal {
                    kind: RefusalKind::Denied,
                    reason: reason.clone(),
                });
                return stream.send(&refusal.encode(), None);
            }
            let geometry = Geometry {
                slot_count: 2,
                slot_size: 4096,
                queue_size: 0,
            };
            let shm = SharedMemory::create("lpc-raw-service", geometry.region_len())?;
            let memory = ConnectionMemory::initialize(&shm, geometry).map_err(io::Error::other)?;
            let welcome = Message::Welcome(Welcome {
                service: name.to_owned(),
                interface: std::sync::Arc::new(answers.interface.clone()),
                slot_count: geometry.slot_count,
                slot_size: geometry.slot_size,
                queue_size: 0,
                max_request: 1 << 20,
                token: 1,
            });
            stream.send(&welcome.encode(), Some(&shm))?;
            let stream = std::sync::Arc::new(stream);
            let channel = Channel::new(name, memory, stream.clone());
            let done = || stop.load(Ordering::SeqCst) || stream.peer_closed();
            while !done() {
                if let Some(Taken {
                    frame,
                    withdrawable,
                    ..
                }) = channel.take_request(0)
                {
                    let request = frame.map_err(io::Error::other)?;
                    let (status, bytes) = match &answers.reply {
                        RawReply::Result(bytes) => (Status::Ok, bytes.clone()),
                        RawReply::Panicked(message) => {
                            (Status::Panicked, message.clone().into_bytes())
                        }
                    };
                    let reply = FrameHeader {
                        method: request.method,
                        flags: 0,
                        call_id: request.call_id,
                        len: 0,
                        spill_generation: 0,
                        status,
                        deadline_ns: 0,
                    };
                    channel
                        .write_payload(0, &bytes, reply)
                        .map_err(|e| io::Error::other(e.to_string()))?;
                    channel.complete(0, withdrawable);
                }
                channel.service_sleep(done, || false);
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Checks that this machine can start processes in new PID namespaces (root, and util-linux's
/// `unshare`, which `scripts/setup.sh` installs); panics with the reason if not, so that a test
/// that needs them fails instead of passing without running.
pub fn require_pid_namespaces() {
    let is_root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false);
    assert!(is_root, "this test needs root to create PID namespaces");
    let status = std::process::Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .status()
        .unwrap_or_else(|e| panic!("cannot run unshare (scripts/setup.sh installs it): {e}"));
    assert!(status.success(), "unshare --pid fails here: {status}");
}

/// How many handles process `pid` holds and how many threads it runs, on Windows (where
/// Linux tests read `/proc`); `None` if the process cannot be read.
#[cfg(windows)]
pub fn process_resources(pid: u32) -> Option<(usize, usize)> {
    crate::sys::process_resources(pid)
}

/// The views of sections mapped in process `pid`, on Windows: their bytes and how many there
/// are (where Linux tests read `/proc/<pid>/maps`); `None` if the process cannot be read.
#[cfg(windows)]
pub fn mapped_views(pid: u32) -> Option<(u64, usize)> {
    crate::sys::mapped_views(pid)
}

/// What each handle of process `pid` is (its value, kind and name, one per line), on Windows:
/// for the message of a test that found handles left over.
#[cfg(windows)]
pub fn process_handle_names(pid: u32) -> Vec<String> {
    crate::sys::process_handle_names(pid)
}

/// Whether process `pid` exists and has not exited (the backend's own check).
pub fn process_alive(pid: u32) -> bool {
    crate::sys::process_alive(pid)
}

/// The system calls one-way posts of this process made: how many times they rang a sleeping
/// service's doorbell (`futex_wake`; a post to a service that is awake makes none), and how
/// many times they slept for room in a full queue (`futex_wait`).
pub fn oneway_system_calls() -> (u64, u64) {
    crate::channel::queue::system_calls()
}
