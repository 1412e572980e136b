//! Children that inherit one endpoint and nothing else: `CreateProcessW` with a
//! `STARTUPINFOEXW` whose `PROC_THREAD_ATTRIBUTE_HANDLE_LIST` names the handles the child gets
//! (the endpoint and the three standard handles), so that no other inheritable handle of this
//! process — made by lpc, the program or a library — reaches it.
//!
//! std's `Command` cannot pass an attribute list on stable Rust (its `raw_attribute` is
//! nightly-only) and its `Child` cannot adopt a process created elsewhere, hence this module
//! and [`ChildProcess`]. The `Command` given is read through its stable getters (program,
//! arguments, environment changes, working directory); its standard-stream settings cannot be
//! read, so the child gets this process's standard handles (what std's `spawn` gives by
//! default).
//!
//! The child is created suspended, put in the children's job (which kills it when this
//! process ends), then resumed: it runs no instruction outside the job.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::windows::ffi::OsStrExt;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};
use std::os::windows::process::ExitStatusExt;
use std::process::{Command, ExitStatus};

use windows_sys::Win32::Foundation::{
    DuplicateHandle, DUPLICATE_SAME_ACCESS, HANDLE, INVALID_HANDLE_VALUE, WAIT_OBJECT_0,
    WAIT_TIMEOUT,
};
use windows_sys::Win32::System::Console::{
    GetStdHandle, STD_ERROR_HANDLE, STD_INPUT_HANDLE, STD_OUTPUT_HANDLE,
};
use windows_sys::Win32::System::Threading::{
    CreateProcessW, DeleteProcThreadAttributeList, GetCurrentProcess, GetExitCodeProcess,
    InitializeProcThreadAttributeList, ResumeThread, TerminateProcess, UpdateProcThreadAttribute,
    WaitForSingleObject, CREATE_SUSPENDED, CREATE_UNICODE_ENVIRONMENT,
    EXTENDED_STARTUPINFO_PRESENT, INFINITE, PROCESS_INFORMATION, PROC_THREAD_ATTRIBUTE_HANDLE_LIST,
    STARTF_USESTDHANDLES, STARTUPINFOEXW,
};

use super::pipe::Stream;
use super::process::{children_job, ENDPOINT_ENV};
use super::{last_error, owned};

/// A child process started by [`spawn_with_endpoint`]: its process handle and id, with the
/// part of std's `Child` that lpc uses.
#[derive(Debug)]
pub(crate) struct ChildProcess {
    handle: OwnedHandle,
    pid: u32,
}

impl ChildProcess {
    pub(crate) fn id(&self) -> u32 {
        self.pid
    }

    /// `TerminateProcess`, unless the child has exited already.
    pub(crate) fn kill(&mut self) -> io::Result<()> {
        if self.try_wait()?.is_some() {
            return Ok(());
        }
        // SAFETY: the process handle is open (owned by `self`).
        if unsafe { TerminateProcess(self.handle.as_raw_handle(), 1) } == 0 {
            return Err(last_error());
        }
        Ok(())
    }

    pub(crate) fn wait(&mut self) -> io::Result<ExitStatus> {
        self.wait_ms(INFINITE)?
            .ok_or_else(|| io::Error::other("an infinite wait timed out"))
    }

    pub(crate) fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.wait_ms(0)
    }

    fn wait_ms(&self, ms: u32) -> io::Result<Option<ExitStatus>> {
        // SAFETY: the process handle is open.
        match unsafe { WaitForSingleObject(self.handle.as_raw_handle(), ms) } {
            WAIT_OBJECT_0 => {}
            WAIT_TIMEOUT => return Ok(None),
            _ => return Err(last_error()),
        }
        let mut code = 0u32;
        // SAFETY: the handle is open; `code` is writable.
        if unsafe { GetExitCodeProcess(self.handle.as_raw_handle(), &mut code) } == 0 {
            return Err(last_error());
        }
        Ok(Some(ExitStatus::from_raw(code)))
    }

    /// The process handle, for a caller that takes the child over.
    pub(crate) fn into_handle(self) -> OwnedHandle {
        self.handle
    }
}

