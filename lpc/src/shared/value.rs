//! Shared values: one typed value that every process of the user opening its name sees (the
//! DLL shared data section). Memory layout, consistency protocol and writer-crash recovery are
//! described in docs/architecture.md ("Shared values and named segments"); the layout, the
//! seqlock and the writer lock are in `seqlock` (which loom runs: `model`), and this module
//! builds the named, typed value on them: its header and shape, opening and checking it,
//! encoding and decoding.

use std::borrow::Borrow;
use std::marker::PhantomData;
use std::path::PathBuf;
use std::sync::atomic::{fence, Ordering};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::name::{self, hook, shared_error, Holding, Kind, Opened};
use super::seqlock::{self, Layout, Refusal, Seqlock, WriterLock, READ_TIMEOUT, SHAPE_OFFSET};
use crate::error::{Error, Result};
use crate::registry::default_runtime_dir;
use crate::shm::Region;
use crate::sys::SharedMemory;
use crate::wire::codec::{decode_exact, decode_exact_fixint, encode_fixint};
use crate::wire::dynamic::{decode_json_as, encode_json_as, max_encoded_size};
use crate::wire::shape::{difference, fingerprint, Shape, Side, TypeTable};
use crate::wire::trace::Tracer;

pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"LPCSHOBJ");
/// 2: the value is stored as postcard with fixed-width integers (`codec::encode_fixint`), so
/// that a `get` decodes it without a chain of varints (1 stored plain postcard).
pub(crate) const VERSION: u64 = 2;
pub(crate) const KIND_VALUE: u64 = 1;
pub(crate) const KIND_SEGMENT: u64 = 2;

// Header words (every kind).
pub(crate) const H_MAGIC: usize = 0;
pub(crate) const H_VERSION_KIND: usize = 8;
pub(crate) const H_TOTAL_LEN: usize = 16;
pub(crate) const H_DATA_OFFSET: usize = 24;
pub(crate) const H_DATA_LEN: usize = 32;
const H_FINGERPRINT: usize = 40;
const H_SHAPE_OFFSET: usize = 48;
const H_SHAPE_LEN: usize = 56;
/// Largest recorded shape accepted.
const MAX_SHAPE_BYTES: usize = 64 * 1024;
/// Largest encoded value (capacity) a shared value may have.
pub const MAX_VALUE_CAPACITY: usize = 16 * 1024 * 1024;
/// Default for [`SharedOptions::lock_timeout`].
const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(10);
/// What [`SharedOptions`] opens with: where, how large, how long to wait.
#[derive(Debug, Clone)]
pub struct SharedOptions {
    runtime_dir: Option<PathBuf>,
    capacity: Option<usize>,
    lock_timeout: Duration,
}

impl Default for SharedOptions {
    fn default() -> Self {
        SharedOptions::new()
    }
}

impl SharedOptions {
    /// The defaults: the default runtime directory, a capacity computed from the type, a
    /// writer lock timeout of 10 s.
    pub fn new() -> SharedOptions {
        SharedOptions {
            runtime_dir: None,
            capacity: None,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
        }
    }

    /// The runtime directory the name lives in (default: [`default_runtime_dir`]).
    pub fn runtime_dir(mut self, dir: impl Into<PathBuf>) -> SharedOptions {
        self.runtime_dir = Some(dir.into());
        self
    }

    /// The largest encoded size of a value, in bytes, when this process creates the object.
    /// Needed for types whose size has no bound (strings, vectors, maps); for others the
    /// default is their largest encoding. An existing object keeps its own. The encoding is
    /// postcard with integers at their full width (a `u64` takes 8 bytes, a `u32` 4; lengths
    /// are varints): a `Vec<u64>` of up to 100 items needs 1 + 800 bytes whatever their
    /// values.
    pub fn capacity(mut self, bytes: usize) -> SharedOptions {
        self.capacity = Some(bytes);
        self
    }

    /// How long `set` and `update` wait for another writer to finish (default 10 s) before
    /// they fail. A writer that died holding the lock is replaced within a few milliseconds,
    /// whatever this says.
    pub fn lock_timeout(mut self, timeout: Duration) -> SharedOptions {
        self.lock_timeout = timeout;
        self
    }

