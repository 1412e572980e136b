//! Compile-time behaviour of `#[lpc::service]`: what it accepts, and the errors it gives for
//! what it does not.

#[test]
#[cfg_attr(
    windows,
    ignore = "trybuild runs cargo, a Linux program where Windows tests run under Wine; the \
              macros' compile errors do not depend on the target and are checked on Linux"
)]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