/// An inheritable duplicate of `handle`, which exists only for one spawn.
fn inheritable(handle: HANDLE) -> io::Result<OwnedHandle> {
    let mut dup = std::ptr::null_mut();
    // SAFETY: duplicates an open handle of this process within it, inheritable; on success we
    // own the duplicate.
    let ok = unsafe {
        DuplicateHandle(
            GetCurrentProcess(),
            handle,
            GetCurrentProcess(),
            &mut dup,
            0,
            1,
            DUPLICATE_SAME_ACCESS,
        )
    };
    if ok == 0 {
        return Err(last_error());
    }
    // SAFETY: DuplicateHandle succeeded: `dup` is a new handle we own.
    unsafe { owned(dup) }
}

/// This process's standard handle `which`, duplicated inheritable for a child; `None` when
/// there is none (a process without a console) or it cannot be duplicated.
fn standard_handle(which: u32) -> Option<OwnedHandle> {
    // SAFETY: GetStdHandle only reads the process parameters.
    let handle = unsafe { GetStdHandle(which) };
    if handle.is_null() || handle == INVALID_HANDLE_VALUE {
        return None;
    }
    inheritable(handle).ok()
}

/// Appends `arg` to a command line as the C runtime's `argv` parsing reads it back
/// (`CommandLineToArgvW` rules): quoted when empty or holding white space or a quote, a run of
/// backslashes doubled before a quote or the closing quote.
fn push_argument(line: &mut Vec<u16>, arg: &OsStr) {
    let units: Vec<u16> = arg.encode_wide().collect();
    let quote = units.is_empty()
        || units
            .iter()
            .any(|&u| u == u16::from(b' ') || u == u16::from(b'\t') || u == u16::from(b'"'));
    if !quote {
        line.extend_from_slice(&units);
        return;
    }
    line.push(u16::from(b'"'));
    let mut backslashes = 0;
    for &u in &units {
        if u == u16::from(b'\\') {
            backslashes += 1;
            continue;
        }
        if u == u16::from(b'"') {
            // Each backslash before a quote doubled, and the quote escaped.
            line.extend(std::iter::repeat_n(u16::from(b'\\'), backslashes * 2 + 1));
        } else {
            line.extend(std::iter::repeat_n(u16::from(b'\\'), backslashes));
        }
        backslashes = 0;
        line.push(u);
    }
    // Backslashes before the closing quote are doubled.
    line.extend(std::iter::repeat_n(u16::from(b'\\'), backslashes * 2));
    line.push(u16::from(b'"'));
}

/// The command line of `command`: the program (quoted, never escaped: `argv[0]` is read up to
/// the next quote), then each argument.
fn command_line(command: &Command) -> io::Result<Vec<u16>> {
    let program: Vec<u16> = command.get_program().encode_wide().collect();
    if program.contains(&u16::from(b'"')) || program.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a program name with a quote or a nul",
        ));
    }
    let mut line = vec![u16::from(b'"')];
    line.extend_from_slice(&program);
    line.push(u16::from(b'"'));
    for arg in command.get_args() {
        if arg.encode_wide().any(|u| u == 0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "an argument with a nul",
            ));
        }
        line.push(u16::from(b' '));
        push_argument(&mut line, arg);
    }
    line.push(0);
    Ok(line)
}

