//! Naming a shared object without a daemon (docs/architecture.md, "Shared values and named
//! segments"): the memory is a memfd, never in `/dev/shm`; its name is a small file in the
//! runtime directory, `<name>.value` or `<name>.segment`, that lists the processes holding it,
//! one line each: `pid fd dev ino pidns`. An opener locks the file, reaches the memory through
//! the first live holder's `/proc/<pid>/fd/<fd>` (checked to be the recorded object), adds its
//! own line and unlocks; the first opener, finding no live holder, creates the memory. A holder
//! that closes removes its line, and the last one the file. A holder killed leaves its line: the
//! next opener or `lpc list --prune` drops it, and removes the file when no holder is left.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::registry::{ensure_runtime_dir, validate_name};
use crate::sys::{current_pid, holds, pid_namespace, NameFile, ObjectIdentity, SharedMemory};

/// Most holders recorded in one name file (more still hold the object; they are not listed,
/// and cannot hand it to a later opener themselves).
const MAX_RECORDS: usize = 512;
const FILE_HEADER: &str = "lpc-shared 1";

/// The two kinds of named object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Value,
    Segment,
}

impl Kind {
    pub(crate) fn what(self) -> &'static str {
        match self {
            Kind::Value => "shared value",
            Kind::Segment => "segment",
        }
    }

    pub(crate) fn suffix(self) -> &'static str {
        match self {
            Kind::Value => ".value",
            Kind::Segment => ".segment",
        }
    }
}

/// One holder, as its line records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) pid: u32,
    fd: i32,
    identity: ObjectIdentity,
    pidns: u64,
}

impl Record {
    /// Whether it still holds its object: unknown (taken as yes) for a holder of another PID
    /// namespace, whose pids mean nothing here.
    fn alive(&self, our_ns: u64) -> bool {
        self.pidns != our_ns || holds(self.pid, self.fd, self.identity)
    }
}

fn parse(bytes: &[u8]) -> Vec<Record> {
    let text = String::from_utf8_lossy(bytes);
    let mut lines = text.lines();
    if lines.next() != Some(FILE_HEADER) {
        return Vec::new();
    }
    lines
        .filter_map(|line| {
            let mut f = line.split_ascii_whitespace();
            let record = Record {
                pid: f.next()?.parse().ok()?,
                fd: f.next()?.parse().ok()?,
                identity: ObjectIdentity {
                    dev: f.next()?.parse().ok()?,
                    ino: f.next()?.parse().ok()?,
                },
                pidns: f.next()?.parse().ok()?,
            };
            f.next().is_none().then_some(record)
        })
        .take(MAX_RECORDS)
        .collect()
}

fn format(records: &[Record]) -> String {
    let mut out = format!("{FILE_HEADER}\n");
    for r in records {
        out.push_str(&format!(
            "{} {} {} {} {}\n",
            r.pid, r.fd, r.identity.dev, r.identity.ino, r.pidns
        ));
    }
    out
}

pub(crate) fn shared_error(kind: Kind, name: &str, detail: impl Into<String>) -> Error {
    Error::Shared {
        what: kind.what(),
        name: name.to_owned(),
        detail: detail.into(),
    }
}

fn io_error(kind: Kind, name: &str, doing: &str, e: std::io::Error) -> Error {
    shared_error(kind, name, format!("{doing}: {e}"))
}

/// The name file of `name` in `dir`.
pub(crate) fn name_path(dir: &Path, name: &str, kind: Kind) -> PathBuf {
    dir.join(format!("{name}{}", kind.suffix()))
}

/// Checks a name: the rule of service names.
pub(crate) fn check_name(kind: Kind, name: &str) -> Result<()> {
    validate_name(name).map_err(|e| match e {
        Error::InvalidName { name, reason } => Error::InvalidName {
            name,
            reason: reason.replace("a service name", &format!("a {} name", kind.what())),
        },
        e => e,
    })
}

/// This process's hold on a named object: its descriptor (which other openers reach through
/// `/proc`), and its line in the name file, removed on drop.
#[derive(Debug)]
pub(crate) struct Holding {
    pub(crate) shm: SharedMemory,
    path: PathBuf,
    record: Option<Record>,
}

/// How [`open`] found the object.
pub(crate) enum Opened {
    /// Reached through a live holder.
    Existing(Holding),
    /// Made here by the `create` callback.
    Created(Holding),
}

