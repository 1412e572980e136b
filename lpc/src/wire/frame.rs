//! The frame header: the fixed part of a request or reply, stored in its call slot.
//!
//! ```text
//!  0 method id (u32)     4 flags (u32)
//!  8 call id (u64)
//! 16 payload length (u64)
//! 24 spill generation (u32)   28 status (u32, replies)
//! 32 deadline (u64, ns of CLOCK_MONOTONIC, 0 = none)
//! ```
//! All little-endian.

use crate::shm::layout::{FRAME_SIZE, HEAD_SIZE};

/// The payload is in the slot's spill buffer, not inline.
pub(crate) const FLAG_SPILL: u32 = 1;
/// Arguments and result are JSON (calls without compiled stubs: `Client::call_json`, `lpc call`).
pub(crate) const FLAG_JSON: u32 = 2;
/// Reserved: a one-way call; no reply is written.
pub(crate) const FLAG_ONEWAY: u32 = 4;
const KNOWN_FLAGS: u32 = FLAG_SPILL | FLAG_JSON | FLAG_ONEWAY;

/// The outcome of a call, in a reply frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum Status {
    /// The payload is the encoded result.
    Ok = 0,
    /// No method with that id; the payload is empty.
    NoSuchMethod = 1,
    /// The arguments did not decode; the payload is a UTF-8 message.
    BadArguments = 2,
    /// The handler panicked; the payload is the panic message (UTF-8).
    Panicked = 3,
    /// The result is larger than the client accepts; the payload is the size (u64 LE).
    TooLarge = 4,
    /// The result could not be encoded; the payload is a UTF-8 message.
    EncodeFailed = 5,
    /// The request's frame could not be read (unknown flags or status): a broken client, not
    /// bad arguments. The payload is a UTF-8 message; the connection stays open. (A peer of an
    /// older version reads this status as unknown: a protocol error too.)
    MalformedFrame = 6,
    /// The service could not take the call now (one of its budgets — shared memory, mappings
    /// — would be exceeded); the payload is a UTF-8 reason. The connection stays open.
    Busy = 7,
}

impl Status {
    fn from_u32(v: u32) -> Option<Status> {
        Some(match v {
            0 => Status::Ok,
            1 => Status::NoSuchMethod,
            2 => Status::BadArguments,
            3 => Status::Panicked,
            4 => Status::TooLarge,
            5 => Status::EncodeFailed,
            6 => Status::MalformedFrame,
            7 => Status::Busy,

            _ => return None,
        })
    }
}

/// A decoded, validated frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameHeader {
    pub(crate) method: u32,
    pub(crate) flags: u32,
    pub(crate) call_id: u64,
    pub(crate) len: u64,
    pub(crate) spill_generation: u32,
    pub(crate) status: Status,
    pub(crate) deadline_ns: u64,
}

impl FrameHeader {
    pub(crate) fn encode(&self) -> [u8; FRAME_SIZE] {
        let mut out = [0u8; FRAME_SIZE];
        out[0..4].copy_from_slice(&self.method.to_le_bytes());
        out[4..8].copy_from_slice(&self.flags.to_le_bytes());
        out[8..16].copy_from_slice(&self.call_id.to_le_bytes());
        out[16..24].copy_from_slice(&self.len.to_le_bytes());
        out[24..28].copy_from_slice(&self.spill_generation.to_le_bytes());
        out[28..32].copy_from_slice(&(self.status as u32).to_le_bytes());
        out[32..40].copy_from_slice(&self.deadline_ns.to_le_bytes());
        out
    }

    /// Decodes a header copied out of a slot. Unknown flags or status are errors.
    pub(crate) fn decode(bytes: &[u8; FRAME_SIZE]) -> Result<FrameHeader, String> {
        let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().expect("4 bytes"));
        let u64_at = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
        let flags = u32_at(4);
        if flags & !KNOWN_FLAGS != 0 {
            return Err(format!("frame has unknown flags {flags:#x}"));
        }
        let status = Status::from_u32(u32_at(28))
            .ok_or_else(|| format!("frame has unknown status {}", u32_at(28)))?;
        Ok(FrameHeader {
            method: u32_at(0),
            flags,
            call_id: u64_at(8),
            len: u64_at(16),
            spill_generation: u32_at(24),
            status,
            deadline_ns: u64_at(32),
        })
    }

    /// Decodes the header at the start of a slot's head (see `shm::layout::HEAD_SIZE`).
    #[inline]
    pub(crate) fn decode_head(head: &[u8; HEAD_SIZE]) -> Result<FrameHeader, String> {
        FrameHeader::decode(head.first_chunk().expect("a head starts with a frame"))
    }

    pub(crate) fn spilled(&self) -> bool {
        self.flags & FLAG_SPILL != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let h = FrameHeader {
            method: 7,
            flags: FLAG_SPILL,
            call_id: u64::MAX,
            len: 1 << 40,
            spill_generation: 3,
            status: Status::Panicked,
            deadline_ns: 123,
        };
        assert_eq!(FrameHeader::decode(&h.encode()), Ok(h));
    }

    #[test]
    fn rejects_garbage() {
        let mut b = [0u8; FRAME_SIZE];
        b[4] = 0x80;
        assert!(FrameHeader::decode(&b).unwrap_err().contains("flags"));
        let mut b = [0u8; FRAME_SIZE];
        b[28] = 8;
        assert!(FrameHeader::decode(&b).unwrap_err().contains("status"));
    }
}
