//! The C ABI of lpc: C and C++ programs connect to an lpc service by name and call it, by
//! method name with JSON or by method id with the binary (postcard) encoding Rust clients use.
//!
//! The header, `include/lpc.h`, is generated from this file by cbindgen (`build.rs`); it
//! compiles as C99 and as C++. Conventions, all of them checked by the tests:
//!
//! * every function returns an `lpc_status` (`LPC_OK`, 0, on success) or a pointer (NULL on
//!   failure); a failing call fills `*err` with an `lpc_error` when `err` is not NULL, which
//!   the caller frees with `lpc_error_free`;
//! * every handle has its free function (`lpc_client_free`, `lpc_options_free`,
//!   `lpc_string_free`, `lpc_bytes_free`, `lpc_error_free`), and each accepts NULL;
//! * no Rust panic crosses the boundary: each function runs inside `catch_unwind` and reports
//!   a panic as `LPC_ERR_INTERNAL`;
//! * strings are NUL-terminated UTF-8; a NULL where a value is required is `LPC_ERR_INVALID`.
//!
//! A client handle may be used from several threads at once (calls run in parallel, as in
//! Rust).

use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::time::Duration;

/// Outcome of a call through the C ABI.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum lpc_status {
    /// Success.
    LPC_OK = 0,
    /// An argument was NULL, not UTF-8, or out of range.
    LPC_ERR_INVALID = 1,
    /// No service has that name.
    LPC_ERR_NOT_FOUND = 2,
    /// The connection or call did not finish in time.
    LPC_ERR_TIMEOUT = 3,
    /// The service is gone (crashed or stopped).
    LPC_ERR_DISCONNECTED = 4,
    /// The service or the connection is at a limit; retry later.
    LPC_ERR_BUSY = 5,
    /// The service has no such method.
    LPC_ERR_NO_SUCH_METHOD = 6,
    /// The service serves another version of the interface.
    LPC_ERR_MISMATCH = 7,
    /// The service could not run the call: bad arguments, a panic in the handler, a result
    /// too large.
    LPC_ERR_REMOTE = 8,
    /// The peer broke the protocol.
    LPC_ERR_PROTOCOL = 9,
    /// The caller may not connect (access denied) or another operating-system failure.
    LPC_ERR_SYSTEM = 10,
    /// A bug in lpc (a panic, caught at the boundary).
    LPC_ERR_INTERNAL = 11,
}

use lpc_status::*;

/// An error: its status and message. Free with `lpc_error_free`.
#[allow(non_camel_case_types)]
pub struct lpc_error {
    status: lpc_status,
    message: CString,
}

/// Options for `lpc_connect`. Free with `lpc_options_free`.
#[allow(non_camel_case_types)]
pub struct lpc_options {
    options: lpc::ClientOptions,
}

/// A connection to a service. Free with `lpc_client_free`.
#[allow(non_camel_case_types)]
pub struct lpc_client {
    client: lpc::Client,
}

fn status_of(e: &lpc::Error) -> lpc_status {
    use lpc::Error::*;
    match e {
        NotFound { .. } => LPC_ERR_NOT_FOUND,
        Timeout { .. } => LPC_ERR_TIMEOUT,
        Disconnected { .. } => LPC_ERR_DISCONNECTED,
        Busy { .. } => LPC_ERR_BUSY,
        NoSuchMethod { .. } => LPC_ERR_NO_SUCH_METHOD,
        InterfaceMismatch { .. } => LPC_ERR_MISMATCH,
        Protocol { .. } => LPC_ERR_PROTOCOL,
        InvalidName { .. } | InvalidOption { .. } => LPC_ERR_INVALID,
        Io { .. } | Denied { .. } => LPC_ERR_SYSTEM,
        _ => LPC_ERR_REMOTE,
    }
}

/// Stores an error in `*err` (if `err` is not NULL) and returns its status.
fn fail(err: *mut *mut lpc_error, status: lpc_status, message: impl Into<String>) -> lpc_status {
    if !err.is_null() {
        let message = message.into().replace('\0', "\\0");
        let boxed = Box::new(lpc_error {
            status,
            message: CString::new(message).unwrap_or_default(),
        });
        // SAFETY: `err` is not NULL, and the caller passes a pointer to a writable
        // `lpc_error *` (the documented contract of every function taking `err`).
        unsafe { *err = Box::into_raw(boxed) };
    }
    status
}

fn fail_lpc(err: *mut *mut lpc_error, e: &lpc::Error) -> lpc_status {
    fail(err, status_of(e), e.to_string())
}

/// Runs `f` at the boundary: a panic becomes `LPC_ERR_INTERNAL`.
fn guarded(err: *mut *mut lpc_error, f: impl FnOnce() -> lpc_status) -> lpc_status {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(status) => status,
        Err(_) => fail(
            err,
            LPC_ERR_INTERNAL,
            "lpc panicked inside a C call (a bug in lpc)",
        ),
    }
}

/// A required C string argument as `&str`.
///
/// # Safety
/// `s` is NULL or points to a NUL-terminated string that outlives the call.
unsafe fn text<'a>(s: *const c_char, what: &str) -> Result<&'a str, String> {
    if s.is_null() {
        return Err(format!("{what} is NULL"));
    }
    // SAFETY: not NULL (checked) and NUL-terminated (the caller's contract).
    unsafe { CStr::from_ptr(s) }
        .to_str()
        .map_err(|_| format!("{what} is not UTF-8"))
}

