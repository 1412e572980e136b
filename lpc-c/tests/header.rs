//! The committed header (`lpc-c/include/lpc.h`, what C programs include) is the one cbindgen
//! generates from the code now: a change to the ABI that forgot the header fails here.

#[test]
fn the_committed_header_is_the_generated_one() {
    let generated = std::fs::read_to_string(env!("LPC_GENERATED_HEADER")).unwrap();
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/include/lpc.h")).unwrap();
    assert!(
        generated == committed,
        "lpc-c/include/lpc.h is stale: copy {} over it",
        env!("LPC_GENERATED_HEADER")
    );
}
