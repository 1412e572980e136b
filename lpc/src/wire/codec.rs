//! The payload codec: postcard (a compact, well-kept serde format with a stable wire spec).

use serde::Serialize;

/// Appends the postcard encoding of `value` to `out`, reusing its capacity.
pub(crate) fn encode_into<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
) -> postcard::Result<()> {
    let buf = std::mem::take(out);
    *out = postcard::to_extend(value, buf)?;
    Ok(())
}

/// Decodes `bytes` as exactly one `T`: trailing bytes mean the peer encoded something else.
pub(crate) fn decode_exact<'a, T: serde::Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, String> {
    let (value, rest) = postcard::take_from_bytes(bytes).map_err(|e| e.to_string())?;
    if !rest.is_empty() {
        return Err(format!("{} unexpected trailing bytes", rest.len()));
    }
    Ok(value)
}