    fn dir(&self) -> PathBuf {
        self.runtime_dir.clone().unwrap_or_else(default_runtime_dir)
    }

    /// Opens the shared value `name`, creating it with `T::default()` if no process holds it.
    pub fn open<T: Serialize + DeserializeOwned + Default>(&self, name: &str) -> Result<Shared<T>> {
        self.open_or(name, T::default)
    }

    /// Opens the shared value `name`, creating it with `init()` if no process holds it.
    pub fn open_or<T: Serialize + DeserializeOwned>(
        &self,
        name: &str,
        init: impl FnOnce() -> T,
    ) -> Result<Shared<T>> {
        let (shape, types) = trace::<T>(name)?;
        let mut init = Some(init);
        let mut create = || {
            let value = (init.take().expect("create runs once"))();
            let bytes = encode_fixint(&value)
                .map_err(|e| shared_error(Kind::Value, name, format!("encoding: {e}")))?;
            let capacity = match self.capacity.or_else(|| max_encoded_size(&shape, &types)) {
                Some(c) => c,
                None => {
                    return Err(shared_error(
                        Kind::Value,
                        name,
                        format!(
                            "`{shape}` has no largest size (it holds a string, a sequence or a \
                             map): give one, SharedOptions::capacity(bytes)"
                        ),
                    ))
                }
            };
            create_object(name, &shape, &types, capacity, &bytes)
        };
        let object = ValueObject::open(name, &self.dir(), Some(&mut create), self.lock_timeout)?;
        object.check_type(&shape, &types)?;
        Ok(Shared {
            object,
            _type: PhantomData,
        })
    }

    /// Opens the shared value `name` that some process holds (else `SharedNotFound`).
    pub fn open_existing<T: Serialize + DeserializeOwned>(&self, name: &str) -> Result<Shared<T>> {
        let (shape, types) = trace::<T>(name)?;
        let object = ValueObject::open(name, &self.dir(), None, self.lock_timeout)?;
        object.check_type(&shape, &types)?;
        Ok(Shared {
            object,
            _type: PhantomData,
        })
    }

    /// Opens the shared value `name` that some process holds, without knowing its type: its
    /// value is read and written as JSON, by its recorded shape (what `lpc get` and `lpc set`
    /// use).
    pub fn open_untyped(&self, name: &str) -> Result<UntypedShared> {
        Ok(UntypedShared {
            object: ValueObject::open(name, &self.dir(), None, self.lock_timeout)?,
        })
    }
}

fn trace<T: DeserializeOwned>(name: &str) -> Result<(Shape, TypeTable)> {
    let mut tracer = Tracer::default();
    let shape = tracer.trace::<T>().map_err(|e| {
        shared_error(
            Kind::Value,
            name,
            format!("its type cannot be described: {e}"),
        )
    })?;
    let types = tracer.types().map_err(|e| {
        shared_error(
            Kind::Value,
            name,
            format!("its type cannot be described: {e}"),
        )
    })?;
    Ok((shape, types))
}

/// `shape` written out with the definitions of the user types it names.
fn describe_type(shape: &Shape, types: &TypeTable) -> String {
    match shape {
        Shape::Named(n) => types.get(n).map_or_else(|| n.clone(), |def| def.rust(n)),
        other => other.to_string(),
    }
}