/// The environment block of the child: this process's, with `command`'s changes and
/// `extra`, sorted by name without regard to case (as Windows keeps it), `NAME=value\0`
/// each, a final `\0`.
fn environment_block(command: &Command, extra: (&str, &str)) -> io::Result<Vec<u16>> {
    let key = |name: &OsStr| name.to_string_lossy().to_uppercase();
    let mut vars: BTreeMap<String, (OsString, OsString)> = std::env::vars_os()
        .map(|(k, v)| (key(&k), (k, v)))
        .collect();
    for (name, value) in command.get_envs() {
        match value {
            Some(value) => vars.insert(key(name), (name.to_owned(), value.to_owned())),
            None => vars.remove(&key(name)),
        };
    }
    let (name, value) = extra;
    vars.insert(key(OsStr::new(name)), (name.into(), value.into()));
    let mut block = Vec::new();
    for (name, value) in vars.values() {
        if name.is_empty()
            || name.encode_wide().skip(1).any(|u| u == u16::from(b'='))
            || name
                .encode_wide()
                .chain(value.encode_wide())
                .any(|u| u == 0)
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("environment variable {name:?} cannot be passed"),
            ));
        }
        block.extend(name.encode_wide());
        block.push(u16::from(b'='));
        block.extend(value.encode_wide());
        block.push(0);
    }
    if block.is_empty() {
        block.push(0);
    }
    block.push(0);
    Ok(block)
}

/// A `PROC_THREAD_ATTRIBUTE_LIST` holding one handle list; the list and the handles it points
/// to live as long as this value.
struct HandleList {
    // Word-aligned storage for the opaque list.
    storage: Vec<usize>,
    // Read by CreateProcessW through the list: never moved or changed while the list lives.
    _handles: Box<[HANDLE]>,
}

impl HandleList {
    fn new(handles: Box<[HANDLE]>) -> io::Result<HandleList> {
        let mut size = 0usize;
        // SAFETY: a null list asks for the size of a list of one attribute (the call "fails"
        // with ERROR_INSUFFICIENT_BUFFER and sets `size`).
        unsafe { InitializeProcThreadAttributeList(std::ptr::null_mut(), 1, 0, &mut size) };
        if size == 0 {
            return Err(last_error());
        }
        let mut storage = vec![0usize; size.div_ceil(std::mem::size_of::<usize>())];
        // SAFETY: `storage` is writable for at least `size` bytes and word-aligned.
        if unsafe {
            InitializeProcThreadAttributeList(storage.as_mut_ptr().cast(), 1, 0, &mut size)
        } == 0
        {
            return Err(last_error());
        }
        let list = HandleList {
            storage,
            _handles: handles,
        };
        // SAFETY: the list was initialised for one attribute; the value is an array of open,
        // inheritable handles that `list` keeps at a fixed address (a boxed slice) until
        // the list is deleted in `drop`.
        let ok = unsafe {
            UpdateProcThreadAttribute(
                list.as_ptr(),
                0,
                PROC_THREAD_ATTRIBUTE_HANDLE_LIST as usize,
                list._handles.as_ptr().cast(),
                std::mem::size_of_val(&*list._handles),
                std::ptr::null_mut(),
                std::ptr::null(),
            )
        };
        if ok == 0 {
            return Err(last_error());
        }
        Ok(list)
    }

    fn as_ptr(&self) -> *mut core::ffi::c_void {
        self.storage.as_ptr().cast_mut().cast()
    }
}

impl Drop for HandleList {
    fn drop(&mut self) {
        // SAFETY: the list was initialised in `new` and is deleted once, here.
        unsafe { DeleteProcThreadAttributeList(self.as_ptr()) };
    }
}

