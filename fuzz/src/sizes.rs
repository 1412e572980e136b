//! The types of the `decode` target: what a peer can send that is small on the wire and large
//! in memory, or nested without end.

use std::collections::{BTreeMap, HashMap};

use lpc::testing::{decode_json, decode_payload, SpillArea};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// 1,032 bytes in memory; `Small` is one byte on the wire (the size gap is the point).
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[allow(dead_code)]
pub enum Wide {
    /// One byte.
    Small,
    /// 1,024 bytes.
    Large([u64; 32], [u64; 32], [u64; 32], [u64; 32]),
}

/// One byte per level.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[allow(dead_code)]
pub enum Chain {
    /// The end.
    End,
    /// A link.
    Link(Box<Chain>),
}

/// A tree, as a JSON document is one.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[allow(dead_code)]
pub enum Tree {
    /// A leaf.
    Leaf(u64),
    /// Children.
    Node(Vec<Tree>),
    /// Named children.
    Map(BTreeMap<String, Tree>),
}

/// A linked list: two levels per node.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[allow(dead_code)]
pub struct Node {
    /// The value.
    pub value: u8,
    /// The rest.
    pub next: Option<Box<Node>>,
}

/// Number of types [`decode_as`] knows.
pub const TYPES: usize = 22;

/// Where a payload is decoded from.
pub enum Path<'a> {
    /// Private memory (an inline or copied payload).
    Private,
    /// A spill buffer, read where it lies.
    Spilled(&'a SpillArea),
    /// JSON (a service's JSON arguments, a client's JSON reply).
    Json,
}

fn run<T: DeserializeOwned>(path: &Path<'_>, bytes: &[u8], limit: u64) -> Result<(), String> {
    match path {
        Path::Private => decode_payload::<T>(bytes, limit).map(drop),
        Path::Spilled(area) => area.decode::<T>(bytes, limit).map(drop),
        Path::Json => decode_json::<T>(bytes, limit).map(drop),
    }
}

/// Decodes `bytes` from `path` under the payload limit `limit`, as type number `which` (below
/// [`TYPES`]); the value is dropped, the error kept.
pub fn decode_as(which: usize, path: Path<'_>, bytes: &[u8], limit: u64) -> Result<(), String> {
    let p = &path;
    match which {
        0 => run::<Vec<Wide>>(p, bytes, limit),
        1 => run::<Vec<Option<([u64; 32], [u64; 32])>>>(p, bytes, limit),
        2 => run::<Vec<Box<Wide>>>(p, bytes, limit),
        3 => run::<HashMap<u32, Wide>>(p, bytes, limit),
        4 => run::<BTreeMap<String, Vec<Wide>>>(p, bytes, limit),
        5 => run::<Vec<()>>(p, bytes, limit),
        6 => run::<Vec<Vec<()>>>(p, bytes, limit),
        7 => run::<Vec<String>>(p, bytes, limit),
        8 => run::<Vec<Vec<u8>>>(p, bytes, limit),
        9 => run::<Chain>(p, bytes, limit),
        10 => run::<Tree>(p, bytes, limit),
        11 => run::<Node>(p, bytes, limit),
        12 => run::<String>(p, bytes, limit),
        13 => run::<serde_bytes::ByteBuf>(p, bytes, limit),
        14 => run::<lpc::__private::WireBytes>(p, bytes, limit),
        15 => run::<lpc::info::ServiceInfo>(p, bytes, limit),
        16 => run::<lpc::InterfaceInfo>(p, bytes, limit),
        17 => run::<lpc::shape::Shape>(p, bytes, limit),
        18 => run::<Vec<lpc::shape::Shape>>(p, bytes, limit),
        19 => run::<(u64, Vec<Wide>, Option<Box<Chain>>)>(p, bytes, limit),
        20 => run::<Vec<HashMap<u8, Vec<Wide>>>>(p, bytes, limit),
        _ => run::<serde_json::Value>(p, bytes, limit),
    }
}
