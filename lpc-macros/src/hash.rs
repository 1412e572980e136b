//! The hashes of the interface descriptor, computed when the macro runs. They must equal
//! `lpc::fnv1a64` and `lpc::method_id` bit for bit: client and service compare them.

/// FNV-1a, 64 bits (`lpc::fnv1a64`).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// FNV-1a, 32 bits, masked below `lpc::RESERVED_METHOD_IDS` (`lpc::method_id`).
pub fn method_id(name: &str) -> u32 {
    let hash = name.bytes().fold(0x811c_9dc5_u32, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    });
    hash & 0x7fff_ffff
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // Reference values of FNV-1a.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
        assert_eq!(method_id(""), 0x811c_9dc5 & 0x7fff_ffff);
        assert_eq!(method_id("a"), 0xe40c_292c & 0x7fff_ffff);
        assert_eq!(method_id("foobar"), 0xbf9c_f968 & 0x7fff_ffff);
    }

    #[test]
    fn ids_stay_below_the_reserved_range() {
        for name in ["add", "compare", "name", "ping", "blur", "get"] {
            assert!(method_id(name) < 0x8000_0000);
        }
    }
}
