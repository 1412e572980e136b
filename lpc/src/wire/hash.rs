//! The hash of fingerprints and method ids: FNV-1a, small and `const`, so that the macro and
//! the runtime compute the same values.

/// FNV-1a, 64 bits: the fingerprint hash. The macro computes the same function at compile time.
pub const fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}
