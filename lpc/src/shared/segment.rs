//! Named segments: a block of shared memory of fixed size that processes open by name (the
//! named file mapping of `CreateFileMapping`/`OpenFileMapping`), read-write or read-only.
//!
//! ```text
//! 0     header: magic, version and kind, length, data offset (4096), data length
//! 4096  the data, page-aligned
//! ```
//!
//! Every access the safe API makes is atomic (bytes copied in and out with atomic words, aligned
//! words as atomics), so it stays sound while other processes write; what the bytes mean, and
//! whether a copy is consistent, is the users' protocol. A read-only opener maps the memory
//! `PROT_READ` from a read-only descriptor: it cannot write it, nor make its mapping writable.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use super::name::{self, shared_error, Holding, Kind, Opened};
use super::value::{read_header, KIND_SEGMENT, MAGIC, VERSION};
use crate::error::{Error, Result};
use crate::registry::default_runtime_dir;
use crate::shm::Region;
use crate::sys::{wait, wake, SharedMemory, WaitOutcome};

/// Where the data starts.
const DATA_OFFSET: usize = 4096;
/// Largest segment.
pub const MAX_SEGMENT_LEN: usize = 1 << 40;

/// Where [`Segment`]s are named.
#[derive(Debug, Clone, Default)]
pub struct SegmentOptions {
    runtime_dir: Option<PathBuf>,
}

impl SegmentOptions {
    /// The default runtime directory.
    pub fn new() -> SegmentOptions {
        SegmentOptions::default()
    }

    /// The runtime directory the name lives in (default: [`default_runtime_dir`]).
    pub fn runtime_dir(mut self, dir: impl Into<PathBuf>) -> SegmentOptions {
        self.runtime_dir = Some(dir.into());
        self
    }

    fn dir(&self) -> PathBuf {
        self.runtime_dir.clone().unwrap_or_else(default_runtime_dir)
    }

    /// Opens segment `name` read-write, creating it with `len` zero bytes if no process holds
    /// it. An existing segment of another size is an error naming both sizes.
    pub fn create(&self, name: &str, len: usize) -> Result<Segment> {
        if len == 0 || len > MAX_SEGMENT_LEN {
            return Err(shared_error(
                Kind::Segment,
                name,
                format!("a size of {len} bytes: a segment holds 1 byte to {MAX_SEGMENT_LEN}"),
            ));
        }
        let mut create = || new_segment_memory(name, len);
        let segment = self.open_with(name, true, Some(&mut create))?;
        if segment.len != len {
            return Err(shared_error(
                Kind::Segment,
                name,
                format!(
                    "it exists with {} bytes, and this process asked for {len}",
                    segment.len
                ),
            ));
        }
        Ok(segment)
    }
}

impl SegmentOptions {
    /// Opens segment `name`, which some process holds, read-write.
    pub fn open(&self, name: &str) -> Result<Segment> {
        self.open_with(name, true, None)
    }

    /// Opens segment `name`, which some process holds, read-only: this process cannot write
    /// it (its mapping is read-only, from a read-only descriptor).
    pub fn open_read_only(&self, name: &str) -> Result<Segment> {
        self.open_with(name, false, None)
    }

    fn open_with(
        &self,
        name: &str,
        writable: bool,
        create: Option<&mut dyn FnMut() -> Result<SharedMemory>>,
    ) -> Result<Segment> {
        let holding = match name::open(&self.dir(), name, Kind::Segment, writable, create)? {
            Opened::Existing(h) | Opened::Created(h) => h,
        };
        let (len, region) = map_segment(name, &holding.shm, writable)?;
        Ok(Segment {
            name: name.to_owned(),
            len,
            region,
            backing: Backing::Named(holding),
        })
    }
}

/// The memory of a new segment of `len` bytes, its header written.
fn new_segment_memory(name: &str, len: usize) -> Result<SharedMemory> {
    let total = DATA_OFFSET + len.div_ceil(4096) * 4096;
    let shm = SharedMemory::create(&format!("lpc-segment-{name}"), total)
        .map_err(|e| shared_error(Kind::Segment, name, format!("creating its memory: {e}")))?;
    let map = shm
        .map()
        .map_err(|e| shared_error(Kind::Segment, name, format!("mapping its memory: {e}")))?;
    Region::new(map)
        .store_words(
            0,
            &[
                MAGIC,
                (VERSION << 32) | KIND_SEGMENT,
                total as u64,
                DATA_OFFSET as u64,
                len as u64,
            ],
        )
        .map_err(|_| shared_error(Kind::Segment, name, "header out of bounds"))?;
    std::sync::atomic::fence(Ordering::SeqCst);
    Ok(shm)
}