/// A fresh value object holding `bytes`.
fn create_object(
    name: &str,
    shape: &Shape,
    types: &TypeTable,
    capacity: usize,
    bytes: &[u8],
) -> Result<SharedMemory> {
    let err = |detail: String| shared_error(Kind::Value, name, detail);
    if capacity > MAX_VALUE_CAPACITY {
        return Err(err(format!(
            "a capacity of {capacity} bytes is more than the {MAX_VALUE_CAPACITY} allowed"
        )));
    }
    if bytes.len() > capacity {
        return Err(err(format!(
            "the initial value takes {} bytes, more than the capacity of {capacity}",
            bytes.len()
        )));
    }
    let shape_bytes = postcard::to_stdvec(&(shape, types))
        .map_err(|e| err(format!("encoding its shape: {e}")))?;
    if shape_bytes.len() > MAX_SHAPE_BYTES {
        return Err(err(format!(
            "its type's shape takes {} bytes, more than the {MAX_SHAPE_BYTES} allowed",
            shape_bytes.len()
        )));
    }
    let layout = Layout::new(shape_bytes.len(), capacity);
    let shm = SharedMemory::create(&format!("lpc-value-{name}"), layout.total_len)
        .map_err(|e| err(format!("creating its memory: {e}")))?;
    let map = shm
        .map()
        .map_err(|e| err(format!("mapping its memory: {e}")))?;
    let region = Region::new(map);
    let oob = |_| err("layout out of bounds (a bug in lpc)".to_owned());
    let fp = fingerprint("", [shape], types);
    region
        .store_words(
            0,
            &[
                MAGIC,
                (VERSION << 32) | KIND_VALUE,
                layout.total_len as u64,
                layout.data_offset as u64,
                capacity as u64,
                fp,
                SHAPE_OFFSET as u64,
                shape_bytes.len() as u64,
            ],
        )
        .map_err(oob)?;
    region
        .store_bytes(SHAPE_OFFSET, &shape_bytes)
        .map_err(oob)?;
    seqlock::initialize(&region, &layout, bytes).map_err(oob)?;
    // Nobody else can reach the memory before its record is in the name file, written after
    // this (and a process reading the record synchronizes through the file).
    fence(Ordering::SeqCst);
    Ok(shm)
}

/// A shared value of type `T`: open-or-create by name, read as a consistent copy whatever
/// other processes do, written whole or read-modify-written, waited on for a change.
///
/// ```no_run
/// # fn main() -> Result<(), lpc::Error> {
/// let counter: lpc::Shared<u64> = lpc::Shared::open("counter")?;
/// counter.update(|n| *n += 1)?;
/// println!("{}", counter.get()?);
/// # Ok(()) }
/// ```
///
/// `T` is any serde type (`Serialize + DeserializeOwned`), stored postcard-encoded in a fixed
/// capacity chosen by its creator (the type's largest encoding, or
/// [`SharedOptions::capacity`]). Its shape is recorded: opening the name as another type fails
/// with [`Error::Shared`], naming both.
pub struct Shared<T> {
    pub(super) object: ValueObject,
    _type: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("name", &self.object.name)
            .field("capacity", &self.object.seqlock.layout.capacity)
            .finish_non_exhaustive()
    }
}

impl<T: Serialize + DeserializeOwned> Shared<T> {
    /// Opens the shared value `name` in the default runtime directory, creating it with
    /// `T::default()` if no process holds it ([`SharedOptions`] for more).
    pub fn open(name: &str) -> Result<Shared<T>>
    where
        T: Default,
    {
        SharedOptions::new().open(name)
    }

    /// The value now: a consistent copy, never one half-written, whatever other processes do
    /// meanwhile. Makes no system call.
    #[inline(always)]
    pub fn get(&self) -> Result<T> {
        Ok(self.get_versioned()?.0)
    }

    /// The value now and its version (the number of writes published before it): pass the
    /// version to [`Shared::wait_for_change`] to wait for the next one.
    #[inline(always)]
    pub fn get_versioned(&self) -> Result<(T, u64)> {
        self.object.read(|bytes| self.decode(bytes))
    }

    #[inline]
    fn decode(&self, bytes: &[u8]) -> Result<T> {
        decode_exact_fixint(bytes, self.object.seqlock.layout.capacity as u64).map_err(|e| {
            shared_error(
                Kind::Value,
                &self.object.name,
                format!("its value does not decode (another process wrote bytes that are not a value of its type): {e}"),
            )
        })
    }

    fn encode(&self, value: &T) -> Result<Vec<u8>> {
        encode_fixint(value)
            .map_err(|e| shared_error(Kind::Value, &self.object.name, format!("encoding: {e}")))
    }

    /// Replaces the value (whole: no reader sees part of it). Waits for another writer to
    /// finish, at most [`SharedOptions::lock_timeout`].
    pub fn set(&self, value: impl Borrow<T>) -> Result<()> {
        let bytes = self.encode(value.borrow())?;
        let lock = self.object.lock()?;
        self.object.write(&lock, &bytes)
    }

