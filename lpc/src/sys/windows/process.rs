//! Process-level facts on Windows: private
//! directories and directory locks, the shared clock, other processes' names and liveness,
//! and children that inherit one endpoint.

use std::fs::File;
use std::io;
use std::os::windows::fs::OpenOptionsExt;
use std::os::windows::io::{AsRawHandle, OwnedHandle};
use std::path::Path;
use std::sync::OnceLock;

use windows_sys::Win32::Foundation::STILL_ACTIVE;
use windows_sys::Win32::Storage::FileSystem::{
    GetFileInformationByHandle, BY_HANDLE_FILE_INFORMATION, FILE_FLAG_BACKUP_SEMANTICS,
    FILE_FLAG_OPEN_REPARSE_POINT,
};
use windows_sys::Win32::System::Performance::{QueryPerformanceCounter, QueryPerformanceFrequency};
use windows_sys::Win32::System::Threading::{
    GetExitCodeProcess, OpenProcess, QueryFullProcessImageNameW, PROCESS_NAME_WIN32,
    PROCESS_QUERY_LIMITED_INFORMATION,
};

use super::{last_error, owned};

/// Whether this process and `peer` can run on two CPUs at once: more than one CPU.
pub(crate) fn can_run_apart(_peer: Option<u32>) -> bool {
    std::thread::available_parallelism().map_or(1, |n| n.get()) > 1
}

const CREATED_MARK: &str = ".lpc-created";

fn refused(path: &Path, why: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!("{} {why}", path.display()),
    )
}

/// Makes `path` the directory endpoints are named in, or checks an existing one: never a
/// symbolic link or junction (a reparse point), never a path through `..`, always a
/// directory. (Its ACL is inherited from its parent: the user's profile directory, private
/// by default, holds the default runtime directory.)
pub(crate) fn create_private_dir(path: &Path) -> io::Result<()> {
    let path: std::path::PathBuf = path.components().collect();
    if path
        .components()
        .any(|c| c == std::path::Component::ParentDir)
    {
        return Err(refused(
            &path,
            "contains `..`: name the runtime directory without `..`",
        ));
    }
    let created = match std::fs::create_dir(&path) {
        Ok(()) => true,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            std::fs::create_dir_all(&path)?;
            true
        }
        Err(e) => return Err(e),
    };
    let meta = std::fs::symlink_metadata(&path)?;
    if meta.file_type().is_symlink() {
        return Err(refused(
            &path,
            "is a symbolic link or junction; lpc never follows one for its runtime directory: \
             remove it, or choose the real directory",
        ));
    }
    if !meta.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "{} exists and is not a directory: remove it, or choose another runtime directory",
                path.display()
            ),
        ));
    }
    if created {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path.join(CREATED_MARK))?;
    }
    Ok(())
}

/// An exclusive lock on a directory, held while a service name is checked and bound: a named
/// mutex (`Local\lpc-dir-<path hash>`), so that nothing is left in the directory. The system
/// releases it if we die (the next owner sees it abandoned, and takes it all the same).
pub(crate) struct DirLock {
    mutex: OwnedHandle,
}

impl DirLock {
    /// Blocks until the lock on `dir` is ours.
    pub(crate) fn acquire(dir: &Path) -> io::Result<DirLock> {
        use windows_sys::Win32::Foundation::{WAIT_ABANDONED, WAIT_OBJECT_0};
        use windows_sys::Win32::System::Threading::{CreateMutexW, WaitForSingleObject, INFINITE};
        let dir: std::path::PathBuf = dir.components().collect();
        let name = super::wide(&format!("Local\\lpc-dir-{:016x}", super::path_hash(&dir)));
        // SAFETY: default security, not owned at creation, a nul-terminated name that lives for
        // the call; we own the returned handle.
        let mutex = unsafe { owned(CreateMutexW(std::ptr::null(), 0, name.as_ptr())) }?;
        // SAFETY: the mutex handle is open.
        match unsafe { WaitForSingleObject(mutex.as_raw_handle(), INFINITE) } {
            WAIT_OBJECT_0 | WAIT_ABANDONED => Ok(DirLock { mutex }),
            _ => Err(last_error()),
        }
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        // SAFETY: this thread owns the mutex (acquired above; a DirLock is dropped on the
        // thread that took it, as its users hold it within one scope).
        unsafe { windows_sys::Win32::System::Threading::ReleaseMutex(self.mutex.as_raw_handle()) };
    }
}

/// Which file a path names (volume serial number and file index).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileIdentity {
    volume: u32,
    index: u64,
}