/// New default options (the user's runtime directory, default timeouts).
#[no_mangle]
pub extern "C" fn lpc_options_new() -> *mut lpc_options {
    catch_unwind(|| {
        Box::into_raw(Box::new(lpc_options {
            options: lpc::ClientOptions::new(),
        }))
    })
    .unwrap_or(std::ptr::null_mut())
}

/// Frees options (NULL is allowed).
///
/// # Safety
/// `options` is NULL or was returned by `lpc_options_new` and not freed yet.
#[no_mangle]
pub unsafe extern "C" fn lpc_options_free(options: *mut lpc_options) {
    if !options.is_null() {
        // SAFETY: allocated by `lpc_options_new` (the caller's contract), freed once.
        drop(unsafe { Box::from_raw(options) });
    }
}

/// Applies `change` to the options behind `options`.
///
/// # Safety
/// `options` is NULL or a live `lpc_options`.
unsafe fn with_options(
    options: *mut lpc_options,
    err: *mut *mut lpc_error,
    change: impl FnOnce(lpc::ClientOptions) -> Result<lpc::ClientOptions, String>,
) -> lpc_status {
    guarded(err, || {
        if options.is_null() {
            return fail(err, LPC_ERR_INVALID, "options is NULL");
        }
        // SAFETY: a live `lpc_options` (the caller's contract), not aliased during the call.
        let options = unsafe { &mut *options };
        let current = std::mem::take(&mut options.options);
        match change(current.clone()) {
            Ok(changed) => {
                options.options = changed;
                LPC_OK
            }
            Err(why) => {
                options.options = current;
                fail(err, LPC_ERR_INVALID, why)
            }
        }
    })
}

/// Looks for services in `dir` instead of the user's runtime directory.
///
/// # Safety
/// `options` is a live `lpc_options`; `dir` a NUL-terminated string; `err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn lpc_options_runtime_dir(
    options: *mut lpc_options,
    dir: *const c_char,
    err: *mut *mut lpc_error,
) -> lpc_status {
    // SAFETY: the caller's contract, passed on.
    unsafe {
        with_options(options, err, |o| {
            // SAFETY: `dir` is NULL or NUL-terminated (the caller's contract).
            let dir = text(dir, "dir")?;
            Ok(o.runtime_dir(PathBuf::from(dir)))
        })
    }
}

/// Gives up connecting (and handshaking) after `ms` milliseconds.
///
/// # Safety
/// `options` is a live `lpc_options`; `err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn lpc_options_connect_timeout_ms(
    options: *mut lpc_options,
    ms: u64,
    err: *mut *mut lpc_error,
) -> lpc_status {
    // SAFETY: the caller's contract, passed on.
    unsafe {
        with_options(options, err, |o| {
            Ok(o.connect_timeout(Duration::from_millis(ms)))
        })
    }
}

/// Gives every call up after `ms` milliseconds (`LPC_ERR_TIMEOUT`); 0 means no limit.
///
/// # Safety
/// `options` is a live `lpc_options`; `err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn lpc_options_call_timeout_ms(
    options: *mut lpc_options,
    ms: u64,
    err: *mut *mut lpc_error,
) -> lpc_status {
    // SAFETY: the caller's contract, passed on.
    unsafe {
        with_options(options, err, |o| {
            if ms == 0 {
                Ok(o)
            } else {
                Ok(o.call_timeout(Duration::from_millis(ms)))
            }
        })
    }
}

/// Connects to service `name` (any interface: calls are checked by the service). `options`
/// may be NULL for the defaults. Returns NULL on failure, with `*err` set.
///
/// # Safety
/// `name` is a NUL-terminated string; `options` NULL or a live `lpc_options`; `err` NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn lpc_connect(
    name: *const c_char,
    options: *const lpc_options,
    err: *mut *mut lpc_error,
) -> *mut lpc_client {
    let mut client = std::ptr::null_mut();
    guarded(err, || {
        // SAFETY: NULL or NUL-terminated (the caller's contract).
        let name = match unsafe { text(name, "name") } {
            Ok(name) => name,
            Err(why) => return fail(err, LPC_ERR_INVALID, why),
        };
        let defaults = lpc::ClientOptions::new();
        let options = if options.is_null() {
            &defaults
        } else {
            // SAFETY: a live `lpc_options` (the caller's contract), only read.
            unsafe { &(*options).options }
        };
        match lpc::Client::connect_dynamic(name, options) {
            Ok(c) => {
                client = Box::into_raw(Box::new(lpc_client { client: c }));
                LPC_OK
            }
            Err(e) => fail_lpc(err, &e),
        }
    });
    client
}

/// Closes the connection and frees the handle (NULL is allowed). Calls still running on
/// other threads must have returned.
///
/// # Safety
/// `client` is NULL or was returned by `lpc_connect` and not freed yet.
#[no_mangle]
pub unsafe extern "C" fn lpc_client_free(client: *mut lpc_client) {
    if !client.is_null() {
        // SAFETY: allocated by `lpc_connect` (the caller's contract), freed once.
        let _ = catch_unwind(AssertUnwindSafe(|| drop(unsafe { Box::from_raw(client) })));
    }
}