    /// Changes the value with `f`, no other writer's change in between (the writer lock is
    /// held while `f` runs: keep it short). Returns what `f` returns. If `f` panics, the value
    /// is unchanged and the lock released.
    pub fn update<R>(&self, f: impl FnOnce(&mut T) -> R) -> Result<R> {
        let lock = self.object.lock()?;
        let (mut value, _) = self.object.read(|bytes| self.decode(bytes))?;
        let out = f(&mut value);
        let bytes = self.encode(&value)?;
        self.object.write(&lock, &bytes)?;
        Ok(out)
    }

    /// The current version: the number of writes published so far.
    pub fn version(&self) -> u64 {
        self.object.version()
    }

    /// Waits until the version differs from `since` (a write was published), at most
    /// `timeout`, sleeping on a futex (no polling). Returns the new version, or `None` if the
    /// timeout passed first.
    pub fn wait_for_change(&self, since: u64, timeout: Duration) -> Result<Option<u64>> {
        Ok(self.object.wait_for_change(since, timeout))
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.object.name
    }

    /// The largest encoded value it holds, in bytes.
    pub fn capacity(&self) -> usize {
        self.object.seqlock.layout.capacity
    }
}

/// A shared value opened without its Rust type ([`SharedOptions::open_untyped`]): read and
/// written as JSON through its recorded shape.
#[derive(Debug)]
pub struct UntypedShared {
    object: ValueObject,
}

impl UntypedShared {
    /// Its shape, as recorded by its creator.
    pub fn shape(&self) -> &Shape {
        &self.object.shape
    }

    /// The user types its shape names.
    pub fn types(&self) -> &TypeTable {
        &self.object.types
    }

    /// Its type written as Rust (`struct Config { level: u32 }`).
    pub fn type_text(&self) -> String {
        describe_type(&self.object.shape, &self.object.types)
    }

    /// The largest encoded value it holds, in bytes.
    pub fn capacity(&self) -> usize {
        self.object.seqlock.layout.capacity
    }

    /// The value as JSON, with its version.
    pub fn get_json(&self) -> Result<(serde_json::Value, u64)> {
        self.object.read(|bytes| {
            decode_json_as(bytes, &self.object.shape, &self.object.types, true).map_err(|e| {
                shared_error(
                    Kind::Value,
                    &self.object.name,
                    format!("its value does not decode: {e}"),
                )
            })
        })
    }

    /// Writes the JSON `value`, which must be a value of its shape.
    pub fn set_json(&self, value: &serde_json::Value) -> Result<()> {
        let bytes =
            encode_json_as(value, &self.object.shape, &self.object.types, true).map_err(|e| {
                shared_error(
                    Kind::Value,
                    &self.object.name,
                    format!("not a value of `{}`: {e}", self.type_text()),
                )
            })?;
        let lock = self.object.lock()?;
        self.object.write(&lock, &bytes)
    }

    /// The current version.
    pub fn version(&self) -> u64 {
        self.object.version()
    }
}

/// The untyped object under both.
#[derive(Debug)]
pub(super) struct ValueObject {
    pub(super) name: String,
    /// Its memory, the layout checked.
    pub(super) seqlock: Seqlock,
    shape: Shape,
    types: TypeTable,
    fingerprint: u64,
    /// Keeps the memory named while we hold it (dropped after the mapping).
    _holding: Holding,
}

fn bad(name: &str, detail: impl Into<String>) -> Error {
    shared_error(
        Kind::Value,
        name,
        format!(
            "its memory is not a shared value lpc made: {} (another program, or a process of \
             this user that wrote over it)",
            detail.into()
        ),
    )
}

/// The header fields of any shared object, validated against its size.
pub(crate) struct Header {
    pub(crate) kind: u64,
    pub(crate) data_offset: usize,
    pub(crate) data_len: usize,
    words: [u64; 8],
}

