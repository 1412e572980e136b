//! The payload codec: postcard (a compact, well-kept serde format with a stable wire spec).

use serde::Serialize;

/// Appends the postcard encoding of `value` to `out`, reusing its capacity.
pub(crate) fn encode_into<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> postcard::Result<()> {
    let buf = std::mem::take(out);
    *out = postcard::to_extend(value, buf)?;
    Ok(())
}
