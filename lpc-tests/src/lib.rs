//! The interfaces and helpers of lpc's end-to-end tests.
//!
//! `lpc-test-service` serves [`Probe`] (every kind of parameter and failure a test needs);
//! `lpc-test-client` connects from a separate process so that tests can kill it. The tests in
//! `tests/` start these as real processes, each in its own runtime directory.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub mod feed;
pub mod journal;
pub mod sizes;

/// A record with owned data, sent both ways.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// An id.
    pub id: u32,
    /// A name.
    pub name: String,
    /// Some values.
    pub values: Vec<f64>,
}

/// An application error, carried across unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProbeError {
    /// The input was negative.
    Negative(i64),
}

/// The test service's interface.
#[lpc::service]
pub trait Probe {
    /// `a + b`, wrapping.
    fn add(&self, a: i32, b: i32) -> i32;
    /// Returns `data`.
    fn echo(&self, data: &[u8]) -> Vec<u8>;
    /// `"<titles joined by space> <name>"`.
    fn greet(&self, name: &str, titles: &[String]) -> String;
    /// Appends to `record.name`, doubles `record.values`, bumps the id and `counter`; returns
    /// the number of values.
    fn touch(&self, record: &mut Record, counter: &mut u64) -> usize;
    /// The integer square root of `x`, or an application error for negative `x`.
    fn checked_sqrt(&self, x: i64) -> Result<u64, ProbeError>;
    /// Panics with `message`.
    fn boom(&self, message: &str) -> u32;
    /// Prints `sleeping <ms>`, sleeps `ms` milliseconds, returns `ms`.
    fn sleep_ms(&self, ms: u64) -> u64;
    /// The service's process id.
    fn pid(&self) -> u32;
    /// `len` bytes of `byte`.
    fn filled(&self, len: u64, byte: u8) -> Vec<u8>;
    /// Sleeps `ms` milliseconds, then returns `len` bytes of `byte`.
    fn slow_filled(&self, ms: u64, len: u64, byte: u8) -> Vec<u8>;
    /// Returns `record` with its id incremented.
    fn bump(&self, record: &Record) -> Record;
    /// Does nothing.
    fn nothing(&self);
    /// `lpc::caller()` as (pid, uid, gid); the pid is `None` for a caller in a PID namespace
    /// the service cannot see.
    fn whoami(&self) -> (Option<u32>, u32, u32);
    /// Milliseconds left until the caller's deadline (`lpc::deadline()`), if it set one.
    fn deadline_left_ms(&self) -> Option<u64>;
    /// Prints `waiting`, then polls `lpc::cancelled()` for up to `max_ms`; returns whether it
    /// saw the call cancelled, and prints `cancelled` when it does.
    fn wait_for_cancel(&self, max_ms: u64) -> bool;
    /// The length, first and last byte of a loan, read in place (touches 2 bytes of it).
    fn loan_peek(&self, data: &lpc::Loan) -> (u64, u8, u8);
    /// The sum of a loan's bytes (reads all of it).
    fn loan_sum(&self, data: &lpc::Loan) -> u64;
    /// A loan of `len` bytes whose first and last bytes are `byte` (writes 2 bytes of it, or
    /// all of it when `fill`).
    fn loan_make(&self, len: u64, byte: u8, fill: bool) -> lpc::Loan;
    /// Holds the loan until `loan_release` is called (or `max_ms` pass); returns its length.
    fn loan_hold(&self, data: &lpc::Loan, max_ms: u64) -> u64;
    /// Ends the `loan_hold` calls in progress (and the next one at once).
    fn loan_release(&self);
}

/// Set by `loan_release`, seen by `loan_hold`.
static LOAN_RELEASED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// What the test service runs.
pub struct ProbeService;