/// The client of a live handle.
///
/// # Safety
/// `client` is NULL or a live `lpc_client`.
unsafe fn client_of<'a>(client: *const lpc_client) -> Option<&'a lpc::Client> {
    // SAFETY: NULL or live (the caller's contract); only shared access.
    unsafe { client.as_ref() }.map(|c| &c.client)
}

/// The service's method `name`, or `missing` (with the reason in `*err`).
fn method_of<'c>(
    c: &'c lpc::Client,
    name: &str,
    missing: lpc_status,
    err: *mut *mut lpc_error,
) -> Result<&'c lpc::MethodInfo, lpc_status> {
    c.interface()
        .methods
        .iter()
        .find(|m| m.name == name)
        .ok_or_else(|| {
            fail(
                err,
                missing,
                format!(
                    "service {} has no method {name}: it serves another version of the interface",
                    c.service_name()
                ),
            )
        })
}

/// The id of method `method` of the service (for `lpc_call`), in `*id`.
///
/// # Safety
/// `client` is a live `lpc_client`; `method` NUL-terminated; `id` writable; `err` NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn lpc_method_id(
    client: *const lpc_client,
    method: *const c_char,
    id: *mut u32,
    err: *mut *mut lpc_error,
) -> lpc_status {
    guarded(err, || {
        // SAFETY: the caller's contract.
        let (Some(c), Ok(name)) = (unsafe { client_of(client) }, unsafe {
            text(method, "method")
        }) else {
            return fail(err, LPC_ERR_INVALID, "client, method or id is NULL");
        };
        if id.is_null() {
            return fail(err, LPC_ERR_INVALID, "id is NULL");
        }
        match method_of(c, name, LPC_ERR_NO_SUCH_METHOD, err) {
            Ok(m) => {
                // SAFETY: not NULL (checked), writable (the caller's contract).
                unsafe { *id = m.id };
                LPC_OK
            }
            Err(status) => status,
        }
    })
}

/// The id and shape fingerprint of the service's method `method` (`lpc describe` shows
/// both): what generated stubs compare with their own at connect.
///
/// # Safety
/// `client` is a live `lpc_client`; `method` NUL-terminated; `id` and `fingerprint`
/// writable; `err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn lpc_method_fingerprint(
    client: *const lpc_client,
    method: *const c_char,
    id: *mut u32,
    fingerprint: *mut u64,
    err: *mut *mut lpc_error,
) -> lpc_status {
    guarded(err, || {
        // SAFETY: the caller's contract.
        let (Some(c), Ok(name)) = (unsafe { client_of(client) }, unsafe {
            text(method, "method")
        }) else {
            return fail(err, LPC_ERR_INVALID, "client or method is NULL");
        };
        if id.is_null() || fingerprint.is_null() {
            return fail(err, LPC_ERR_INVALID, "id or fingerprint is NULL");
        }
        match method_of(c, name, LPC_ERR_MISMATCH, err) {
            Ok(m) => {
                // SAFETY: not NULL (checked), writable (the caller's contract).
                unsafe {
                    *id = m.id;
                    *fingerprint = m.fingerprint;
                }
                LPC_OK
            }
            Err(status) => status,
        }
    })
}

/// Makes an error of `status` with `message` about `method` (either may be NULL) in `*err`,
/// and returns `status`: for generated stubs, to report what they found wrong the way lpc
/// reports its own errors.
///
/// # Safety
/// `message` and `method` are NULL or NUL-terminated; `err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn lpc_fail(
    status: lpc_status,
    message: *const c_char,
    method: *const c_char,
    err: *mut *mut lpc_error,
) -> lpc_status {
    guarded(err, || {
        // SAFETY: the caller's contract.
        let message = unsafe { text(message, "message") }.unwrap_or("failed");
        // SAFETY: the caller's contract.
        match unsafe { text(method, "method") } {
            Ok(method) => fail(err, status, format!("{method}: {message}")),
            Err(_) => fail(err, status, message),
        }
    })
}

/// Calls `method` with JSON arguments (an array in parameter order, or an object by name)
/// and stores the service's JSON reply — `{"result": …}`, or `{"error": …}` for a method
/// returning `Result` that failed — in `*reply`, a string to free with `lpc_string_free`.
///
/// # Safety
/// `client` is a live `lpc_client`; `method` and `args_json` NUL-terminated; `reply`
/// writable; `err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn lpc_call_json(
    client: *const lpc_client,
    method: *const c_char,
    args_json: *const c_char,
    reply: *mut *mut c_char,
    err: *mut *mut lpc_error,
) -> lpc_status {
    guarded(err, || {
        // SAFETY: the caller's contract.
        let c = match unsafe { client_of(client) } {
            Some(c) if !reply.is_null() => c,
            _ => return fail(err, LPC_ERR_INVALID, "client or reply is NULL"),
        };
        // SAFETY: the caller's contract.
        let (method, args) = match unsafe { (text(method, "method"), text(args_json, "args_json")) }
        {
            (Ok(m), Ok(a)) => (m, a),
            (Err(why), _) | (_, Err(why)) => return fail(err, LPC_ERR_INVALID, why),
        };
        let args: serde_json::Value = match serde_json::from_str(args) {
            Ok(v) => v,
            Err(e) => return fail(err, LPC_ERR_INVALID, format!("args_json is not JSON: {e}")),
        };
        match c.call_json(method, &args) {
            Ok(value) => {
                let text = CString::new(value.to_string()).unwrap_or_default();
                // SAFETY: not NULL (checked), writable (the caller's contract).
                unsafe { *reply = text.into_raw() };
                LPC_OK
            }
            Err(e) => fail_lpc(err, &e),
        }
    })
}

