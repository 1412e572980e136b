//! The payload codec: postcard (a compact, well-kept serde format with a stable wire spec).

use serde::Serialize;

/// A postcard output that appends to a borrowed `Vec`, keeping its capacity across calls
/// (postcard's own `to_extend` pushes through an iterator one byte at a time).
struct AppendTo<'a>(&'a mut Vec<u8>);

impl postcard::ser_flavors::Flavor for AppendTo<'_> {
    type Output = ();

    #[inline]
    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        self.0.push(byte);
        Ok(())
    }

    #[inline]
    fn try_extend(&mut self, bytes: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

thread_local! {
    /// The message of the last custom serde error raised on this thread (postcard keeps only
    /// "custom error"); taken by the next failure that reports it.
    static CUSTOM_REASON: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Records why a `Serialize`/`Deserialize` impl is about to fail with a custom error.
pub(crate) fn note_custom_reason(why: String) {
    CUSTOM_REASON.with(|r| *r.borrow_mut() = Some(why));
}

/// A postcard error's message: for a custom error, the reason noted just before it. Only
/// failures read the note (nothing on the success path), and every failure clears it.
fn explain(e: postcard::Error) -> String {
    let noted = CUSTOM_REASON.with(|r| r.borrow_mut().take());
    match e {
        postcard::Error::SerdeSerCustom | postcard::Error::SerdeDeCustom => {
            noted.unwrap_or_else(|| e.to_string())
        }
        _ => e.to_string(),
    }
}

/// Appends the postcard encoding of `value` to `out`.
#[inline]
pub(crate) fn encode_into<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    postcard::serialize_with_flavor(value, AppendTo(out)).map_err(explain)
}

/// Decodes `bytes` as exactly one `T`: trailing bytes mean the peer encoded something else.
pub(crate) fn decode_exact<'a, T: serde::Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, String> {
    let (value, rest) = postcard::take_from_bytes(bytes).map_err(explain)?;
    if !rest.is_empty() {
        return Err(format!("{} unexpected trailing bytes", rest.len()));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_what_postcard_would_write() {
        let value = (1u32, -5i64, "text", vec![1u8, 2, 3], Some(2.5f64));
        let mut out = vec![0xee];
        encode_into(&value, &mut out).unwrap();
        assert_eq!(out[0], 0xee);
        assert_eq!(&out[1..], postcard::to_stdvec(&value).unwrap());
        let back: (u32, i64, String, Vec<u8>, Option<f64>) = decode_exact(&out[1..]).unwrap();
        assert_eq!(back, (1, -5, "text".into(), vec![1, 2, 3], Some(2.5)));
        assert!(decode_exact::<u32>(&[1, 2])
            .unwrap_err()
            .contains("trailing"));
    }

    #[test]
    fn a_noted_reason_explains_only_a_custom_error_and_never_a_later_one() {
        note_custom_reason("stale".into());
        // A non-custom failure clears the note without using it.
        let err = decode_exact::<u64>(&[]).unwrap_err();
        assert!(!err.contains("stale"), "{err}");
        note_custom_reason("the real reason".into());
        let err = decode_exact::<Refuser>(&[0]).unwrap_err();
        assert_eq!(err, "the real reason");
    }

    #[derive(Debug)]
    struct Refuser;

    impl<'de> serde::Deserialize<'de> for Refuser {
        fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
            Err(serde::de::Error::custom("the real reason"))
        }
    }
}
