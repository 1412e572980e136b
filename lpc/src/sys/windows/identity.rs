//! Who a process is: the user SID of its token, and the security descriptors of the pipes
//! lpc serves (who may connect).

use std::io;
use std::os::windows::io::{AsRawHandle, OwnedHandle};
use std::sync::OnceLock;

use windows_sys::Win32::Foundation::LocalFree;
use windows_sys::Win32::Security::Authorization::{
    ConvertSidToStringSidW, ConvertStringSecurityDescriptorToSecurityDescriptorW,
};
use windows_sys::Win32::Security::{
    GetTokenInformation, TokenUser, SECURITY_ATTRIBUTES, TOKEN_QUERY, TOKEN_USER,
};
use windows_sys::Win32::System::Threading::{GetCurrentProcess, OpenProcessToken};

use super::{last_error, owned, wide};
use crate::sys::UserId;

/// The user of the process `process` is a handle to: its token's user SID, as `S-1-…`.
pub(super) fn process_user(process: &OwnedHandle) -> io::Result<UserId> {
    let mut token = std::ptr::null_mut();
    // SAFETY: `process` is open; `token` receives a new handle we then own.
    if unsafe { OpenProcessToken(process.as_raw_handle(), TOKEN_QUERY, &mut token) } == 0 {
        return Err(last_error());
    }
    // SAFETY: OpenProcessToken succeeded.
    let token = unsafe { owned(token) }?;
    let mut buf = vec![0u64; 64];
    let mut needed = 0u32;
    // SAFETY: `buf` is writable and 8-byte aligned for its length in bytes.
    if unsafe {
        GetTokenInformation(
            token.as_raw_handle(),
            TokenUser,
            buf.as_mut_ptr().cast(),
            (buf.len() * 8) as u32,
            &mut needed,
        )
    } == 0
    {
        return Err(last_error());
    }
    // SAFETY: on success the buffer starts with a TOKEN_USER whose SID points into it.
    let user = unsafe { std::ptr::read(buf.as_ptr().cast::<TOKEN_USER>()) };
    let mut text: *mut u16 = std::ptr::null_mut();
    // SAFETY: the SID is valid (inside `buf`); `text` receives a LocalAlloc'd string.
    if unsafe { ConvertSidToStringSidW(user.User.Sid, &mut text) } == 0 {
        return Err(last_error());
    }
    // SAFETY: `text` is a nul-terminated UTF-16 string from the call above, freed once below.
    let sid = unsafe {
        let mut len = 0;
        while *text.add(len) != 0 {
            len += 1;
        }
        let s = String::from_utf16_lossy(std::slice::from_raw_parts(text, len));
        LocalFree(text.cast());
        s
    };
    Ok(UserId::from_sid(sid))
}

/// This process's user (the SID of its token).
pub(crate) fn current_user() -> UserId {
    static USER: OnceLock<UserId> = OnceLock::new();
    USER.get_or_init(|| {
        // SAFETY: GetCurrentProcess returns a pseudo handle, which needs no closing: wrapped
        // only for the call and then forgotten.
        let me = std::mem::ManuallyDrop::new(unsafe {
            <OwnedHandle as std::os::windows::io::FromRawHandle>::from_raw_handle(
                GetCurrentProcess(),
            )
        });
        process_user(&me).unwrap_or_else(|_| UserId::from_sid("S-1-0-0"))
    })
    .clone()
}

/// A security descriptor that gives this process's user (and nobody else) full access, for
/// the pipes it serves.
pub(super) struct Security {
    attributes: SECURITY_ATTRIBUTES,
}

// SAFETY: the descriptor is an immutable allocation, read by the kernel only.
unsafe impl Send for Security {}
// SAFETY: as above.
unsafe impl Sync for Security {}

impl Security {
    pub(super) fn attributes(&self) -> *const SECURITY_ATTRIBUTES {
        &self.attributes
    }
}

fn security(sddl: &str) -> Option<Security> {
    let sddl = wide(sddl);
    let mut descriptor = std::ptr::null_mut();
    // SAFETY: a nul-terminated SDDL string; `descriptor` receives a LocalAlloc'd descriptor
    // that lives as long as the process (built once, never freed).
    let ok = unsafe {
        ConvertStringSecurityDescriptorToSecurityDescriptorW(
            sddl.as_ptr(),
            1, // SDDL_REVISION_1
            &mut descriptor,
            std::ptr::null_mut(),
        )
    };
    (ok != 0).then_some(Security {
        attributes: SECURITY_ATTRIBUTES {
            nLength: std::mem::size_of::<SECURITY_ATTRIBUTES>() as u32,
            lpSecurityDescriptor: descriptor,
            bInheritHandle: 0,
        },
    })
}

/// The security of the pipes lpc serves, built once: full access for this process's user
/// only (`D:P(A;;GA;;;<user SID>)`), or, for a service that admits other users (who is
/// admitted is then its access policy's decision, at connect), read and write for every
/// authenticated user too (`(A;;GRGW;;;AU)`).
pub(super) fn pipe_security(open: bool) -> io::Result<&'static Security> {
    static PRIVATE: OnceLock<Option<Security>> = OnceLock::new();
    static OPEN: OnceLock<Option<Security>> = OnceLock::new();
    let user = current_user();
    let built = if open {
        OPEN.get_or_init(|| security(&format!("D:P(A;;GA;;;{user})(A;;GRGW;;;AU)")))
    } else {
        PRIVATE.get_or_init(|| security(&format!("D:P(A;;GA;;;{user})")))
    };
    built
        .as_ref()
        .ok_or_else(|| io::Error::other("cannot build the pipes' security descriptor"))
}

impl Security {
    /// Applies this descriptor's DACL to the kernel object `handle` (opened with `WRITE_DAC`).
    pub(super) fn apply(&self, handle: windows_sys::Win32::Foundation::HANDLE) -> io::Result<()> {
        use windows_sys::Win32::Security::Authorization::{SetSecurityInfo, SE_KERNEL_OBJECT};
        use windows_sys::Win32::Security::{GetSecurityDescriptorDacl, DACL_SECURITY_INFORMATION};
        let (mut present, mut defaulted) = (0, 0);
        let mut dacl = std::ptr::null_mut();
        // SAFETY: the descriptor is valid (built by `security`); the out-pointers are
        // writable; the DACL returned points into the descriptor, which lives forever.
        let ok = unsafe {
            GetSecurityDescriptorDacl(
                self.attributes.lpSecurityDescriptor,
                &mut present,
                &mut dacl,
                &mut defaulted,
            )
        };
        if ok == 0 {
            return Err(last_error());
        }
        // SAFETY: `handle` is open with WRITE_DAC; `dacl` is valid for the call.
        let rc = unsafe {
            SetSecurityInfo(
                handle,
                SE_KERNEL_OBJECT,
                DACL_SECURITY_INFORMATION,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                dacl,
                std::ptr::null(),
            )
        };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc as i32));
        }
        Ok(())
    }
}