/// Maps a segment's memory (read-write or read-only) and checks its header: its data length.
fn map_segment(name: &str, shm: &SharedMemory, writable: bool) -> Result<(usize, Region)> {
    let map = if writable {
        shm.map()
    } else {
        shm.map_read_only()
    }
    .map_err(|e| shared_error(Kind::Segment, name, format!("mapping its memory: {e}")))?;
    let region = Region::new(map);
    let header = read_header(&region, Kind::Segment, name)?;
    if header.kind != KIND_SEGMENT
        || header.data_offset != DATA_OFFSET
        || header.data_len == 0
        || header.data_len > region.len() - DATA_OFFSET.min(region.len())
    {
        return Err(shared_error(
            Kind::Segment,
            name,
            "its memory is not a segment lpc made (kind or layout)",
        ));
    }
    Ok((header.data_len, region))
}

/// What keeps a segment's memory: this process's hold on its name, or the descriptor a call
/// passed (with what mapping it costs the service's budget).
#[derive(Debug)]
enum Backing {
    Named(Holding),
    Received {
        shm: SharedMemory,
        _charge: Option<crate::channel::budget::Charge>,
    },
}

impl Backing {
    fn shm(&self) -> &SharedMemory {
        match self {
            Backing::Named(holding) => &holding.shm,
            Backing::Received { shm, .. } => shm,
        }
    }
}

/// In a binary call a segment's descriptor crosses (`SCM_RIGHTS`, see `channel::handles`),
/// and only its id in the payload; the receiver maps it read-write if the sender's descriptor
/// is read-write, else read-only. Not in JSON.
impl serde::Serialize for Segment {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::Error as _;
        let why = |why: String| {
            crate::wire::codec::note_custom_reason(why.clone());
            S::Error::custom(why)
        };
        if serializer.is_human_readable() {
            return Err(why(
                "a segment is passed by the kernel, which a JSON call cannot carry".into(),
            ));
        }
        let id = match crate::channel::scope::current(|c| c.send_memory(self.backing.shm())) {
            Some(Ok(id)) => id,
            Some(Err(e)) => return Err(why(format!("cannot send segment `{}`: {e}", self.name))),
            None => {
                return Err(why(
                    "a segment can only be sent as an argument or result of an lpc call".into(),
                ))
            }
        };
        serializer.serialize_newtype_struct(crate::wire::shape::SEGMENT_NAME, &id)
    }
}

impl<'de> serde::Deserialize<'de> for Segment {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Segment, D::Error> {
        use serde::de::Error as _;
        let fail = |why: String| {
            crate::wire::codec::note_custom_reason(why.clone());
            D::Error::custom(why)
        };
        let Some(id) = crate::handle::handle_id(deserializer, crate::wire::shape::SEGMENT_NAME)?
        else {
            // Tracing shapes: a segment of one page stands in (never used).
            return Segment::anonymous(1).map_err(|e| fail(e.to_string()));
        };
        let shm = crate::handle::receive_raw::<D::Error>(id, "segment")?
            .into_shared_memory()
            .map_err(|e| fail(format!("received segment: {e}")))?;
        let charge = crate::channel::scope::current(|c| c.charge(shm.len()))
            .transpose()
            .map_err(|e| {
                crate::channel::budget::note_refusal(crate::channel::budget::Refusal::Busy);
                fail(format!("cannot map the received segment: {e}"))
            })?
            .flatten();
        let writable = shm.writable_descriptor();
        let (len, region) =
            map_segment("(received)", &shm, writable).map_err(|e| fail(e.to_string()))?;
        Ok(Segment {
            name: String::new(),
            len,
            region,
            backing: Backing::Received {
                shm,
                _charge: charge,
            },
        })
    }
}

/// A named segment of shared memory, open read-write or read-only.
///
/// ```no_run
/// # fn main() -> Result<(), lpc::Error> {
/// let seg = lpc::Segment::create("frames", 4096)?;
/// seg.write_at(0, b"hello")?;
/// let mut buf = [0u8; 5];
/// lpc::Segment::open_read_only("frames")?.read_at(0, &mut buf)?;
/// assert_eq!(&buf, b"hello");
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Segment {
    name: String,
    len: usize,
    region: Region,
    backing: Backing,
}

impl Segment {
    /// [`SegmentOptions::create`] in the default runtime directory.
    pub fn create(name: &str, len: usize) -> Result<Segment> {
        SegmentOptions::new().create(name, len)
    }

    /// [`SegmentOptions::open`] in the default runtime directory.
    pub fn open(name: &str) -> Result<Segment> {
        SegmentOptions::new().open(name)
    }

    /// [`SegmentOptions::open_read_only`] in the default runtime directory.
    pub fn open_read_only(name: &str) -> Result<Segment> {
        SegmentOptions::new().open_read_only(name)
    }

    /// A segment of `len` zero bytes with no name, read-write: only a call can pass it to
    /// another process (as an argument or result; the receiver gets it read-write). Gone when
    /// every process holding it drops it.
    pub fn anonymous(len: usize) -> Result<Segment> {
        if len == 0 || len > MAX_SEGMENT_LEN {
            return Err(shared_error(
                Kind::Segment,
                "(anonymous)",
                format!("a size of {len} bytes: a segment holds 1 byte to {MAX_SEGMENT_LEN}"),
            ));
        }
        let shm = new_segment_memory("(anonymous)", len)?;
        let (len, region) = map_segment("(anonymous)", &shm, true)?;
        Ok(Segment {
            name: String::new(),
            len,
            region,
            backing: Backing::Received { shm, _charge: None },
        })
    }

