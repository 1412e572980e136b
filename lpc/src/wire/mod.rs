//! What travels between client and service: the frame header of a call (in a slot), the
//! handshake and notices (over the socket), the interface and service descriptions they
//! carry, and the payload codec.
//!
//! Every decoder here takes bytes already copied out of shared memory or received from the
//! socket, and validates them completely: it returns an error for anything it does not
//! understand instead of guessing.

pub(crate) mod budget;
pub(crate) mod codec;
pub(crate) mod decode;
pub(crate) mod dynamic;
pub(crate) mod encode;
pub(crate) mod frame;
pub(crate) mod handshake;
pub(crate) mod hash;
pub mod info;
pub(crate) mod interface;
pub(crate) mod shape;
pub(crate) mod trace;

pub(crate) use frame::FrameHeader;
pub use handshake::DEFAULT_MAX_PAYLOAD;