impl Probe for ProbeService {
    fn add(&self, a: i32, b: i32) -> i32 {
        a.wrapping_add(b)
    }
    fn echo(&self, data: &[u8]) -> Vec<u8> {
        data.to_vec()
    }
    fn greet(&self, name: &str, titles: &[String]) -> String {
        format!("{} {name}", titles.join(" "))
    }
    fn touch(&self, record: &mut Record, counter: &mut u64) -> usize {
        record.id += 1;
        record.name.push_str(" (touched)");
        for v in &mut record.values {
            *v *= 2.0;
        }
        *counter += 1;
        record.values.len()
    }
    fn checked_sqrt(&self, x: i64) -> Result<u64, ProbeError> {
        if x < 0 {
            return Err(ProbeError::Negative(x));
        }
        Ok((x as f64).sqrt() as u64)
    }
    fn boom(&self, message: &str) -> u32 {
        panic!("{message}")
    }
    fn sleep_ms(&self, ms: u64) -> u64 {
        // Tests wait for this line to know the call is executing.
        println!("sleeping {ms}");
        std::thread::sleep(Duration::from_millis(ms));
        ms
    }
    fn pid(&self) -> u32 {
        std::process::id()
    }
    fn filled(&self, len: u64, byte: u8) -> Vec<u8> {
        vec![byte; len as usize]
    }
    fn slow_filled(&self, ms: u64, len: u64, byte: u8) -> Vec<u8> {
        std::thread::sleep(Duration::from_millis(ms));
        vec![byte; len as usize]
    }
    fn bump(&self, record: &Record) -> Record {
        let mut r = record.clone();
        r.id += 1;
        r
    }
    fn nothing(&self) {}
    fn whoami(&self) -> (Option<u32>, u32, u32) {
        let c = lpc::caller().expect("inside a call");
        let unix = "a Unix client has a uid and a gid";
        (c.pid(), c.uid().expect(unix), c.gid().expect(unix))
    }
    fn deadline_left_ms(&self) -> Option<u64> {
        lpc::deadline().map(|d| {
            d.saturating_duration_since(std::time::Instant::now())
                .as_millis() as u64
        })
    }
    fn loan_peek(&self, data: &lpc::Loan) -> (u64, u8, u8) {
        let (mut first, mut last) = ([0u8], [0u8]);
        data.read(0, &mut first);
        data.read(data.len().saturating_sub(1), &mut last);
        (data.len() as u64, first[0], last[0])
    }
    fn loan_sum(&self, data: &lpc::Loan) -> u64 {
        let mut sum = 0;
        data.for_each_chunk(|chunk| sum += chunk.iter().map(|&b| u64::from(b)).sum::<u64>());
        sum
    }
    fn loan_make(&self, len: u64, byte: u8, fill: bool) -> lpc::Loan {
        let mut loan = lpc::Loan::new(len as usize).expect("a loan");
        let bytes = loan.as_mut().expect("our own loan");
        if fill {
            bytes.fill(byte);
        } else if let (Some(_), n) = (bytes.first(), bytes.len()) {
            bytes[0] = byte;
            bytes[n - 1] = byte;
        }
        loan
    }
    fn loan_hold(&self, data: &lpc::Loan, max_ms: u64) -> u64 {
        let until = std::time::Instant::now() + Duration::from_millis(max_ms);
        while !LOAN_RELEASED.load(std::sync::atomic::Ordering::SeqCst)
            && std::time::Instant::now() < until
        {
            std::thread::sleep(Duration::from_millis(1));
        }
        data.len() as u64
    }
    fn loan_release(&self) {
        LOAN_RELEASED.store(true, std::sync::atomic::Ordering::SeqCst);
    }
    fn wait_for_cancel(&self, max_ms: u64) -> bool {
        println!("waiting");
        let until = std::time::Instant::now() + Duration::from_millis(max_ms);
        while std::time::Instant::now() < until {
            if lpc::cancelled() {
                println!("cancelled");
                return true;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        false
    }
}

/// Another version of the interface, for mismatch tests: same trait name, other signatures.
pub mod v2 {
    /// `Probe` with a changed `add` and a method the service lacks.
    #[lpc::service]
    pub trait Probe {
        /// Now on i64.
        fn add(&self, a: i64, b: i64) -> i64;
        /// Not in version 1.
        fn mul(&self, a: i64, b: i64) -> i64;
    }
}

/// A process started by a test, killed when dropped.
pub struct Process {
    /// The child.
    pub child: Child,
    /// Lines of its stdout, after the ready line.
    pub lines: mpsc::Receiver<String>,
}

impl Process {
    /// Starts `program args` with `LPC_RUNTIME_DIR=dir` and waits (at most 20 s) for a
    /// stdout line starting with `ready_prefix`.
    pub fn start(program: &Path, args: &[&str], dir: &Path, ready_prefix: &str) -> Process {
        Self::start_with_env(program, args, dir, ready_prefix, &[])
    }

    /// [`Process::start`] with more environment variables.
    pub fn start_with_env(
        program: &Path,
        args: &[&str],
        dir: &Path,
        ready_prefix: &str,
        env: &[(&str, &Path)],
    ) -> Process {
        let mut command = Command::new(program);
        command.args(args).envs(env.iter().copied());
        Self::start_command(command, dir, ready_prefix)
    }

    /// [`Process::start`] of a prepared command (its standard streams are set here).
    pub fn start_command(mut command: Command, dir: &Path, ready_prefix: &str) -> Process {
        let program = command.get_program().to_owned();
        let mut child = command
            .env("LPC_RUNTIME_DIR", dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.to_string_lossy()));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut process = Process { child, lines: rx };
        process.expect_line(ready_prefix, Duration::from_secs(20));
        process
    }

    /// Waits (bounded) for a stdout line starting with `prefix`; returns it.
    pub fn expect_line(&mut self, prefix: &str, within: Duration) -> String {
        let deadline = std::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return line,
                Ok(_) => continue,
                Err(e) => panic!("no line starting with {prefix:?} within {within:?}: {e}"),
            }
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A second user for the tests of other users (Unix: on Windows a second user needs an
/// account and a logon, which Wine cannot give): `lpc-test-other`, created (as root, with
/// `useradd`) if missing; its (uid, gid). An error, with the reason, where the test cannot
/// become another user (not root).
#[cfg(unix)]
pub fn other_user() -> Result<(u32, u32), String> {
    if rustix::process::geteuid().as_raw() != 0 {
        return Err("not running as root: cannot create or become another user".into());
    }
    let name = "lpc-test-other";
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").args([flag, name]).output().ok()?;
        String::from_utf8(out.stdout).ok()?.trim().parse().ok()
    };
    if id("-u").is_none() {
        let status = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                name,
            ])
            .status()
            .map_err(|e| format!("cannot run useradd: {e}"))?;
        // Another test may have created it at the same moment.
        if !status.success() && id("-u").is_none() {
            return Err(format!("useradd failed: {status}"));
        }
    }
    match (id("-u"), id("-g")) {
        (Some(uid), Some(gid)) => Ok((uid, gid)),
        _ => Err("cannot read the new user's ids".into()),
    }
}