/// Calls method `method_id` with `args` (`args_len` bytes: the postcard encoding of the tuple
/// of the arguments, as a Rust client sends them) and stores the encoded result in `*result`
/// (`*result_len` bytes, to free with `lpc_bytes_free`; NULL when empty).
///
/// # Safety
/// `client` is a live `lpc_client`; `args` points to `args_len` readable bytes (or is NULL
/// with `args_len` 0); `result` and `result_len` writable; `err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn lpc_call(
    client: *const lpc_client,
    method_id: u32,
    args: *const u8,
    args_len: usize,
    result: *mut *mut u8,
    result_len: *mut usize,
    err: *mut *mut lpc_error,
) -> lpc_status {
    // SAFETY: the caller's contract, which is `lpc_call_into`'s with no room: every result
    // comes back allocated.
    unsafe {
        lpc_call_into(
            client,
            method_id,
            args,
            args_len,
            std::ptr::null_mut(),
            0,
            result,
            result_len,
            err,
        )
    }
}

/// Like `lpc_call`, with room for the result: when the encoded result fits in `space`
/// (`space_len` bytes), it is written there and `*result` is `space`, and nothing is
/// allocated; otherwise `*result` is a new allocation to free with `lpc_bytes_free`. Free
/// `*result` only when it is not `space`. The typed stubs `lpc gen c` writes call this with a
/// buffer on their stack.
///
/// # Safety
/// As `lpc_call`; `space` points to `space_len` writable bytes (or is NULL with `space_len`
/// 0), not overlapping `args`.
#[no_mangle]
pub unsafe extern "C" fn lpc_call_into(
    client: *const lpc_client,
    method_id: u32,
    args: *const u8,
    args_len: usize,
    space: *mut u8,
    space_len: usize,
    result: *mut *mut u8,
    result_len: *mut usize,
    err: *mut *mut lpc_error,
) -> lpc_status {
    guarded(err, || {
        // SAFETY: the caller's contract.
        let c = match unsafe { client_of(client) } {
            Some(c) if !result.is_null() && !result_len.is_null() => c,
            _ => return fail(err, LPC_ERR_INVALID, "client, result or result_len is NULL"),
        };
        if space.is_null() && space_len != 0 {
            return fail(err, LPC_ERR_INVALID, "space is NULL but space_len is not 0");
        }
        let args: &[u8] = if args_len == 0 {
            &[]
        } else if args.is_null() {
            return fail(err, LPC_ERR_INVALID, "args is NULL but args_len is not 0");
        } else {
            // SAFETY: `args_len` readable bytes at `args` (the caller's contract), private to
            // the caller for the call.
            unsafe { std::slice::from_raw_parts(args, args_len) }
        };
        let place = |bytes: &[u8]| {
            if bytes.len() <= space_len && !bytes.is_empty() {
                // SAFETY: `space` has `space_len` writable bytes (the caller's contract),
                // `bytes` is the reply in lpc's memory or this call's own buffer, so the two
                // do not overlap.
                unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), space, bytes.len()) };
                (space, bytes.len())
            } else {
                into_raw_bytes(bytes.to_vec())
            }
        };
        match c.call_encoded_with(method_id, args, place) {
            Ok((ptr, len)) => {
                // SAFETY: not NULL (checked), writable (the caller's contract).
                unsafe {
                    *result = ptr;
                    *result_len = len;
                }
                LPC_OK
            }
            Err(e) => fail_lpc(err, &e),
        }
    })
}

/// Hands `bytes` to C: a pointer and length for `lpc_bytes_free` (NULL for none).
fn into_raw_bytes(bytes: Vec<u8>) -> (*mut u8, usize) {
    if bytes.is_empty() {
        return (std::ptr::null_mut(), 0);
    }
    let boxed = bytes.into_boxed_slice();
    let len = boxed.len();
    (Box::into_raw(boxed).cast::<u8>(), len)
}

/// Frees a string returned by lpc (NULL is allowed).
///
/// # Safety
/// `s` is NULL or a string returned by lpc and not freed yet.
#[no_mangle]
pub unsafe extern "C" fn lpc_string_free(s: *mut c_char) {
    if !s.is_null() {
        // SAFETY: made by `CString::into_raw` in this crate (the caller's contract), freed once.
        drop(unsafe { CString::from_raw(s) });
    }
}

/// Frees bytes returned by `lpc_call` (NULL is allowed); `len` is the length returned with
/// them.
///
/// # Safety
/// `bytes` is NULL or was returned by `lpc_call` with `len`, and not freed yet.
#[no_mangle]
pub unsafe extern "C" fn lpc_bytes_free(bytes: *mut u8, len: usize) {
    if !bytes.is_null() {
        // SAFETY: a boxed slice of `len` bytes made by `into_raw_bytes` (the caller's
        // contract), freed once.
        drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(bytes, len)) });
    }
}

