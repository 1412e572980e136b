//! The ABI's conventions, called from Rust as C would: NULLs are refused with
//! `LPC_ERR_INVALID` and a message, every free function accepts NULL, errors carry their
//! status and message.

use std::ffi::{c_char, CStr, CString};
use std::ptr::{null, null_mut};

use lpc_c::*;

fn message(err: *const lpc_error) -> String {
    // SAFETY: a live error from lpc, or NULL; the message lives as long as the error.
    unsafe { CStr::from_ptr(lpc_error_message(err)) }
        .to_string_lossy()
        .into_owned()
}

#[test]
fn nulls_are_refused_with_a_message_and_every_free_accepts_null() {
    let mut err: *mut lpc_error = null_mut();
    // SAFETY: NULL arguments are part of the contract (refused); `err` is writable.
    let client = unsafe { lpc_connect(null(), null(), &mut err) };
    assert!(client.is_null());
    // SAFETY: `err` was set by the call above.
    let status = unsafe { lpc_error_status(err) };
    assert_eq!(status, lpc_status::LPC_ERR_INVALID);
    assert_eq!(message(err), "name is NULL");
    // SAFETY: freed once.
    unsafe { lpc_error_free(err) };

    let mut reply: *mut c_char = null_mut();
    let mut err: *mut lpc_error = null_mut();
    let method = CString::new("add").unwrap();
    // SAFETY: a NULL client is refused; the other pointers are valid.
    let status = unsafe {
        lpc_call_json(
            null(),
            method.as_ptr(),
            method.as_ptr(),
            &mut reply,
            &mut err,
        )
    };
    assert_eq!(status, lpc_status::LPC_ERR_INVALID);
    assert!(reply.is_null());
    // SAFETY: freed once.
    unsafe { lpc_error_free(err) };

    // A failing call without an `err` pointer just returns its status.
    // SAFETY: as above, with `err` NULL (allowed).
    let status = unsafe { lpc_call(null(), 1, null(), 0, null_mut(), null_mut(), null_mut()) };
    assert_eq!(status, lpc_status::LPC_ERR_INVALID);

    // SAFETY: NULL is allowed for every free function, and for the error accessors.
    unsafe {
        lpc_client_free(null_mut());
        lpc_options_free(null_mut());
        lpc_string_free(null_mut());
        lpc_bytes_free(null_mut(), 0);
        lpc_error_free(null_mut());
        assert_eq!(lpc_error_status(null()), lpc_status::LPC_ERR_INVALID);
    }
    assert_eq!(message(null()), "");
}

#[test]
fn a_missing_service_is_not_found_and_bad_options_are_invalid() {
    let dir = tempfile::TempDir::new().unwrap();
    let options = lpc_options_new();
    let path = CString::new(dir.path().to_str().unwrap()).unwrap();
    let mut err: *mut lpc_error = null_mut();
    // SAFETY: live options, a NUL-terminated path, a writable `err`.
    unsafe {
        assert_eq!(
            lpc_options_runtime_dir(options, path.as_ptr(), &mut err),
            lpc_status::LPC_OK
        );
        assert_eq!(
            lpc_options_connect_timeout_ms(options, 2_000, &mut err),
            lpc_status::LPC_OK
        );
        assert_eq!(
            lpc_options_runtime_dir(options, null(), &mut err),
            lpc_status::LPC_ERR_INVALID
        );
        assert_eq!(message(err), "dir is NULL");
        lpc_error_free(err);
    }
    let name = CString::new("nobody-serves-this").unwrap();
    let mut err: *mut lpc_error = null_mut();
    // SAFETY: as above.
    let client = unsafe { lpc_connect(name.as_ptr(), options, &mut err) };
    assert!(client.is_null());
    // SAFETY: `err` set by the failed connect; freed once; options freed once.
    unsafe {
        assert_eq!(lpc_error_status(err), lpc_status::LPC_ERR_NOT_FOUND);
        assert!(message(err).contains("not found"), "{}", message(err));
        lpc_error_free(err);
        lpc_options_free(options);
    }
}