/// `program`, to be run as `uid:gid` with no supplementary groups (through util-linux's
/// `setpriv`, which `scripts/setup.sh` installs): add its arguments, then run it.
pub fn as_user(uid: u32, gid: u32, program: &str) -> Command {
    let mut command = Command::new("setpriv");
    command.args([
        &format!("--reuid={uid}"),
        &format!("--regid={gid}"),
        "--clear-groups",
        program,
    ]);
    command
}

/// Lets other users through `dir` (mode 0711: they reach a name in it, they cannot list it),
/// as a test's own temporary directory must for a service that admits them: lpc changes the
/// mode only of a runtime directory it created.
#[cfg(unix)]
pub fn let_others_through(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711))
        .unwrap_or_else(|e| panic!("chmod 0711 {}: {e}", dir.display()));
}

/// Options pointing at a test's own runtime directory.
pub fn client_options(dir: &Path) -> lpc::ClientOptions {
    lpc::ClientOptions::new().runtime_dir(dir)
}

/// Counts the open descriptors of process `pid` (its handles, on Windows).
pub fn fd_count(pid: u32) -> usize {
    #[cfg(unix)]
    return std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    #[cfg(windows)]
    return lpc::testing::process_resources(pid).map_or(0, |(handles, _)| handles);
}

/// A field (in kB or a count) of `/proc/<pid>/status`, e.g. `VmRSS` or `Threads` (on
/// Windows only `Threads`, from a toolhelp snapshot; other fields are 0).
pub fn status_field(pid: u32, field: &str) -> u64 {
    #[cfg(windows)]
    if field == "Threads" {
        return lpc::testing::process_resources(pid).map_or(0, |(_, threads)| threads as u64);
    }
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Entries of `/dev/shm` (should never change because of lpc).
pub fn dev_shm_entries() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir("/dev/shm")
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// Polls `condition` every 10 ms until it holds or `within` passes; returns whether it held.
pub fn eventually(within: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + within;
    loop {
        if condition() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The id of `Probe`'s method `name`, for hand-made requests.
pub fn probe_method_id(name: &str) -> u32 {
    PROBE_INTERFACE
        .methods
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("Probe has no method {name}"))
        .id
}

/// The interface of the child services the spawn tests start (`lpc-test-child`).
pub mod child {
    /// What a spawned child tells about itself.
    #[lpc::service]
    pub trait ChildProbe {
        /// `a + b`, wrapping.
        fn add(&self, a: i32, b: i32) -> i32;
        /// The child's pid.
        fn pid(&self) -> u32;
        /// What each of the child's open descriptors is (`readlink /proc/self/fd/N`; on
        /// Windows each handle's kind and name), by number, listed while this call runs.
        fn descriptors(&self) -> Vec<(u32, String)>;
        /// The child's environment variable `name`.
        fn env(&self, name: &str) -> Option<String>;
        /// Aborts the child (a crash: no unwinding, no reply).
        fn abort(&self) -> u32;
        /// Prints `sleeping <ms>` on stdout, sleeps `ms` milliseconds, returns `ms`.
        fn sleep_ms(&self, ms: u64) -> u64;
    }

    /// What `lpc-test-child` serves.
    pub struct ChildService;

    impl ChildProbe for ChildService {
        fn add(&self, a: i32, b: i32) -> i32 {
            a.wrapping_add(b)
        }
        fn pid(&self) -> u32 {
            std::process::id()
        }
        #[cfg(windows)]
        fn descriptors(&self) -> Vec<(u32, String)> {
            // "value kind name" per handle, from the handle table.
            lpc::testing::process_handle_names(std::process::id())
                .into_iter()
                .filter_map(|line| {
                    let (value, what) = line.split_once(' ')?;
                    let value = u32::from_str_radix(value.trim_start_matches("0x"), 16).ok()?;
                    Some((value, what.to_owned()))
                })
                .collect()
        }
        #[cfg(unix)]
        fn descriptors(&self) -> Vec<(u32, String)> {
            let mut fds: Vec<(u32, String)> = std::fs::read_dir("/proc/self/fd")
                .map(|dir| {
                    dir.filter_map(|e| {
                        let e = e.ok()?;
                        let n = e.file_name().to_str()?.parse().ok()?;
                        let target = std::fs::read_link(e.path()).ok()?;
                        Some((n, target.to_string_lossy().into_owned()))
                    })
                    .collect()
                })
                .unwrap_or_default();
            fds.sort();
            fds
        }
        fn env(&self, name: &str) -> Option<String> {
            std::env::var(name).ok()
        }
        fn abort(&self) -> u32 {
            std::process::abort()
        }
        fn sleep_ms(&self, ms: u64) -> u64 {
            println!("sleeping {ms}");
            std::thread::sleep(std::time::Duration::from_millis(ms));
            ms
        }
    }
}

/// What both forms of the handle tests' `Files` service do (the trait differs by platform: a
/// service method cannot be `#[cfg]`-gated, so each platform has its own whole trait).
mod files_common {
    use std::fs::File;
    use std::io::{Read, Seek, SeekFrom};

    pub(crate) fn open(path: &str) -> Result<File, String> {
        File::open(path).map_err(|e| format!("{path}: {e}"))
    }

    pub(crate) fn read_all(file: &File) -> Vec<u8> {
        let mut file = file;
        let mut out = Vec::new();
        let _ = file.seek(SeekFrom::Start(0));
        let _ = file.read_to_end(&mut out);
        out
    }

    pub(crate) fn fail_with(file: File) -> u32 {
        let _held = file;
        panic!("failing while holding a file")
    }

    pub(crate) fn three(a: &File, b: &File, c: &File) -> u64 {
        [a, b, c]
            .iter()
            .map(|f| f.metadata().map_or(0, |m| m.len()))
            .sum()
    }

    pub(crate) fn fill(segment: &lpc::Segment, byte: u8) -> Result<u64, String> {
        let bytes = vec![byte; segment.len()];
        segment.write_at(0, &bytes).map_err(|e| e.to_string())?;
        Ok(segment.len() as u64)
    }

    pub(crate) fn make_segment(len: u64, byte: u8) -> lpc::Segment {
        let segment = lpc::Segment::anonymous(len as usize).expect("memory");
        segment
            .write_at(0, &vec![byte; len as usize])
            .expect("our own segment");
        segment
    }
}

/// The Windows counterpart of the handle tests' interface: files and segments (the
/// descriptor methods take Unix types).
#[cfg(windows)]
pub mod files {
    use std::fs::File;

    /// Files and segments in calls.
    #[lpc::service]
    pub trait Files {
        /// Opens `path` read-only with the service's rights; the handle crosses.
        fn open(&self, path: &str) -> Result<File, String>;
        /// Everything in `file`, read from its start.
        fn read_all(&self, file: &File) -> Vec<u8>;
        /// Panics, holding `file` (which must be closed all the same).
        fn fail_with(&self, file: File) -> u32;
        /// Takes three files; returns how many bytes they hold together.
        fn three(&self, a: &File, b: &File, c: &File) -> u64;
        /// Fills a segment with `byte`; an error for a read-only one.
        fn fill(&self, segment: &lpc::Segment, byte: u8) -> Result<u64, String>;
        /// A new segment of `len` bytes of `byte`.
        fn make_segment(&self, len: u64, byte: u8) -> lpc::Segment;
        /// The service's pid.
        fn pid(&self) -> u32;
    }

    /// What `lpc-test-files` serves.
    pub struct FilesService;

    impl Files for FilesService {
        fn open(&self, path: &str) -> Result<File, String> {
            super::files_common::open(path)
        }
        fn read_all(&self, file: &File) -> Vec<u8> {
            super::files_common::read_all(file)
        }
        fn fail_with(&self, file: File) -> u32 {
            super::files_common::fail_with(file)
        }
        fn three(&self, a: &File, b: &File, c: &File) -> u64 {
            super::files_common::three(a, b, c)
        }
        fn fill(&self, segment: &lpc::Segment, byte: u8) -> Result<u64, String> {
            super::files_common::fill(segment, byte)
        }
        fn make_segment(&self, len: u64, byte: u8) -> lpc::Segment {
            super::files_common::make_segment(len, byte)
        }
        fn pid(&self) -> u32 {
            std::process::id()
        }
    }
}

/// The interface of the handle tests (`lpc-test-files`): files, descriptors and segments
/// passed in calls. (Unix: its descriptor methods take `OwnedFd`.)
#[cfg(unix)]
pub mod files {
    use std::fs::File;
    use std::os::fd::{BorrowedFd, OwnedFd};

    /// Files, descriptors and segments in calls.
    #[lpc::service]
    pub trait Files {
        /// Opens `path` read-only with the service's rights; the descriptor crosses.
        fn open(&self, path: &str) -> Result<File, String>;
        /// Everything in `file`, read from its start.
        fn read_all(&self, file: &File) -> Vec<u8>;
        /// The size of the file behind `fd` (`fstat`), which the service then closes.
        fn size(&self, fd: OwnedFd) -> u64;
        /// The size of the file behind a borrowed descriptor.
        fn borrowed_size(&self, fd: BorrowedFd<'_>) -> u64;
        /// Panics, holding `file` (which must be closed all the same).
        fn fail_with(&self, file: File) -> u32;
        /// Takes three files; returns how many bytes they hold together.
        fn three(&self, a: &File, b: &File, c: &File) -> u64;
        /// Fills a segment with `byte`; an error for a read-only one.
        fn fill(&self, segment: &lpc::Segment, byte: u8) -> Result<u64, String>;
        /// A new segment of `len` bytes of `byte`.
        fn make_segment(&self, len: u64, byte: u8) -> lpc::Segment;
        /// Sleeps `ms`, then returns a file (`/proc/self/stat` of the service).
        fn slow_file(&self, ms: u64) -> File;
        /// The service's pid.
        fn pid(&self) -> u32;
    }

    /// What `lpc-test-files` serves.
    pub struct FilesService;

    fn fstat_size(fd: BorrowedFd<'_>) -> u64 {
        rustix::fs::fstat(fd).map_or(u64::MAX, |s| s.st_size as u64)
    }

    impl Files for FilesService {
        fn open(&self, path: &str) -> Result<File, String> {
            super::files_common::open(path)
        }
        fn read_all(&self, file: &File) -> Vec<u8> {
            super::files_common::read_all(file)
        }
        fn size(&self, fd: OwnedFd) -> u64 {
            use std::os::fd::AsFd;
            fstat_size(fd.as_fd())
        }
        fn borrowed_size(&self, fd: BorrowedFd<'_>) -> u64 {
            fstat_size(fd)
        }
        fn fail_with(&self, file: File) -> u32 {
            super::files_common::fail_with(file)
        }
        fn three(&self, a: &File, b: &File, c: &File) -> u64 {
            super::files_common::three(a, b, c)
        }
        fn fill(&self, segment: &lpc::Segment, byte: u8) -> Result<u64, String> {
            super::files_common::fill(segment, byte)
        }
        fn make_segment(&self, len: u64, byte: u8) -> lpc::Segment {
            super::files_common::make_segment(len, byte)
        }
        fn slow_file(&self, ms: u64) -> File {
            std::thread::sleep(std::time::Duration::from_millis(ms));
            File::open("/proc/self/stat").expect("our own stat")
        }
        fn pid(&self) -> u32 {
            std::process::id()
        }
    }
}