pub(super) fn handle_identity(file: &File) -> io::Result<FileIdentity> {
    // SAFETY: an all-zero BY_HANDLE_FILE_INFORMATION is valid; the call fills it.
    let mut info: BY_HANDLE_FILE_INFORMATION = unsafe { std::mem::zeroed() };
    // SAFETY: `file` is open; `info` is writable.
    if unsafe { GetFileInformationByHandle(file.as_raw_handle(), &mut info) } == 0 {
        return Err(last_error());
    }
    Ok(FileIdentity {
        volume: info.dwVolumeSerialNumber,
        index: (u64::from(info.nFileIndexHigh) << 32) | u64::from(info.nFileIndexLow),
    })
}

/// The identity of the file at `path`, without following a reparse point.
pub(crate) fn file_identity(path: &Path) -> io::Result<FileIdentity> {
    let file = std::fs::OpenOptions::new()
        .access_mode(0x80) // FILE_READ_ATTRIBUTES
        .share_mode(7) // read, write, delete
        .custom_flags(FILE_FLAG_BACKUP_SEMANTICS | FILE_FLAG_OPEN_REPARSE_POINT)
        .open(path)?;
    handle_identity(&file)
}

fn open_process(pid: u32) -> Option<OwnedHandle> {
    // SAFETY: OpenProcess returns a new handle (or null), which we own.
    unsafe { owned(OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid)) }.ok()
}

/// The name of process `pid` (its image's file name without `.exe`), or empty.
pub(crate) fn process_name(pid: u32) -> String {
    let Some(process) = open_process(pid) else {
        return String::new();
    };
    let mut buf = vec![0u16; 1024];
    let mut len = buf.len() as u32;
    // SAFETY: `buf` is writable for `len` UTF-16 units.
    if unsafe {
        QueryFullProcessImageNameW(
            process.as_raw_handle(),
            PROCESS_NAME_WIN32,
            buf.as_mut_ptr(),
            &mut len,
        )
    } == 0
    {
        return String::new();
    }
    let path = String::from_utf16_lossy(&buf[..len as usize]);
    let file = path.rsplit(['\\', '/']).next().unwrap_or(&path);
    file.strip_suffix(".exe").unwrap_or(file).to_owned()
}

/// Lets other users reach the service listening at `socket`: its pipe's instances (the one
/// waiting now and every later one) admit every authenticated user (see [`pipe_security`]);
/// who may actually use the service is then decided by its access policy at connect.
pub(crate) fn open_to_other_users(_dir: &Path, socket: &Path) -> io::Result<()> {
    super::pipe::open_listener(socket)
}

/// `QueryPerformanceCounter` in nanoseconds: one clock for every process of the machine.
pub(crate) fn monotonic_ns() -> u64 {
    static FREQUENCY: OnceLock<u64> = OnceLock::new();
    let frequency = *FREQUENCY.get_or_init(|| {
        let mut f = 0i64;
        // SAFETY: writes the frequency into `f`.
        unsafe { QueryPerformanceFrequency(&mut f) };
        f.max(1) as u64
    });
    let mut count = 0i64;
    // SAFETY: writes the counter into `count`.
    unsafe { QueryPerformanceCounter(&mut count) };
    let count = count.max(0) as u128;
    (count * 1_000_000_000 / u128::from(frequency)).min(u128::from(u64::MAX)) as u64
}

/// Windows has no per-process descriptor limit to raise (about 16 million handles).
pub(crate) fn raise_open_file_limit() -> u64 {
    u64::MAX
}

/// Whether process `pid` exists and has not exited.
pub(crate) fn process_alive(pid: u32) -> bool {
    if pid == 0 {
        return false;
    }
    let Some(process) = open_process(pid) else {
        // A process of another user we may not open still exists; a gone one is
        // ERROR_INVALID_PARAMETER.
        return last_error().raw_os_error() != Some(87);
    };
    let mut code = 0u32;
    // SAFETY: `process` is open with query rights.
    if unsafe { GetExitCodeProcess(process.as_raw_handle(), &mut code) } == 0 {
        return true;
    }
    code == STILL_ACTIVE as u32
}

/// The environment variable that tells a child started by `spawn_with_endpoint` which
/// handle is its endpoint.
pub(crate) const ENDPOINT_ENV: &str = "LPC_ENDPOINT_HANDLE";