/// The status of an error.
///
/// # Safety
/// `err` is NULL or a live `lpc_error`.
#[no_mangle]
pub unsafe extern "C" fn lpc_error_status(err: *const lpc_error) -> lpc_status {
    // SAFETY: NULL or live (the caller's contract).
    unsafe { err.as_ref() }.map_or(LPC_ERR_INVALID, |e| e.status)
}

/// The message of an error (UTF-8, valid until the error is freed); "" for NULL.
///
/// # Safety
/// `err` is NULL or a live `lpc_error`.
#[no_mangle]
pub unsafe extern "C" fn lpc_error_message(err: *const lpc_error) -> *const c_char {
    // SAFETY: NULL or live (the caller's contract).
    match unsafe { err.as_ref() } {
        Some(e) => e.message.as_ptr(),
        None => c"".as_ptr(),
    }
}

/// Frees an error (NULL is allowed).
///
/// # Safety
/// `err` is NULL or an error returned by lpc and not freed yet.
#[no_mangle]
pub unsafe extern "C" fn lpc_error_free(err: *mut lpc_error) {
    if !err.is_null() {
        // SAFETY: allocated by `fail` (the caller's contract), freed once.
        drop(unsafe { Box::from_raw(err) });
    }
}

// ---- Services written in C ----

/// Where a C handler writes its encoded result (`lpc_reply_write`); valid only during the
/// call of the handler it was given to.
#[allow(non_camel_case_types)]
pub struct lpc_reply {
    bytes: Vec<u8>,
}

/// A C handler: runs method `method_id` on `args` (`args_len` bytes, the postcard encoding of
/// the tuple of the arguments), writes the encoded result with `lpc_reply_write` and returns
/// 0; any other value refuses the call (the caller gets `LPC_ERR_REMOTE`, a Rust caller
/// `Error::BadArguments`, with the value in the message). It may be called from several
/// threads at once (one per connection and call slot): `context` must allow that.
#[allow(non_camel_case_types)]
pub type lpc_dispatch_fn = Option<
    unsafe extern "C" fn(
        context: *mut std::ffi::c_void,
        method_id: u32,
        args: *const u8,
        args_len: usize,
        reply: *mut lpc_reply,
    ) -> i32,
>;

/// A bound service name, not yet served. Free with `lpc_server_free` if never served.
#[allow(non_camel_case_types)]
pub struct lpc_server {
    /// Taken by `lpc_server_serve`; replaced by `lpc_server_emit`.
    server: Option<lpc::Server>,
}

/// Appends `len` bytes of the encoded result.
///
/// # Safety
/// `reply` is the handle the handler was given; `bytes` points to `len` readable bytes (or is
/// NULL with `len` 0).
#[no_mangle]
pub unsafe extern "C" fn lpc_reply_write(
    reply: *mut lpc_reply,
    bytes: *const u8,
    len: usize,
) -> lpc_status {
    // SAFETY: NULL or the live reply of the running handler (the caller's contract).
    let Some(reply) = (unsafe { reply.as_mut() }) else {
        return LPC_ERR_INVALID;
    };
    if len == 0 {
        return LPC_OK;
    }
    if bytes.is_null() {
        return LPC_ERR_INVALID;
    }
    // SAFETY: `len` readable bytes at `bytes` (the caller's contract).
    reply
        .bytes
        .extend_from_slice(unsafe { std::slice::from_raw_parts(bytes, len) });
    LPC_OK
}

/// Binds service name `name` (in `runtime_dir`, or the user's runtime directory if NULL):
/// clients can connect once this returns, and are served by `lpc_server_serve`.
///
/// # Safety
/// `name` is NUL-terminated; `runtime_dir` NULL or NUL-terminated; `err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn lpc_server_bind(
    name: *const c_char,
    runtime_dir: *const c_char,
    err: *mut *mut lpc_error,
) -> *mut lpc_server {
    let mut server = std::ptr::null_mut();
    guarded(err, || {
        // SAFETY: the caller's contract.
        let name = match unsafe { text(name, "name") } {
            Ok(name) => name,
            Err(why) => return fail(err, LPC_ERR_INVALID, why),
        };
        let mut options = lpc::ServerOptions::new();
        if !runtime_dir.is_null() {
            // SAFETY: not NULL, NUL-terminated (the caller's contract).
            match unsafe { text(runtime_dir, "runtime_dir") } {
                Ok(dir) => options = options.runtime_dir(dir),
                Err(why) => return fail(err, LPC_ERR_INVALID, why),
            }
        }
        match lpc::Server::bind_with(name, options) {
            Ok(s) => {
                server = Box::into_raw(Box::new(lpc_server { server: Some(s) }));
                LPC_OK
            }
            Err(e) => fail_lpc(err, &e),
        }
    });
    server
}