/// Reads and checks the header common to every kind of shared object.
pub(crate) fn read_header(region: &Region, kind: Kind, name: &str) -> Result<Header> {
    let mut words = [0u64; 8];
    let bad = |d: String| {
        shared_error(
            kind,
            name,
            format!("its memory is not what lpc makes: {d} (another program, or a process of this user that wrote over it)"),
        )
    };
    region
        .load_words(0, &mut words)
        .map_err(|_| bad(format!("{} bytes is too small", region.len())))?;
    fence(Ordering::Acquire);
    if words[H_MAGIC / 8] != MAGIC {
        return Err(bad("no lpc magic number".into()));
    }
    let version = words[H_VERSION_KIND / 8] >> 32;
    if version != VERSION {
        return Err(bad(format!(
            "layout version {version}, this lpc reads version {VERSION}"
        )));
    }
    if words[H_TOTAL_LEN / 8] != region.len() as u64 {
        return Err(bad(format!(
            "its header says {} bytes, the memory has {}",
            words[H_TOTAL_LEN / 8],
            region.len()
        )));
    }
    let to_usize = |w: u64| usize::try_from(w).map_err(|_| bad(format!("field {w} beyond usize")));
    Ok(Header {
        kind: words[H_VERSION_KIND / 8] & 0xffff_ffff,
        data_offset: to_usize(words[H_DATA_OFFSET / 8])?,
        data_len: to_usize(words[H_DATA_LEN / 8])?,
        words,
    })
}

/// A shared object's kind and type, for `lpc list` (reading its memory read-only).
pub(crate) fn describe(shm: &SharedMemory, kind: Kind, name: &str) -> Result<(usize, String)> {
    let map = shm
        .map_read_only()
        .map_err(|e| shared_error(kind, name, format!("mapping its memory: {e}")))?;
    let region = Region::new(map);
    let header = read_header(&region, kind, name)?;
    match kind {
        Kind::Segment => Ok((header.data_len, String::new())),
        Kind::Value => {
            let (layout, shape, types) = value_layout(&region, &header, name)?;
            Ok((layout.capacity, describe_type(&shape, &types)))
        }
    }
}

fn value_layout(
    region: &Region,
    header: &Header,
    name: &str,
) -> Result<(Layout, Shape, TypeTable)> {
    if header.kind != KIND_VALUE {
        return Err(bad(
            name,
            format!("kind {} is not a shared value", header.kind),
        ));
    }
    let w = &header.words;
    let shape_len = usize::try_from(w[H_SHAPE_LEN / 8]).unwrap_or(usize::MAX);
    if w[H_SHAPE_OFFSET / 8] != SHAPE_OFFSET as u64 || shape_len > MAX_SHAPE_BYTES {
        return Err(bad(name, "its shape is out of bounds"));
    }
    if header.data_len > MAX_VALUE_CAPACITY {
        return Err(bad(
            name,
            format!("a capacity of {} bytes", header.data_len),
        ));
    }
    let layout = Layout::new(shape_len, header.data_len);
    if layout.data_offset != header.data_offset || layout.total_len != region.len() {
        return Err(bad(name, "its layout does not add up"));
    }
    let mut shape_bytes = vec![0u8; shape_len];
    region
        .load_bytes(SHAPE_OFFSET, &mut shape_bytes)
        .map_err(|_| bad(name, "its shape is out of bounds"))?;
    let (shape, types): (Shape, TypeTable) = decode_exact(&shape_bytes, MAX_SHAPE_BYTES as u64)
        .map_err(|e| bad(name, format!("its shape does not decode: {e}")))?;
    if fingerprint("", [&shape], &types) != w[H_FINGERPRINT / 8] {
        return Err(bad(name, "its shape does not match its fingerprint"));
    }
    Ok((layout, shape, types))
}

impl ValueObject {
    fn open(
        name: &str,
        dir: &std::path::Path,
        create: Option<&mut dyn FnMut() -> Result<SharedMemory>>,
        lock_timeout: Duration,
    ) -> Result<ValueObject> {
        let holding = match name::open(dir, name, Kind::Value, true, create)? {
            Opened::Existing(h) | Opened::Created(h) => h,
        };
        let map = holding
            .shm
            .map()
            .map_err(|e| shared_error(Kind::Value, name, format!("mapping its memory: {e}")))?;
        let region = Region::new(map);
        let header = read_header(&region, Kind::Value, name)?;
        let (layout, shape, types) = value_layout(&region, &header, name)?;
        let fingerprint = header.words[H_FINGERPRINT / 8];
        Ok(ValueObject {
            name: name.to_owned(),
            seqlock: Seqlock {
                region,
                layout,
                lock_timeout,
            },
            shape,
            types,
            fingerprint,
            _holding: holding,
        })
    }

