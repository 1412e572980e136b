//! Hooks for lpc's own hostile-client tests and fuzz targets. Not a stable API.
//!
//! A [`RawPeer`] speaks the socket protocol by hand and exposes the connection's shared region
//! as plain bytes, so that a test can do what an enemy would: scribble over headers, states
//! and lengths, send malformed messages, half-close the socket, never read a reply.

use std::io;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::shm::layout::{Geometry, HEADER_SIZE};
use crate::shm::Region;
use crate::sys::{self, SharedMemory, Stream};
use crate::wire::handshake::{Hello, Message, MAX_MESSAGE};
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