/// The job every child of `spawn_with_endpoint` joins: it is closed when this process ends,
/// which ends them (`JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE`).
pub(super) fn children_job() -> Option<&'static OwnedHandle> {
    use windows_sys::Win32::System::JobObjects::{
        CreateJobObjectW, JobObjectExtendedLimitInformation, SetInformationJobObject,
        JOBOBJECT_EXTENDED_LIMIT_INFORMATION, JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
    };
    static JOB: OnceLock<Option<OwnedHandle>> = OnceLock::new();
    JOB.get_or_init(|| {
        // SAFETY: an unnamed job with default security; we own the handle (kept for the life
        // of the process, never inheritable).
        let job = unsafe { owned(CreateJobObjectW(std::ptr::null(), std::ptr::null())) }.ok()?;
        // SAFETY: an all-zero limit structure is valid; we set one flag.
        let mut limits: JOBOBJECT_EXTENDED_LIMIT_INFORMATION = unsafe { std::mem::zeroed() };
        limits.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
        // SAFETY: `limits` is readable for its size.
        let ok = unsafe {
            SetInformationJobObject(
                job.as_raw_handle(),
                JobObjectExtendedLimitInformation,
                (&limits as *const JOBOBJECT_EXTENDED_LIMIT_INFORMATION).cast(),
                std::mem::size_of::<JOBOBJECT_EXTENDED_LIMIT_INFORMATION>() as u32,
            )
        };
        (ok != 0).then_some(job)
    })
    .as_ref()
}

/// How many handles process `pid` holds and how many threads it runs (`GetProcessHandleCount`,
/// a toolhelp snapshot): what the leak tests count where Linux reads `/proc`. `None` if the
/// process cannot be read.
#[cfg(feature = "test-util")]
pub(crate) fn process_resources(pid: u32) -> Option<(usize, usize)> {
    use windows_sys::Win32::System::Diagnostics::ToolHelp::{
        CreateToolhelp32Snapshot, Thread32First, Thread32Next, TH32CS_SNAPTHREAD, THREADENTRY32,
    };
    use windows_sys::Win32::System::Threading::GetProcessHandleCount;
    let process = open_process(pid)?;
    let mut handles = 0u32;
    // SAFETY: `process` is open with query rights; `handles` is writable.
    if unsafe { GetProcessHandleCount(process.as_raw_handle(), &mut handles) } == 0 {
        return None;
    }
    if handles == 0 {
        // Wine answers 0 here: count the process's entries of the system's handle table.
        handles = system_handles_of(pid)?.len() as u32;
    }
    // SAFETY: a snapshot of every thread of the system; we own the returned handle.
    let snapshot = unsafe { owned(CreateToolhelp32Snapshot(TH32CS_SNAPTHREAD, 0)) }.ok()?;
    // SAFETY: an all-zero THREADENTRY32 with its size set is what Thread32First expects.
    let mut entry: THREADENTRY32 = unsafe { std::mem::zeroed() };
    entry.dwSize = std::mem::size_of::<THREADENTRY32>() as u32;
    let mut threads = 0;
    // SAFETY: `snapshot` is open; `entry` is writable with its size set.
    let mut more = unsafe { Thread32First(snapshot.as_raw_handle(), &mut entry) } != 0;
    while more {
        if entry.th32OwnerProcessID == pid {
            threads += 1;
        }
        // SAFETY: as above.
        more = unsafe { Thread32Next(snapshot.as_raw_handle(), &mut entry) } != 0;
    }
    Some((handles as usize, threads))
}