    /// Fails unless the object holds values of `shape`, naming both types.
    fn check_type(&self, shape: &Shape, types: &TypeTable) -> Result<()> {
        if fingerprint("", [shape], types) == self.fingerprint {
            return Ok(());
        }
        let why = difference(
            &self.shape,
            Side {
                types: &self.types,
                label: "the shared value",
            },
            shape,
            Side {
                types,
                label: "this process",
            },
        )
        .unwrap_or_else(|| "their type names differ".to_owned());
        Err(shared_error(
            Kind::Value,
            &self.name,
            format!(
                "it holds `{}`, and this process opened it as `{}`: {why}",
                describe_type(&self.shape, &self.types),
                describe_type(shape, types)
            ),
        ))
    }

    /// The seqlock's refusal, worded with the value's name.
    #[cold]
    fn refused(&self, refusal: Refusal) -> Error {
        let name = &self.name;
        match refusal {
            Refusal::BeyondCapacity { len, capacity } => bad(
                name,
                format!("a published length of {len} bytes, beyond its capacity of {capacity}"),
            ),
            Refusal::NoConsistentCopy => shared_error(
                Kind::Value,
                name,
                format!(
                    "no consistent copy could be read in {READ_TIMEOUT:?}: a writer keeps \
                     rewriting it faster than it can be read, or wrote it inconsistently"
                ),
            ),
            Refusal::Reentrant => shared_error(
                Kind::Value,
                name,
                "this thread already holds its writer lock (a `set` or `update` inside \
                 `update`'s closure): change the value through the closure's argument",
            ),
            Refusal::LockTimeout { owner, timeout } => shared_error(
                Kind::Value,
                name,
                format!(
                    "its writer lock stayed held by thread {} for {timeout:?} (SharedOptions::lock_timeout)",
                    owner >> 32,
                ),
            ),
            Refusal::TooLarge { len, capacity } => shared_error(
                Kind::Value,
                name,
                format!(
                    "the value takes {len} bytes, more than its capacity of {capacity} (chosen \
                     by its creator, SharedOptions::capacity)"
                ),
            ),
            Refusal::WrongLength { len, expected } => bad(
                name,
                format!(
                    "a published length of {len} bytes, where its type takes {expected} (or a \
                     capacity below that)"
                ),
            ),
            Refusal::OutOfBounds => {
                shared_error(Kind::Value, name, "copy out of bounds (a bug in lpc)")
            }
        }
    }

    fn version(&self) -> u64 {
        self.seqlock.version()
    }

    /// A consistent copy of the published value's bytes, given to `decode`; with its version.
    #[inline(always)]
    pub(super) fn read<R>(&self, decode: impl FnOnce(&[u8]) -> Result<R>) -> Result<(R, u64)> {
        match self.seqlock.read(decode) {
            Ok((value, version)) => Ok((value?, version)),
            Err(refusal) => Err(self.refused(refusal)),
        }
    }

    /// A consistent copy of the published value into `out`, which is as long as the value;
    /// its version.
    #[inline(always)]
    pub(super) fn read_exact_into(&self, out: &mut [u8]) -> Result<u64> {
        match self.seqlock.read_exact_into(out) {
            Ok(version) => Ok(version),
            Err(refusal) => Err(self.refused(refusal)),
        }
    }

    pub(super) fn lock(&self) -> Result<WriterLock<'_>> {
        self.seqlock.lock().map_err(|r| self.refused(r))
    }

    /// Publishes `bytes` as the new value (the caller holds the lock).
    pub(super) fn write(&self, lock: &WriterLock<'_>, bytes: &[u8]) -> Result<()> {
        let steps = |step: &'static str| {
            hook(step);
            true
        };
        self.seqlock
            .write(lock, bytes, &steps)
            .map_err(|r| self.refused(r))
    }

    fn wait_for_change(&self, since: u64, timeout: Duration) -> Option<u64> {
        self.seqlock.wait_for_change(since, timeout)
    }
}
