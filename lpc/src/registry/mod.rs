//! Naming: where a service's socket lives.
//!
//! A service named `calc` listens on `<runtime dir>/calc.sock`. The runtime directory is
//! `$LPC_RUNTIME_DIR`, else `$XDG_RUNTIME_DIR/lpc`, else `/tmp/lpc-<uid>`; it is created with
//! mode 0700, so only the user's own processes can reach the services in it.
//!
//! A crashed service leaves its socket file behind; nothing answers on it, and the next
//! `Server::bind` of that name replaces it. Binding holds an exclusive lock on the directory
//! while it decides, so two services starting at once cannot both take a name.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Longest service name.
pub const MAX_NAME_LEN: usize = 64;
const SOCKET_SUFFIX: &str = ".sock";

/// The default runtime directory (see the module docs). Not created by this call.
pub fn default_runtime_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("LPC_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("lpc");
    }
    PathBuf::from(format!("/tmp/lpc-{}", crate::sys::current_uid()))
}

/// Checks that `name` can name a service: 1 to 64 of `A-Z a-z 0-9 . _ -`, not starting with
/// a dot.
pub fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::io(
            name,
            "invalid service name",
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "a service name is 1 to {MAX_NAME_LEN} of the characters A-Z a-z 0-9 . _ - and does not start with a dot"
                ),
            ),
        ))
    }
}

/// The socket path of service `name` in `dir`.
pub fn socket_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}{SOCKET_SUFFIX}"))
}

/// Creates the runtime directory `dir` private to this user (mode 0700), or checks an
/// existing one.
pub fn ensure_runtime_dir(dir: &Path) -> Result<()> {
    crate::sys::create_private_dir(dir).map_err(|e| {
        Error::io(
            "",
            format!("cannot use runtime directory {}", dir.display()),
            e,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_name("calc").is_ok());
        assert!(validate_name("my-svc_2.v1").is_ok());
        for bad in ["", ".hidden", "a/b", "a b", "ü", &"x".repeat(65)] {
            let err = validate_name(bad).unwrap_err().to_string();
            assert!(err.contains("invalid service name"), "{err}");
        }
    }
}