/// How many entries of the system handle table (`NtQuerySystemInformation`,
/// `SystemExtendedHandleInformation`) belong to process `pid`.
#[cfg(feature = "test-util")]
fn system_handles_of(pid: u32) -> Option<Vec<usize>> {
    use windows_sys::Wdk::System::SystemInformation::NtQuerySystemInformation;
    // SYSTEM_HANDLE_INFORMATION_EX: a count and a reserved word, then entries of
    // (object, pid, handle value, access, backtrace index, type index, attributes, reserved).
    #[repr(C)]
    struct Entry {
        object: usize,
        pid: usize,
        handle: usize,
        access: u32,
        backtrace: u16,
        kind: u16,
        attributes: u32,
        reserved: u32,
    }
    let mut buf = vec![0usize; 1 << 16];
    loop {
        let mut returned = 0u32;
        // SAFETY: `buf` is writable and aligned for the length given.
        let status = unsafe {
            NtQuerySystemInformation(
                64, // SystemExtendedHandleInformation
                buf.as_mut_ptr().cast(),
                (buf.len() * std::mem::size_of::<usize>()) as u32,
                &mut returned,
            )
        };
        if status == 0xC000_0004_u32 as i32 && buf.len() < (1 << 26) {
            // STATUS_INFO_LENGTH_MISMATCH: a bigger buffer.
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        if status < 0 {
            return None;
        }
        let count = buf[0];
        let words = std::mem::size_of::<Entry>() / std::mem::size_of::<usize>();
        let entries = buf.len().saturating_sub(2) / words;
        let mut mine = Vec::new();
        for i in 0..count.min(entries) {
            // SAFETY: entry `i` lies within `buf` (bounded by `entries`) and is aligned (it
            // starts at a word boundary); every bit pattern is a valid Entry.
            let entry = unsafe { std::ptr::read(buf.as_ptr().add(2 + i * words).cast::<Entry>()) };
            if entry.pid == pid as usize {
                mine.push(entry.handle);
            }
        }
        return Some(mine);
    }
}

/// The views of sections (`MEM_MAPPED` regions) in process `pid`: their bytes and how many
/// there are (distinct allocation bases), from `VirtualQueryEx` over its address space — what
/// the Linux budget tests read from `/proc/<pid>/maps`. `None` if the process cannot be read.
#[cfg(feature = "test-util")]
pub(crate) fn mapped_views(pid: u32) -> Option<(u64, usize)> {
    use windows_sys::Win32::System::Memory::{
        VirtualQueryEx, MEMORY_BASIC_INFORMATION, MEM_FREE, MEM_MAPPED,
    };
    use windows_sys::Win32::System::Threading::PROCESS_QUERY_INFORMATION;
    // SAFETY: OpenProcess returns a new handle (or null), which we own.
    let process = unsafe { owned(OpenProcess(PROCESS_QUERY_INFORMATION, 0, pid)) }.ok()?;
    let (mut bytes, mut views, mut last_base) = (0u64, 0usize, 0usize);
    let mut at = 0usize;
    loop {
        // SAFETY: an all-zero MEMORY_BASIC_INFORMATION is valid; VirtualQueryEx fills it.
        let mut info: MEMORY_BASIC_INFORMATION = unsafe { std::mem::zeroed() };
        // SAFETY: `process` is open with query rights; `info` is writable for its size.
        let got = unsafe {
            VirtualQueryEx(
                process.as_raw_handle(),
                at as *const core::ffi::c_void,
                &mut info,
                std::mem::size_of::<MEMORY_BASIC_INFORMATION>(),
            )
        };
        if got == 0 || info.RegionSize == 0 {
            break;
        }
        if info.State != MEM_FREE && info.Type == MEM_MAPPED {
            bytes += info.RegionSize as u64;
            let base = info.AllocationBase as usize;
            if base != last_base {
                views += 1;
                last_base = base;
            }
        }
        match (info.BaseAddress as usize).checked_add(info.RegionSize) {
            Some(next) if next > at => at = next,
            _ => break,
        }
    }
    Some((bytes, views))
}

/// What each handle of process `pid` is ("value kind name", the kind and name from
/// `NtQueryObject` on a duplicate): for a leak test's message, which says what was left.
#[cfg(feature = "test-util")]
pub(crate) fn process_handle_names(pid: u32) -> Vec<String> {
    use windows_sys::Win32::Foundation::{DuplicateHandle, DUPLICATE_SAME_ACCESS};
    use windows_sys::Win32::System::Threading::{GetCurrentProcess, PROCESS_DUP_HANDLE};
    // SAFETY: OpenProcess returns a new handle (or null), which we own.
    let Ok(process) = (unsafe { owned(OpenProcess(PROCESS_DUP_HANDLE, 0, pid)) }) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for value in system_handles_of(pid).unwrap_or_default() {
        let mut dup = std::ptr::null_mut();
        // SAFETY: copies handle `value` of `process` (open with PROCESS_DUP_HANDLE) into this
        // process; on success we own `dup`.
        let ok = unsafe {
            DuplicateHandle(
                process.as_raw_handle(),
                value as _,
                GetCurrentProcess(),
                &mut dup,
                0,
                0,
                DUPLICATE_SAME_ACCESS,
            )
        };
        let described = if ok == 0 {
            "(not duplicable)".to_owned()
        } else {
            // SAFETY: DuplicateHandle succeeded: `dup` is a new handle we own.
            match unsafe { owned(dup) } {
                Ok(dup) => {
                    let kind = super::memory::object_info(&dup, 2).unwrap_or_default();
                    let name = super::memory::object_info(&dup, 1).unwrap_or_default();
                    format!("{kind} {name}")
                }
                Err(_) => "(null)".to_owned(),
            }
        };
        out.push(format!("{value:#x} {described}"));
    }
    out
}
