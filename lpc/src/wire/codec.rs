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

/// Appends the postcard encoding of `value` to `out`.
#[inline]
pub(crate) fn encode_into<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
) -> postcard::Result<()> {
    postcard::serialize_with_flavor(value, AppendTo(out))
}

/// Decodes `bytes` as exactly one `T`: trailing bytes mean the peer encoded something else.
pub(crate) fn decode_exact<'a, T: serde::Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, String> {
    let (value, rest) = postcard::take_from_bytes(bytes).map_err(|e| e.to_string())?;
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
}
