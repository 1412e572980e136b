//! Shared values and named segments: memory that every process of the user opening a name
//! sees, without a service, a daemon or anything left behind (docs/architecture.md, "Shared
//! values and named segments"; docs/guide.md for examples).
//!
//! * [`Shared<T>`] — one typed value (the DLL shared data section): consistent reads whatever
//!   the writers do, several writers, read-modify-write, waiting for a change.
//! * [`Segment`] — a block of bytes of fixed size (the named file mapping), opened read-write
//!   or read-only, with a safe API of copies and atomic words.
//!
//! Each lives while a process holds it. The memory is a memfd, never in `/dev/shm`; its name is
//! a small file in the runtime directory that lists the holders, removed by the last one to
//! close it — or, after every holder was killed, by the next opener of the name or by
//! [`prune`] (`lpc list --prune`).

//!
//! Under loom (`cfg(loom)`) only `seqlock` is built, for its model (`model`): names, files and
//! processes are not modelled.

// The layout, the seqlock and the writer lock of a value: what loom checks.
#[cfg(all(test, loom))]
mod model;
#[cfg_attr(loom, allow(dead_code))]
mod seqlock;

#[cfg(not(loom))]
mod name;
#[cfg(not(loom))]
mod plain;
#[cfg(not(loom))]
mod segment;
#[cfg(not(loom))]
mod value;

#[cfg(not(loom))]
use std::path::{Path, PathBuf};

#[cfg(not(loom))]
pub use plain::SharedPlain;
#[cfg(not(loom))]
pub use segment::{Segment, SegmentOptions, MAX_SEGMENT_LEN};
#[cfg(not(loom))]
pub use value::{Shared, SharedOptions, UntypedShared, MAX_VALUE_CAPACITY};

#[cfg(not(loom))]
use crate::error::Result;

#[cfg(not(loom))]
/// What a listed name file names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharedKind {
    /// A [`Shared`] value.
    Value,
    /// A [`Segment`].
    Segment,
}

#[cfg(not(loom))]
/// A shared value or segment found in a runtime directory ([`list`]).
#[derive(Debug, Clone)]
pub struct SharedListing {
    /// Its name.
    pub name: String,
    /// Value or segment.
    pub kind: SharedKind,
    /// Its name file.
    pub path: PathBuf,
    /// The pids of the processes holding it (none: every holder is gone, and the file is
    /// stale: the next open of the name or [`prune`] removes it).
    pub holders: Vec<u32>,
    /// Its size in bytes (a value's capacity, a segment's length), if a holder could be
    /// reached.
    pub size: Option<usize>,
    /// A value's type written as Rust, if a holder could be reached.
    pub type_text: Option<String>,
    /// Why its memory could not be described, if it could not.
    pub problem: Option<String>,
}

#[cfg(not(loom))]
fn listings(dir: &Path, prune: bool) -> Result<Vec<SharedListing>> {
    Ok(name::scan(dir, prune)?
        .into_iter()
        .map(|found| {
            let kind = match found.kind {
                name::Kind::Value => SharedKind::Value,
                name::Kind::Segment => SharedKind::Segment,
            };
            let described = found
                .shm
                .as_ref()
                .map(|shm| value::describe(shm, found.kind, &found.name));
            let (size, type_text, problem) = match described {
                Some(Ok((size, text))) => (
                    Some(size),
                    (kind == SharedKind::Value).then_some(text),
                    None,
                ),
                Some(Err(e)) => (None, None, Some(e.to_string())),
                None => (None, None, None),
            };
            SharedListing {
                name: found.name,
                kind,
                path: found.path,
                holders: found.holders,
                size,
                type_text,
                problem,
            }
        })
        .collect())
}

#[cfg(not(loom))]
/// The shared values and segments named in runtime directory `dir`, sorted by name, each with
/// its holders, size and type. A missing directory lists nothing.
pub fn list(dir: &Path) -> Result<Vec<SharedListing>> {
    listings(dir, false)
}

#[cfg(not(loom))]
/// Removes the name files of `dir` that no live process holds (left by holders that were all
/// killed); returns their names.
pub fn prune(dir: &Path) -> Result<Vec<String>> {
    Ok(listings(dir, true)?
        .into_iter()
        .filter(|l| l.holders.is_empty())
        .map(|l| l.name)
        .collect())
}

/// Hooks for lpc's own crash tests. Not a public API.
#[cfg(all(feature = "test-util", not(loom)))]
#[doc(hidden)]
pub mod testing {
    /// Sets a function called at each named step of creating, publishing and writing a shared
    /// object (`value.created`, `value.published`, `value.write.half`,
    /// `value.write.published`, `segment.created`, `segment.published`): a test child blocks
    /// there to be killed at that step. Once per process.
    pub fn set_step_hook(hook: fn(&str)) {
        super::name::set_hook(hook);
    }
}