/// Frees a bound service that was never served (NULL is allowed): its name is released.
///
/// # Safety
/// `server` is NULL or was returned by `lpc_server_bind` and neither served nor freed.
#[no_mangle]
pub unsafe extern "C" fn lpc_server_free(server: *mut lpc_server) {
    if !server.is_null() {
        // SAFETY: allocated by `lpc_server_bind` (the caller's contract), freed once.
        let _ = catch_unwind(AssertUnwindSafe(|| drop(unsafe { Box::from_raw(server) })));
    }
}

/// The dispatcher of a service written in C: its interface (read from an
/// `lpc describe --json` document) and its handler.
struct CDispatch {
    interface: &'static lpc::InterfaceDescriptor,
    info: lpc::InterfaceInfo,
    handler:
        unsafe extern "C" fn(*mut std::ffi::c_void, u32, *const u8, usize, *mut lpc_reply) -> i32,
    context: *mut std::ffi::c_void,
}

// SAFETY: the context pointer is only handed back to the C handler, whose contract
// (`lpc_dispatch_fn`) is to allow calls from several threads at once.
unsafe impl Send for CDispatch {}
// SAFETY: as above: shared use only passes the pointer to the thread-safe handler.
unsafe impl Sync for CDispatch {}

impl CDispatch {
    fn run(&self, method_id: u32, args: &[u8]) -> Result<Vec<u8>, lpc::DispatchError> {
        let method = self
            .interface
            .method(method_id)
            .ok_or(lpc::DispatchError::NoSuchMethod)?;
        let mut reply = lpc_reply { bytes: Vec::new() };
        // SAFETY: the handler's contract (`lpc_dispatch_fn`): it reads `args.len()` bytes at
        // `args.as_ptr()` and writes only through `reply`, both valid for the call.
        let status = unsafe {
            (self.handler)(
                self.context,
                method_id,
                args.as_ptr(),
                args.len(),
                &mut reply,
            )
        };
        if status != 0 {
            return Err(lpc::DispatchError::BadArguments(format!(
                "the service's handler of {} refused the call (it returned {status})",
                method.name
            )));
        }
        Ok(reply.bytes)
    }
}

impl lpc::Dispatch for CDispatch {
    fn interface(&self) -> &'static lpc::InterfaceDescriptor {
        self.interface
    }

    fn dispatch(
        &self,
        method_id: u32,
        args: lpc::EncodedArgs<'_>,
        reply: &mut lpc::EncodedReply<'_>,
    ) -> Result<(), lpc::DispatchError> {
        let args = args.into_bytes().map_err(|e| {
            lpc::DispatchError::BadArguments(format!("the arguments could not be read: {e}"))
        })?;
        reply.put_bytes(&self.run(method_id, args)?);
        Ok(())
    }

    fn dispatch_json(
        &self,
        method_id: u32,
        args: &[u8],
        reply: &mut Vec<u8>,
    ) -> Result<(), lpc::DispatchError> {
        lpc::__private::json_by_shapes(&self.info, method_id, args, reply, |encoded| {
            self.run(method_id, encoded)
        })
    }
}

/// Serves the bound `server` (which this frees) with the interface in `interface_json` (the
/// document `lpc describe --json` writes for a service of that interface: typed Rust clients
/// of the interface then connect, and JSON calls work through its shapes) and `handler`,
/// called with `context`. Returns when the service stops (SIGTERM or SIGINT): `LPC_OK`.
///
/// # Safety
/// `server` was returned by `lpc_server_bind` and not served or freed; `interface_json`
/// NUL-terminated; `handler` follows `lpc_dispatch_fn`'s contract; `err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn lpc_server_serve(
    server: *mut lpc_server,
    interface_json: *const c_char,
    handler: lpc_dispatch_fn,
    context: *mut std::ffi::c_void,
    err: *mut *mut lpc_error,
) -> lpc_status {
    guarded(err, || {
        if server.is_null() {
            return fail(err, LPC_ERR_INVALID, "server is NULL");
        }
        // SAFETY: allocated by `lpc_server_bind` (the caller's contract); taken once.
        let Some(server) = unsafe { Box::from_raw(server) }.server else {
            return fail(err, LPC_ERR_INVALID, "server was already served");
        };
        let Some(handler) = handler else {
            return fail(err, LPC_ERR_INVALID, "handler is NULL");
        };
        // SAFETY: the caller's contract.
        let info = match unsafe { text(interface_json, "interface_json") }
            .and_then(lpc::InterfaceInfo::from_describe_json)
        {
            Ok(info) => info,
            Err(why) => return fail(err, LPC_ERR_INVALID, why),
        };
        let dispatcher = CDispatch {
            interface: lpc::InterfaceDescriptor::leak_from_info(info.clone()),
            info,
            handler,
            context,
        };
        match server.serve(dispatcher) {
            Ok(()) => LPC_OK,
            Err(e) => fail_lpc(err, &e),
        }
    })
}

// ---- One-way calls and events ----