/// Starts `command` with `endpoint` and this process's standard handles inherited — those
/// and no other handle — in the job that ends it when this process ends.
pub(crate) fn spawn_with_endpoint(
    command: &mut Command,
    endpoint: &Stream,
) -> io::Result<ChildProcess> {
    let passed = inheritable(endpoint.handle().as_raw_handle())?;
    let streams = [STD_INPUT_HANDLE, STD_OUTPUT_HANDLE, STD_ERROR_HANDLE].map(standard_handle);
    let raw = |h: &Option<OwnedHandle>| {
        h.as_ref()
            .map_or(std::ptr::null_mut(), |h| h.as_raw_handle())
    };
    let mut listed = vec![passed.as_raw_handle()];
    listed.extend(streams.iter().flatten().map(|h| h.as_raw_handle()));
    let list = HandleList::new(listed.into_boxed_slice())?;

    let mut line = command_line(command)?;
    let value = (passed.as_raw_handle() as usize).to_string();
    let environment = environment_block(command, (ENDPOINT_ENV, &value))?;
    let directory: Option<Vec<u16>> = command
        .get_current_dir()
        .map(|d| d.as_os_str().encode_wide().chain([0]).collect());

    // SAFETY: an all-zero STARTUPINFOEXW is valid; its size and fields are set below.
    let mut startup: STARTUPINFOEXW = unsafe { std::mem::zeroed() };
    startup.StartupInfo.cb = std::mem::size_of::<STARTUPINFOEXW>() as u32;
    startup.StartupInfo.dwFlags = STARTF_USESTDHANDLES;
    startup.StartupInfo.hStdInput = raw(&streams[0]);
    startup.StartupInfo.hStdOutput = raw(&streams[1]);
    startup.StartupInfo.hStdError = raw(&streams[2]);
    startup.lpAttributeList = list.as_ptr();
    // SAFETY: an all-zero PROCESS_INFORMATION is valid; CreateProcessW fills it.
    let mut info: PROCESS_INFORMATION = unsafe { std::mem::zeroed() };
    // SAFETY: the command line is a writable nul-terminated buffer; the environment block is
    // UTF-16 (CREATE_UNICODE_ENVIRONMENT) and double-nul-terminated; the directory, if any,
    // is nul-terminated; `startup` is a STARTUPINFOEXW (EXTENDED_STARTUPINFO_PRESENT) whose
    // list and handles live until the call returns; inheritance is limited to the list.
    let ok = unsafe {
        CreateProcessW(
            std::ptr::null(),
            line.as_mut_ptr(),
            std::ptr::null(),
            std::ptr::null(),
            1,
            CREATE_UNICODE_ENVIRONMENT | EXTENDED_STARTUPINFO_PRESENT | CREATE_SUSPENDED,
            environment.as_ptr().cast(),
            directory.as_ref().map_or(std::ptr::null(), |d| d.as_ptr()),
            &startup.StartupInfo,
            &mut info,
        )
    };
    if ok == 0 {
        return Err(last_error());
    }
    // SAFETY: CreateProcessW succeeded: both handles are new and ours.
    let (process, thread) = unsafe {
        (
            OwnedHandle::from_raw_handle(info.hProcess),
            OwnedHandle::from_raw_handle(info.hThread),
        )
    };
    drop(list);
    drop(passed);
    let mut child = ChildProcess {
        handle: process,
        pid: info.dwProcessId,
    };
    if let Some(job) = children_job() {
        use windows_sys::Win32::System::JobObjects::AssignProcessToJobObject;
        // SAFETY: both handles are open.
        unsafe { AssignProcessToJobObject(job.as_raw_handle(), child.handle.as_raw_handle()) };
    }
    // SAFETY: the thread handle is open; the thread was created suspended once.
    if unsafe { ResumeThread(thread.as_raw_handle()) } == u32::MAX {
        let e = last_error();
        let _ = child.kill();
        return Err(e);
    }
    endpoint.handed_to(child.pid);
    Ok(child)
}

#[cfg(test)]
mod tests {
    use super::push_argument;
    use std::ffi::OsStr;

    fn quoted(arg: &str) -> String {
        let mut line = Vec::new();
        push_argument(&mut line, OsStr::new(arg));
        String::from_utf16(&line).unwrap()
    }

    #[test]
    fn arguments_are_quoted_as_argv_parsing_reads_them() {
        assert_eq!(quoted("plain"), "plain");
        assert_eq!(quoted(""), r#""""#);
        assert_eq!(quoted("a b"), r#""a b""#);
        assert_eq!(quoted(r#"say "hi""#), r#""say \"hi\"""#);
        assert_eq!(quoted(r"C:\dir with space\"), r#""C:\dir with space\\""#);
        assert_eq!(quoted(r#"a\"b c"#), r#""a\\\"b c""#);
        assert_eq!(quoted(r"no\quote"), r"no\quote");
    }
}
