//! Shared values of plain-old-data types, read and written as their bytes.
//!
//! A [`Shared<T>`] stores its value postcard-encoded with integers at their full width
//! (`codec::encode_fixint`), and every `get` decodes it through serde. For a type whose every
//! byte belongs to a number (a [`bytemuck::Pod`] type: integers, floats, arrays of them,
//! `repr(C)` structs of them without padding) that encoding is, byte for byte, the value's
//! memory on a little-endian machine — so a [`SharedPlain<T>`] copies the bytes in and out as
//! they are, the way iceoryx2's blackboard copies a `Copy` value, and shares the very object a
//! `Shared<T>` of the same name (and `lpc get`/`lpc set`) reads and writes. Whether the two
//! forms agree is not assumed: opening checks it on the type itself (`check_identity`).

use std::borrow::Borrow;
use std::mem::size_of;
use std::time::Duration;

use bytemuck::Pod;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::name::{shared_error, Kind};
use super::value::{Shared, SharedOptions};
use crate::error::Result;
use crate::wire::codec::{decode_exact_fixint, encode_fixint};

/// A shared value of a plain-old-data type `T`, read and written as its bytes: no encoding,
/// no decoding, a `get` is the seqlock's copy and nothing else.
///
/// ```no_run
/// # fn main() -> Result<(), lpc::Error> {
/// // Every process opening "positions" sees the same eight words.
/// let positions: lpc::SharedPlain<[u64; 8]> = lpc::SharedPlain::open("positions")?;
/// positions.update(|p| p[3] += 1)?;
/// println!("{:?}", positions.get()?);
/// # Ok(()) }
/// ```
///
/// `T` is a [`bytemuck::Pod`] type that is also serde (`Serialize + DeserializeOwned`): its
/// shape is recorded and checked as a [`Shared<T>`]'s is, and both open the same object. When
/// `T`'s serde form is not its memory (a custom `Serialize`, a skipped field), opening fails
/// and says so: use [`Shared<T>`]. Everything a `Shared` does but reading and writing the
/// value is reached through [`SharedPlain::shared`].
pub struct SharedPlain<T> {
    shared: Shared<T>,
}

impl<T> std::fmt::Debug for SharedPlain<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SharedPlain").field(&self.shared).finish()
    }
}

impl SharedOptions {
    /// Opens the plain shared value `name`, creating it all zeros if no process holds it.
    pub fn open_plain<T: Pod + Serialize + DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<SharedPlain<T>> {
        self.open_plain_or(name, T::zeroed)
    }

    /// Opens the plain shared value `name`, creating it with `init()` if no process holds it.
    pub fn open_plain_or<T: Pod + Serialize + DeserializeOwned>(
        &self,
        name: &str,
        init: impl FnOnce() -> T,
    ) -> Result<SharedPlain<T>> {
        check_identity::<T>(name)?;
        Ok(SharedPlain {
            shared: self.open_or(name, init)?,
        })
    }

    /// Opens the plain shared value `name` that some process holds (else `SharedNotFound`).
    pub fn open_existing_plain<T: Pod + Serialize + DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<SharedPlain<T>> {
        check_identity::<T>(name)?;
        Ok(SharedPlain {
            shared: self.open_existing(name)?,
        })
    }
}

/// Fails unless `T`'s stored form is its memory: encoding a value gives its bytes, and
/// decoding bytes gives the value they are. Both are tried on two probes whose bytes, taken
/// together, differ at every offset (the low and the high byte of the offset), so a form that
/// moves, drops, repeats or transforms any byte fails one of them.
fn check_identity<T: Pod + Serialize + DeserializeOwned>(name: &str) -> Result<()> {
    let refuse = |why: String| {
        shared_error(
            Kind::Value,
            name,
            format!(
                "`{}` cannot be shared as plain bytes: {why}; open it as a Shared instead",
                std::any::type_name::<T>()
            ),
        )
    };
    if cfg!(target_endian = "big") {
        return Err(refuse("its stored form is little-endian".into()));
    }
    let len = size_of::<T>();
    if len > u16::MAX as usize {
        return Err(refuse(format!(
            "{len} bytes is more than the {} checked",
            u16::MAX
        )));
    }
    for byte_of in [|i: usize| i as u8, |i: usize| (i >> 8) as u8] {
        let probe: Vec<u8> = (0..len).map(byte_of).collect();
        let value: T = bytemuck::pod_read_unaligned(&probe);
        let encoded = encode_fixint(&value).map_err(|e| refuse(format!("encoding: {e}")))?;
        if encoded != probe {
            return Err(refuse(
                "its serde form is not its memory (a custom Serialize, a skipped or \
                 reordered field?)"
                    .into(),
            ));
        }
        let decoded: T = decode_exact_fixint(&probe, len as u64)
            .map_err(|e| refuse(format!("its memory does not decode as its serde form: {e}")))?;
        if bytemuck::bytes_of(&decoded) != probe.as_slice() {
            return Err(refuse(
                "decoding its memory gives another value (a custom Deserialize?)".into(),
            ));
        }
    }
    Ok(())
}

impl<T: Pod + Serialize + DeserializeOwned> SharedPlain<T> {
    /// Opens the plain shared value `name` in the default runtime directory, creating it all
    /// zeros if no process holds it ([`SharedOptions::open_plain`] for more).
    pub fn open(name: &str) -> Result<SharedPlain<T>> {
        SharedOptions::new().open_plain(name)
    }

    /// The value now: a consistent copy of its bytes, never one half-written, whatever other
    /// processes do meanwhile. Makes no system call.
    #[inline(always)]
    pub fn get(&self) -> Result<T> {
        // Any bytes are a `T` (`Pod`): the words are copied into it as they are.
        let mut value = T::zeroed();
        self.shared
            .object
            .read_exact_into(bytemuck::bytes_of_mut(&mut value))?;
        Ok(value)
    }

    /// The value now and its version ([`Shared::get_versioned`]).
    #[inline(always)]
    pub fn get_versioned(&self) -> Result<(T, u64)> {
        let mut value = T::zeroed();
        let version = self
            .shared
            .object
            .read_exact_into(bytemuck::bytes_of_mut(&mut value))?;
        Ok((value, version))
    }

    /// Replaces the value (whole: no reader sees part of it), as [`Shared::set`] does.
    pub fn set(&self, value: impl Borrow<T>) -> Result<()> {
        let object = &self.shared.object;
        let lock = object.lock()?;
        object.write(&lock, bytemuck::bytes_of(value.borrow()))
    }

    /// Changes the value with `f`, no other writer's change in between, as
    /// [`Shared::update`] does.
    pub fn update<R>(&self, f: impl FnOnce(&mut T) -> R) -> Result<R> {
        let object = &self.shared.object;
        let lock = object.lock()?;
        let (mut value, _) = self.get_versioned()?;
        let out = f(&mut value);
        object.write(&lock, bytemuck::bytes_of(&value))?;
        Ok(out)
    }

    /// The current version: the number of writes published so far.
    pub fn version(&self) -> u64 {
        self.shared.version()
    }

    /// Waits until the version differs from `since`, at most `timeout`
    /// ([`Shared::wait_for_change`]).
    pub fn wait_for_change(&self, since: u64, timeout: Duration) -> Result<Option<u64>> {
        self.shared.wait_for_change(since, timeout)
    }

    /// The same object as a [`Shared<T>`], reading and writing through serde.
    pub fn shared(&self) -> &Shared<T> {
        &self.shared
    }

    /// The name.
    pub fn name(&self) -> &str {
        self.shared.name()
    }
}