    /// The name (empty for a segment received in a call, or made with [`Segment::anonymous`]).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Never true (a segment holds at least one byte); for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether this process opened it read-write.
    pub fn writable(&self) -> bool {
        self.region.writable()
    }

    fn range(&self, offset: usize, len: usize, align: usize) -> Result<usize> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len && offset.is_multiple_of(align) => {
                Ok(DATA_OFFSET + offset)
            }
            Some(end) if end <= self.len => Err(shared_error(
                Kind::Segment,
                &self.name,
                format!("offset {offset} is not a multiple of {align}"),
            )),
            _ => Err(shared_error(
                Kind::Segment,
                &self.name,
                format!(
                    "{len} bytes at offset {offset} are beyond its {} bytes",
                    self.len
                ),
            )),
        }
    }

    fn writable_or_err(&self) -> Result<()> {
        if self.writable() {
            Ok(())
        } else {
            Err(shared_error(
                Kind::Segment,
                &self.name,
                "it is open read-only in this process (Segment::open_read_only)",
            ))
        }
    }

    /// Copies `out.len()` bytes at `offset` into `out`.
    pub fn read_at(&self, offset: usize, out: &mut [u8]) -> Result<()> {
        let at = self.range(offset, out.len(), 1)?;
        self.region
            .load_bytes(at, out)
            .map_err(|_| self.out_of_bounds())
    }

    /// Copies `bytes` into the segment at `offset` (read-write openers only).
    pub fn write_at(&self, offset: usize, bytes: &[u8]) -> Result<()> {
        self.writable_or_err()?;
        let at = self.range(offset, bytes.len(), 1)?;
        self.region
            .store_bytes(at, bytes)
            .map_err(|_| self.out_of_bounds())
    }

    fn out_of_bounds(&self) -> Error {
        shared_error(
            Kind::Segment,
            &self.name,
            "access out of bounds (a bug in lpc)",
        )
    }

    /// Loads the 64-bit word at `offset` (a multiple of 8).
    pub fn load_u64(&self, offset: usize, order: Ordering) -> Result<u64> {
        let at = self.range(offset, 8, 8)?;
        self.region
            .load_u64(at, order)
            .map_err(|_| self.out_of_bounds())
    }

    /// Loads the 32-bit word at `offset` (a multiple of 4).
    pub fn load_u32(&self, offset: usize, order: Ordering) -> Result<u32> {
        let at = self.range(offset, 4, 4)?;
        self.region
            .load_u32(at, order)
            .map_err(|_| self.out_of_bounds())
    }

    /// The 64-bit word at `offset` (a multiple of 8) as an atomic, for any atomic operation
    /// (read-write openers only; a read-only one has [`Segment::load_u64`]).
    pub fn atomic_u64(&self, offset: usize) -> Result<&AtomicU64> {
        self.writable_or_err()?;
        let at = self.range(offset, 8, 8)?;
        self.region
            .atomic_u64_at(at)
            .map_err(|_| self.out_of_bounds())
    }

    /// The 32-bit word at `offset` (a multiple of 4) as an atomic (read-write openers only).
    pub fn atomic_u32(&self, offset: usize) -> Result<&AtomicU32> {
        self.writable_or_err()?;
        let at = self.range(offset, 4, 4)?;
        self.region
            .atomic_u32_at(at)
            .map_err(|_| self.out_of_bounds())
    }

    /// Sleeps while the 32-bit word at `offset` holds `expected`, at most `timeout` (a futex:
    /// read-only openers may wait too). True if woken or the word differs, false on timeout.
    pub fn wait_u32(&self, offset: usize, expected: u32, timeout: Duration) -> Result<bool> {
        let at = self.range(offset, 4, 4)?;
        let word = self
            .region
            .atomic_u32_for_loads(at)
            .map_err(|_| self.out_of_bounds())?;
        Ok(wait(word, expected, Some(timeout)) == WaitOutcome::Woken)
    }

    /// Wakes up to `n` processes waiting on the 32-bit word at `offset` ([`Segment::wait_u32`]).
    pub fn wake_u32(&self, offset: usize, n: u32) -> Result<()> {
        let at = self.range(offset, 4, 4)?;
        let word = self
            .region
            .atomic_u32_for_loads(at)
            .map_err(|_| self.out_of_bounds())?;
        wake(word, n);
        Ok(())
    }

    /// The first byte of the data, for code that needs raw access (a C library, a GPU
    /// upload). Getting the pointer is safe; using it is `unsafe`, and sound only if: no `&` or
    /// `&mut` to this memory is ever made (other processes may write any byte at any time),
    /// it is accessed with atomic or volatile operations (or torn data is accepted), within
    /// [`Segment::len`] bytes, never written if the segment is read-only (the process would
    /// fault), and not after `self` is dropped (the memory is unmapped).
    pub fn as_ptr(&self) -> *mut u8 {
        self.region.base_ptr().wrapping_add(DATA_OFFSET)
    }
}