/// Posts one-way method `method` (`#[lpc(oneway)]`) with JSON arguments: returns once the
/// message is in the service's queue, before it runs (the caller is not told how it went).
/// A full queue waits up to the call timeout, as in Rust.
///
/// # Safety
/// `client` is a live `lpc_client`; `method` and `args_json` NUL-terminated; `err` NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn lpc_post_json(
    client: *const lpc_client,
    method: *const c_char,
    args_json: *const c_char,
    err: *mut *mut lpc_error,
) -> lpc_status {
    guarded(err, || {
        // SAFETY: the caller's contract.
        let Some(c) = (unsafe { client_of(client) }) else {
            return fail(err, LPC_ERR_INVALID, "client is NULL");
        };
        // SAFETY: the caller's contract.
        let (method, args) = match unsafe { (text(method, "method"), text(args_json, "args_json")) }
        {
            (Ok(m), Ok(a)) => (m, a),
            (Err(why), _) | (_, Err(why)) => return fail(err, LPC_ERR_INVALID, why),
        };
        let args: serde_json::Value = match serde_json::from_str(args) {
            Ok(v) => v,
            Err(e) => return fail(err, LPC_ERR_INVALID, format!("args_json is not JSON: {e}")),
        };
        match c.post_json(method, &args) {
            Ok(()) => LPC_OK,
            Err(e) => fail_lpc(err, &e),
        }
    })
}

/// A subscription to a service's events, read as JSON. Free with `lpc_subscription_free`.
#[allow(non_camel_case_types)]
pub struct lpc_subscription {
    subscription: lpc::Subscription<lpc::JsonEvent>,
}

/// Subscribes to the events of service `name` (`events`: a comma-separated list of event
/// names, or NULL for all; `runtime_dir` NULL for the user's). The ring holds the default
/// number of events; when it is full the oldest are dropped, and each event read says how
/// many were missed before it. Returns NULL on failure, with `*err` set.
///
/// # Safety
/// `name` is NUL-terminated; `events` and `runtime_dir` NULL or NUL-terminated; `err` NULL
/// or writable.
#[no_mangle]
pub unsafe extern "C" fn lpc_subscribe(
    name: *const c_char,
    events: *const c_char,
    runtime_dir: *const c_char,
    err: *mut *mut lpc_error,
) -> *mut lpc_subscription {
    let mut out = std::ptr::null_mut();
    guarded(err, || {
        // SAFETY: the caller's contract.
        let name = match unsafe { text(name, "name") } {
            Ok(name) => name,
            Err(why) => return fail(err, LPC_ERR_INVALID, why),
        };
        let mut options = lpc::SubscribeOptions::new();
        if !runtime_dir.is_null() {
            // SAFETY: not NULL, NUL-terminated (the caller's contract).
            match unsafe { text(runtime_dir, "runtime_dir") } {
                Ok(dir) => options = options.runtime_dir(dir),
                Err(why) => return fail(err, LPC_ERR_INVALID, why),
            }
        }
        if !events.is_null() {
            // SAFETY: not NULL, NUL-terminated (the caller's contract).
            match unsafe { text(events, "events") } {
                Ok(list) => {
                    options =
                        options.events(list.split(',').map(str::trim).filter(|e| !e.is_empty()))
                }
                Err(why) => return fail(err, LPC_ERR_INVALID, why),
            }
        }
        match lpc::Subscription::<lpc::JsonEvent>::open(name, options) {
            Ok(subscription) => {
                out = Box::into_raw(Box::new(lpc_subscription { subscription }));
                LPC_OK
            }
            Err(e) => fail_lpc(err, &e),
        }
    });
    out
}

/// Waits up to `timeout_ms` for the next event and stores it in `*event_json` as
/// `{"event": name, "args": {…}, "missed": n}` (free with `lpc_string_free`), `missed` being
/// the events dropped just before it. `LPC_ERR_TIMEOUT` if none came in time (then
/// `*event_json` is NULL); `LPC_ERR_DISCONNECTED` once the service is gone and every event it
/// sent was read.
///
/// # Safety
/// `subscription` is a live `lpc_subscription`, used by one thread at a time; `event_json`
/// writable; `err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn lpc_subscription_next(
    subscription: *mut lpc_subscription,
    timeout_ms: u64,
    event_json: *mut *mut c_char,
    err: *mut *mut lpc_error,
) -> lpc_status {
    guarded(err, || {
        if event_json.is_null() {
            return fail(err, LPC_ERR_INVALID, "event_json is NULL");
        }
        // SAFETY: not NULL (checked), writable (the caller's contract).
        unsafe { *event_json = std::ptr::null_mut() };
        // SAFETY: NULL or live, one thread at a time (the caller's contract).
        let Some(s) = (unsafe { subscription.as_mut() }) else {
            return fail(err, LPC_ERR_INVALID, "subscription is NULL");
        };
        match s
            .subscription
            .recv_timeout(Duration::from_millis(timeout_ms))
        {
            Ok(Some(received)) => {
                let json = serde_json::json!({
                    "event": received.event.name,
                    "args": received.event.args,
                    "missed": received.missed,
                });
                let text = CString::new(json.to_string()).unwrap_or_default();
                // SAFETY: not NULL (checked), writable (the caller's contract).
                unsafe { *event_json = text.into_raw() };
                LPC_OK
            }
            Ok(None) => fail(
                err,
                LPC_ERR_TIMEOUT,
                format!("no event within {timeout_ms} ms"),
            ),
            Err(e) => fail_lpc(err, &e),
        }
    })
}