/// Opens the object `name` of `kind` in `dir` through a live holder (read-write or read-only),
/// or, if there is none and `create` is given, makes one with it. The name file stays locked
/// throughout, so two openers never both create.
pub(crate) fn open(
    dir: &Path,
    name: &str,
    kind: Kind,
    writable: bool,
    create: Option<&mut dyn FnMut() -> Result<SharedMemory>>,
) -> Result<Opened> {
    check_name(kind, name)?;
    let path = name_path(dir, name, kind);
    if create.is_some() {
        ensure_runtime_dir(dir)?;
    }
    let not_found = || Error::SharedNotFound {
        what: kind.what(),
        name: name.to_owned(),
        path: path.clone(),
    };
    let mut file = match NameFile::lock(&path, create.is_some()) {
        Ok(Some(file)) => file,
        Ok(None) => return Err(not_found()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(not_found()),
        Err(e) => return Err(io_error(kind, name, "opening its name file", e)),
    };
    let bytes = file
        .read()
        .map_err(|e| io_error(kind, name, "reading its name file", e))?;
    let our_ns = pid_namespace();
    let mut records = parse(&bytes);
    let mut found = None;
    records.retain(|r| {
        if r.pidns != our_ns {
            return true;
        }
        if found.is_none() {
            if let Ok(Some(shm)) = SharedMemory::open_held(r.pid, r.fd, r.identity, writable) {
                found = Some(shm);
                return true;
            }
            return false;
        }
        r.alive(our_ns)
    });
    let (shm, created) = match (found, create) {
        (Some(shm), _) => (shm, false),
        (None, _) if !records.is_empty() => {
            return Err(shared_error(
                kind,
                name,
                format!(
                    "it is held only by processes of another PID namespace ({} of them, per {}), \
                     which this process cannot reach: processes share a {} only within one PID \
                     namespace",
                    records.len(),
                    path.display(),
                    kind.what()
                ),
            ))
        }
        (None, Some(create)) => (create()?, true),
        (None, None) => {
            // Nobody holds it: the file of holders that all died.
            let _ = std::fs::remove_file(&path);
            return Err(not_found());
        }
    };
    if created {
        hook(match kind {
            Kind::Value => "value.created",
            Kind::Segment => "segment.created",
        });
    }
    let identity = shm
        .identity()
        .map_err(|e| io_error(kind, name, "reading its memory's identity", e))?;
    let record = (records.len() < MAX_RECORDS).then(|| Record {
        pid: current_pid(),
        fd: shm.raw_fd(),
        identity,
        pidns: our_ns,
    });
    records.extend(record);
    file.write(format(&records).as_bytes())
        .map_err(|e| io_error(kind, name, "writing its name file", e))?;
    if created {
        hook(match kind {
            Kind::Value => "value.published",
            Kind::Segment => "segment.published",
        });
    }
    drop(file);
    let holding = Holding { shm, path, record };
    Ok(if created {
        Opened::Created(holding)
    } else {
        Opened::Existing(holding)
    })
}

impl Drop for Holding {
    fn drop(&mut self) {
        let Ok(Some(mut file)) = NameFile::lock(&self.path, false) else {
            return;
        };
        let Ok(bytes) = file.read() else { return };
        let our_ns = pid_namespace();
        let mut records = parse(&bytes);
        records.retain(|r| Some(*r) != self.record && r.alive(our_ns));
        if records.is_empty() {
            // Removed while locked: an opener waiting for the lock sees the file gone and
            // starts over with a new one.
            let _ = std::fs::remove_file(&self.path);
        } else {
            let _ = file.write(format(&records).as_bytes());
        }
    }
}

/// A name file found in a runtime directory.
#[derive(Debug)]
pub(crate) struct Found {
    pub(crate) name: String,
    pub(crate) kind: Kind,
    pub(crate) path: PathBuf,
    /// The live holders' pids (from this PID namespace; others' as recorded).
    pub(crate) holders: Vec<u32>,
    /// The memory, reached read-only through a live holder, if any.
    pub(crate) shm: Option<SharedMemory>,
}

/// The name files of `dir`, sorted by name, each with its live holders (and, if `prune`, the
/// ones without a live holder removed: they are then listed with no holder).
pub(crate) fn scan(dir: &Path, prune: bool) -> Result<Vec<Found>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(Error::io(
                "",
                format!("reading runtime directory {}", dir.display()),
                e,
            ))
        }
    };
    let our_ns = pid_namespace();
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(file_name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some((name, kind)) = [Kind::Value, Kind::Segment].into_iter().find_map(|k| {
            file_name
                .strip_suffix(k.suffix())
                .map(|n| (n.to_owned(), k))
        }) else {
            continue;
        };
        if validate_name(&name).is_err() {
            continue;
        }
        let Ok(Some(mut file)) = NameFile::lock(&path, false) else {
            continue;
        };
        let Ok(bytes) = file.read() else { continue };
        let records: Vec<Record> = parse(&bytes)
            .into_iter()
            .filter(|r| r.alive(our_ns))
            .collect();
        let shm = records
            .iter()
            .filter(|r| r.pidns == our_ns)
            .find_map(|r| SharedMemory::open_held(r.pid, r.fd, r.identity, false).ok()?);
        if prune && records.is_empty() {
            let _ = std::fs::remove_file(&path);
        }
        out.push(Found {
            name,
            kind,
            path,
            holders: records.iter().map(|r| r.pid).collect(),
            shm,
        });
    }
    out.sort_by(|a, b| {
        a.name
            .cmp(&b.name)
            .then(a.kind.suffix().cmp(b.kind.suffix()))
    });
    Ok(out)
}

#[cfg(feature = "test-util")]
static HOOK: std::sync::OnceLock<fn(&str)> = std::sync::OnceLock::new();

/// Calls the test hook, if one is set, at a named step of opening or writing (for the tests
/// that kill a process at every step). Nothing without the `test-util` feature.
#[inline(always)]
pub(crate) fn hook(_step: &str) {
    #[cfg(feature = "test-util")]
    if let Some(hook) = HOOK.get() {
        hook(_step);
    }
}

/// Sets the hook [`hook`] calls (once per process).
#[cfg(feature = "test-util")]
pub(crate) fn set_hook(f: fn(&str)) {
    let _ = HOOK.set(f);
}