/// Ends a subscription and frees it (NULL is allowed); the service frees its ring.
///
/// # Safety
/// `subscription` is NULL or was returned by `lpc_subscribe` and not freed yet.
#[no_mangle]
pub unsafe extern "C" fn lpc_subscription_free(subscription: *mut lpc_subscription) {
    if !subscription.is_null() {
        // SAFETY: allocated by `lpc_subscribe` (the caller's contract), freed once.
        let subscription = unsafe { Box::from_raw(subscription) };
        let _ = catch_unwind(AssertUnwindSafe(|| drop(subscription)));
    }
}

// ---- Events emitted by services written in C ----

/// The events a service written in C emits. Free with `lpc_events_free` (after the service
/// stopped, or keep it for the process's life).
#[allow(non_camel_case_types)]
pub struct lpc_events {
    hub: lpc::server::EventHub,
    info: lpc::InterfaceInfo,
}

/// The events of the interface in `interface_json` (an `lpc describe --json` document with an
/// `events` section, as written for a Rust service that emits them). NULL on failure.
///
/// # Safety
/// `interface_json` is NUL-terminated; `err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn lpc_events_new(
    interface_json: *const c_char,
    err: *mut *mut lpc_error,
) -> *mut lpc_events {
    let mut out = std::ptr::null_mut();
    guarded(err, || {
        // SAFETY: the caller's contract.
        let info = match unsafe { text(interface_json, "interface_json") }
            .and_then(lpc::InterfaceInfo::events_from_describe_json)
        {
            Ok(Some(info)) => info,
            Ok(None) => return fail(err, LPC_ERR_INVALID, "the document describes no events"),
            Err(why) => return fail(err, LPC_ERR_INVALID, why),
        };
        let hub =
            lpc::server::EventHub::new(lpc::InterfaceDescriptor::leak_from_info(info.clone()));
        out = Box::into_raw(Box::new(lpc_events { hub, info }));
        LPC_OK
    });
    out
}

/// Frees events (NULL is allowed); a service still serving them keeps its own reference.
///
/// # Safety
/// `events` is NULL or was returned by `lpc_events_new` and not freed yet.
#[no_mangle]
pub unsafe extern "C" fn lpc_events_free(events: *mut lpc_events) {
    if !events.is_null() {
        // SAFETY: allocated by `lpc_events_new` (the caller's contract), freed once.
        let events = unsafe { Box::from_raw(events) };
        let _ = catch_unwind(AssertUnwindSafe(|| drop(events)));
    }
}

/// Makes the bound `server` emit `events`: clients may subscribe once it serves.
///
/// # Safety
/// `server` is a bound, not yet served `lpc_server`; `events` a live `lpc_events`; `err` NULL
/// or writable.
#[no_mangle]
pub unsafe extern "C" fn lpc_server_emit(
    server: *mut lpc_server,
    events: *const lpc_events,
    err: *mut *mut lpc_error,
) -> lpc_status {
    guarded(err, || {
        // SAFETY: NULL or live, not aliased during the call (the caller's contract).
        let (Some(server), Some(events)) = (unsafe { server.as_mut() }, unsafe { events.as_ref() })
        else {
            return fail(err, LPC_ERR_INVALID, "server or events is NULL");
        };
        match server.server.take() {
            Some(s) => {
                server.server = Some(s.with_events(&events.hub));
                LPC_OK
            }
            None => fail(err, LPC_ERR_INVALID, "server was already served"),
        }
    })
}

/// Emits event `event` with JSON arguments (an array in parameter order or an object by
/// name, converted through the event's shapes) to every subscriber that asked for it; the
/// number it was written to goes to `*delivered` (if not NULL). Never waits for a subscriber.
/// May be called from any thread, while the service serves.
///
/// # Safety
/// `events` is a live `lpc_events`; `event` and `args_json` NUL-terminated; `delivered` NULL
/// or writable; `err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn lpc_events_emit_json(
    events: *const lpc_events,
    event: *const c_char,
    args_json: *const c_char,
    delivered: *mut usize,
    err: *mut *mut lpc_error,
) -> lpc_status {
    guarded(err, || {
        // SAFETY: NULL or live (the caller's contract); only shared access.
        let Some(events) = (unsafe { events.as_ref() }) else {
            return fail(err, LPC_ERR_INVALID, "events is NULL");
        };
        // SAFETY: the caller's contract.
        let (name, args) = match unsafe { (text(event, "event"), text(args_json, "args_json")) } {
            (Ok(n), Ok(a)) => (n, a),
            (Err(why), _) | (_, Err(why)) => return fail(err, LPC_ERR_INVALID, why),
        };
        let Some(method) = events.info.methods.iter().find(|m| m.name == name) else {
            return fail(
                err,
                LPC_ERR_NO_SUCH_METHOD,
                format!("{} has no event {name}", events.info.name),
            );
        };
        let payload = match lpc::__private::encode_json_args(
            name,
            &method.params,
            &events.info.types,
            args.as_bytes(),
        ) {
            Ok(payload) => payload,
            Err(why) => return fail(err, LPC_ERR_INVALID, format!("event {name}: {why}")),
        };
        let n = events
            .hub
            .emit_encoded(lpc::server::Target::All, method.id, &payload);
        if !delivered.is_null() {
            // SAFETY: not NULL (checked), writable (the caller's contract).
            unsafe { *delivered = n };
        }
        LPC_OK
    })
}
