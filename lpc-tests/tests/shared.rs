//! Shared values and named segments across real processes: one value seen by all, type
//! checks, consistency under concurrent writers, and SIGKILL at every step of creating,
//! publishing and writing — nothing torn, nobody blocked for long, nothing left behind.

use std::path::Path;
#[cfg(unix)]
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use lpc::shared::{list, prune, SharedKind};
use lpc::{Error, SegmentOptions, Shared, SharedOptions, SharedPlain};
use lpc_tests::{dev_shm_entries, Process};
use tempfile::TempDir;

const PEER: &str = env!("CARGO_BIN_EXE_lpc-shared-peer");

fn peer(args: &[&str], dir: &Path, ready: &str) -> Process {
    Process::start(Path::new(PEER), args, dir, ready)
}

fn opts(dir: &Path) -> SharedOptions {
    SharedOptions::new().runtime_dir(dir)
}

/// The name files in `dir` (what a value or segment leaves in the runtime directory).
fn name_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.ends_with(".value") || n.ends_with(".segment"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn run_to_end(args: &[&str], dir: &Path) -> String {
    let out = std::process::Command::new(PEER)
        .args(args)
        .env("LPC_RUNTIME_DIR", dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn one_value_is_seen_by_every_process() {
    let dir = TempDir::new().unwrap();
    let _writer = peer(&["set-value", "v", "8"], dir.path(), "ready");
    let v: Shared<[u64; 8]> = opts(dir.path()).open("v").unwrap();
    assert_eq!(v.get().unwrap(), [8; 8]);
    v.set([16; 8]).unwrap();
    let out = run_to_end(&["get-value", "v"], dir.path());
    assert_eq!(out.trim(), "value 16 16 16 16 16 16 16 16");
    assert_eq!(v.version(), 2);
    // The listing shows it, with both holders (the get-value process has exited).
    let listed = list(dir.path()).unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].kind, SharedKind::Value);
    assert_eq!(listed[0].holders.len(), 2, "{listed:?}");
    assert_eq!(listed[0].type_text.as_deref(), Some("[u64; 8]"));
    assert_eq!(listed[0].size, Some(80));
}

#[derive(serde::Serialize, serde::Deserialize, Default, Debug, PartialEq)]
struct Config {
    level: u32,
    name: [u8; 4],
}

#[test]
fn opening_with_another_type_fails_naming_both_types() {
    let dir = TempDir::new().unwrap();
    let _holder = peer(&["hold-value", "cfg"], dir.path(), "ready");
    let err = opts(dir.path()).open::<Config>("cfg").unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Shared { .. }), "{err:?}");
    assert!(
        text.contains("it holds `[u64; 8]`")
            && text.contains("opened it as `struct Config { level: u32, name: [u8; 4] }`"),
        "{text}"
    );
    // The right type opens.
    opts(dir.path()).open::<[u64; 8]>("cfg").unwrap();
}

#[test]
fn a_plain_value_is_the_same_object_that_shared_and_other_processes_see() {
    let dir = TempDir::new().unwrap();
    let _writer = peer(&["set-value", "p", "8"], dir.path(), "ready");
    let plain: SharedPlain<[u64; 8]> = opts(dir.path()).open_existing_plain("p").unwrap();
    assert_eq!(plain.get().unwrap(), [8; 8]);
    plain.set([16; 8]).unwrap();
    // Another process reads it through serde.
    let out = run_to_end(&["get-value", "p"], dir.path());
    assert_eq!(out.trim(), "value 16 16 16 16 16 16 16 16");
    assert_eq!(plain.update(|v| v[3] += 1).unwrap(), ());
    let (value, version) = plain.get_versioned().unwrap();
    assert_eq!(value, [16, 16, 16, 17, 16, 16, 16, 16]);
    assert_eq!(version, 3);
    assert_eq!(plain.shared().get().unwrap(), value);
    // Its type is checked as a Shared's is.
    let err = opts(dir.path()).open_plain::<[u32; 16]>("p").unwrap_err();
    assert!(err.to_string().contains("it holds `[u64; 8]`"), "{err}");
}

/// A plain struct (`repr(C)`, no padding) whose serde form is its memory.
#[repr(C)]
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    bytemuck::Pod,
    bytemuck::Zeroable,
    serde::Serialize,
    serde::Deserialize,
)]
struct Position {
    x: f64,
    y: f64,
    id: u32,
    flags: i16,
    level: u8,
    kind: u8,
}

/// A plain struct whose serde form swaps its fields: not its memory.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable, serde::Serialize, serde::Deserialize,
)]
#[serde(into = "(u32, u32)", from = "(u32, u32)")]
struct Swapped {
    a: u32,
    b: u32,
}

impl From<Swapped> for (u32, u32) {
    fn from(s: Swapped) -> (u32, u32) {
        (s.b, s.a)
    }
}

impl From<(u32, u32)> for Swapped {
    fn from((b, a): (u32, u32)) -> Swapped {
        Swapped { a, b }
    }
}

#[test]
fn a_plain_struct_reads_back_through_serde_and_a_swapped_form_is_refused() {
    let dir = TempDir::new().unwrap();
    let here = Position {
        x: 1.5,
        y: -2.25,
        id: 7,
        flags: -3,
        level: 9,
        kind: 200,
    };
    let plain: SharedPlain<Position> = opts(dir.path()).open_plain("pos").unwrap();
    assert_eq!(plain.get().unwrap(), bytemuck::Zeroable::zeroed());
    plain.set(here).unwrap();
    let shared: Shared<Position> = opts(dir.path()).open_existing("pos").unwrap();
    assert_eq!(shared.get().unwrap(), here);
    let err = opts(dir.path())
        .open_plain::<Swapped>("swapped")
        .unwrap_err();
    assert!(matches!(err, Error::Shared { .. }), "{err:?}");
    assert!(
        err.to_string().contains("cannot be shared as plain bytes")
            && err.to_string().contains("open it as a Shared instead"),
        "{err}"
    );
    // Nothing was created for it.
    assert_eq!(name_files(dir.path()), ["pos.value"]);
}

#[test]
fn update_is_never_interleaved_by_other_writers() {
    let dir = TempDir::new().unwrap();
    let v: Shared<u64> = opts(dir.path()).open("count").unwrap();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let dir = dir.path().to_owned();
            std::thread::spawn(move || {
                let v: Shared<u64> = opts(&dir).open("count").unwrap();
                for _ in 0..2000 {
                    v.update(|n| *n += 1).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(v.get().unwrap(), 8000);
    // A set inside update's closure is refused, not a deadlock.
    let err = v.update(|_| v.set(1u64)).unwrap().unwrap_err();
    assert!(
        err.to_string().contains("already holds its writer lock"),
        "{err}"
    );
}

#[test]
fn wait_for_change_wakes_when_another_process_writes() {
    let dir = TempDir::new().unwrap();
    let v: Shared<[u64; 8]> = opts(dir.path()).open("w").unwrap();
    let since = v.version();
    assert_eq!(
        v.wait_for_change(since, Duration::from_millis(20)).unwrap(),
        None
    );
    let waiter = std::thread::spawn(move || {
        let got = v.wait_for_change(since, Duration::from_secs(20)).unwrap();
        (got, v.get().unwrap())
    });
    let _writer = peer(&["set-value", "w", "5"], dir.path(), "ready");
    let (got, value) = waiter.join().unwrap();
    assert_eq!(got, Some(since + 1));
    assert_eq!(value, [5; 8]);
}

#[test]
fn four_readers_and_a_writer_never_see_a_torn_value() {
    let dir = TempDir::new().unwrap();
    let _holder = peer(&["hold-value", "t"], dir.path(), "ready");
    let _writer = peer(&["writer", "t"], dir.path(), "ready");
    // Two read through serde (`Shared`), two as plain bytes (`SharedPlain`).
    let mut readers: Vec<Process> = ["reader", "plain-reader", "reader", "plain-reader"]
        .into_iter()
        .map(|how| peer(&[how, "t", "200000"], dir.path(), "ready"))
        .collect();
    for r in &mut readers {
        let line = r.expect_line("reads", Duration::from_secs(120));
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields[3], "0", "torn reads: {line}");
        // The writer really wrote while this reader read.
        let distinct: u64 = fields[5].parse().unwrap();
        assert!(distinct > 1, "{line}");
    }
}

#[test]
fn creator_killed_before_or_after_publishing_leaves_a_usable_name() {
    for step in ["value.created", "value.published"] {
        let dir = TempDir::new().unwrap();
        let shm_before = dev_shm_entries();
        let mut creator = peer(
            &["hold-value", "c", step],
            dir.path(),
            &format!("at {step}"),
        );
        creator.kill();
        // The next opener reclaims the name: a fresh value (its only holder died), nobody
        // waiting.
        let started = Instant::now();
        let v: Shared<[u64; 8]> = opts(dir.path()).open_or("c", || [3; 8]).unwrap();
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(v.get().unwrap(), [3; 8], "{step}");
        let listed = list(dir.path()).unwrap();
        assert_eq!(listed[0].holders, vec![std::process::id()], "{step}");
        drop(v);
        assert_eq!(name_files(dir.path()), Vec::<String>::new(), "{step}");
        assert_eq!(dev_shm_entries(), shm_before);
    }
}

#[test]
fn a_writer_killed_mid_write_leaves_the_old_value_and_the_lock_is_taken_over() {
    for (step, expect) in [("value.write.half", 1), ("value.write.published", 2)] {
        let dir = TempDir::new().unwrap();
        let _holder = peer(&["set-value", "k", "1"], dir.path(), "ready");
        let v: Shared<[u64; 8]> = opts(dir.path()).open("k").unwrap();
        let mut writer = peer(
            &["set-value", "k", "2", step],
            dir.path(),
            &format!("at {step}"),
        );
        // The writer is stopped inside its write, holding the lock: readers are not held up
        // and see a whole value — the old one until it published, the new one after.
        assert_eq!(v.get().unwrap(), [expect; 8], "{step}");
        writer.kill();
        assert_eq!(v.get().unwrap(), [expect; 8], "{step}");
        // The next writer takes the dead writer's lock over within a bounded time.
        let started = Instant::now();
        v.set([7; 8]).unwrap();
        let took = started.elapsed();
        assert!(took < Duration::from_millis(500), "{step}: took {took:?}");
        assert_eq!(v.get().unwrap(), [7; 8]);
        let out = run_to_end(&["get-value", "k"], dir.path());
        assert_eq!(out.trim(), "value 7 7 7 7 7 7 7 7");
    }
}

#[test]
fn a_live_writer_holding_the_lock_makes_others_time_out_clearly() {
    let dir = TempDir::new().unwrap();
    let _holder = peer(&["set-value", "l", "1"], dir.path(), "ready");
    let _writer = peer(
        &["set-value", "l", "2", "value.write.half"],
        dir.path(),
        "at value.write.half",
    );
    let v: Shared<[u64; 8]> = opts(dir.path())
        .lock_timeout(Duration::from_millis(100))
        .open("l")
        .unwrap();
    let err = v.set([3; 8]).unwrap_err();
    assert!(err.to_string().contains("writer lock stayed held"), "{err}");
    assert_eq!(v.get().unwrap(), [1; 8]);
}

#[test]
fn killed_holders_leave_only_small_name_files_that_prune_and_the_next_open_reclaim() {
    let dir = TempDir::new().unwrap();
    let shm_before = dev_shm_entries();
    let mut a = peer(&["hold-value", "x"], dir.path(), "ready");
    let mut b = peer(&["hold-segment", "s", "4096"], dir.path(), "ready");
    let mut c = peer(&["hold-value", "y"], dir.path(), "ready");
    assert_eq!(name_files(dir.path()), ["s.segment", "x.value", "y.value"]);
    a.kill();
    b.kill();
    c.kill();
    // Nothing in /dev/shm, ever; the name files stay, small, with no live holder.
    assert_eq!(dev_shm_entries(), shm_before);
    for name in name_files(dir.path()) {
        let len = std::fs::metadata(dir.path().join(&name)).unwrap().len();
        assert!(len < 200, "{name}: {len} bytes");
    }
    let listed = list(dir.path()).unwrap();
    assert!(listed.iter().all(|l| l.holders.is_empty()), "{listed:?}");
    // The next open of `y` reclaims its file; prune removes the others.
    let y: Shared<[u64; 8]> = opts(dir.path()).open("y").unwrap();
    assert_eq!(y.get().unwrap(), [0; 8]);
    let mut pruned = prune(dir.path()).unwrap();
    pruned.sort();
    assert_eq!(pruned, ["s", "x"]);
    assert_eq!(name_files(dir.path()), ["y.value"]);
    drop(y);
    assert_eq!(name_files(dir.path()), Vec::<String>::new());
}

#[test]
fn a_holder_that_exits_removes_its_record_and_the_last_one_the_file() {
    let dir = TempDir::new().unwrap();
    run_to_end(&["exit-value", "e"], dir.path());
    assert_eq!(name_files(dir.path()), Vec::<String>::new());
    let v: Shared<[u64; 8]> = opts(dir.path()).open("e").unwrap();
    run_to_end(&["exit-value", "e"], dir.path());
    assert_eq!(list(dir.path()).unwrap()[0].holders, [std::process::id()]);
    drop(v);
    assert_eq!(name_files(dir.path()), Vec::<String>::new());
}

// Unix: it tries mprotect(2) on the read-only mapping.
#[cfg(unix)]
#[test]
fn a_segment_is_shared_and_a_read_only_opener_cannot_write_it() {
    let dir = TempDir::new().unwrap();
    let mut creator = peer(&["hold-segment", "seg", "4096"], dir.path(), "ready");
    let options = SegmentOptions::new().runtime_dir(dir.path());
    let ro = options.open_read_only("seg").unwrap();
    assert_eq!(ro.len(), 4096);
    assert!(!ro.writable());
    let mut buf = [0u8; 4];
    ro.read_at(0, &mut buf).unwrap();
    assert_eq!(&buf, b"peer");
    // The safe API refuses writes.
    assert!(ro
        .write_at(0, b"x")
        .unwrap_err()
        .to_string()
        .contains("read-only"));
    assert!(ro.atomic_u64(8).is_err());
    // The mapping cannot be made writable: it comes from a read-only descriptor.
    let page = ro.as_ptr().wrapping_sub(ro.as_ptr() as usize % 4096);
    // SAFETY: mprotect of a page of our own mapping; it is expected to fail, and if it did
    // not, nothing is written through it.
    let upgraded = unsafe {
        rustix::mm::mprotect(
            page.cast(),
            4096,
            rustix::mm::MprotectFlags::READ | rustix::mm::MprotectFlags::WRITE,
        )
    };
    assert_eq!(upgraded, Err(rustix::io::Errno::ACCESS));
    // A read-write opener writes; the read-only one sees it, also through atomics.
    let rw = options.open("seg").unwrap();
    rw.write_at(100, b"hello").unwrap();
    rw.atomic_u64(8).unwrap().store(42, Ordering::Release);
    let mut buf = [0u8; 5];
    ro.read_at(100, &mut buf).unwrap();
    assert_eq!(&buf, b"hello");
    assert_eq!(ro.load_u64(8, Ordering::Acquire).unwrap(), 42);
    // Bounds and alignment are checked.
    assert!(ro.read_at(4095, &mut [0u8; 2]).is_err());
    assert!(ro.load_u64(4, Ordering::Relaxed).is_err());
    // Another size is refused, naming both.
    let err = options.create("seg", 8192).unwrap_err().to_string();
    assert!(err.contains("4096 bytes") && err.contains("8192"), "{err}");
    // The segment outlives its creator while we hold it.
    creator.kill();
    let again = options.open_read_only("seg").unwrap();
    let mut buf = [0u8; 5];
    again.read_at(100, &mut buf).unwrap();
    assert_eq!(&buf, b"hello");
    drop((ro, rw, again));
    assert_eq!(name_files(dir.path()), Vec::<String>::new());
    let err = options.open("seg").unwrap_err();
    assert!(matches!(err, Error::SharedNotFound { .. }), "{err:?}");
}

#[test]
fn a_segment_creator_killed_at_each_step_leaves_a_usable_name() {
    for step in ["segment.created", "segment.published"] {
        let dir = TempDir::new().unwrap();
        let mut creator = peer(
            &["hold-segment", "z", "4096", step],
            dir.path(),
            &format!("at {step}"),
        );
        creator.kill();
        let options = SegmentOptions::new().runtime_dir(dir.path());
        assert!(matches!(
            options.open("z").unwrap_err(),
            Error::SharedNotFound { .. }
        ));
        let seg = options.create("z", 4096).unwrap();
        let mut buf = [1u8; 4];
        seg.read_at(0, &mut buf).unwrap();
        assert_eq!(buf, [0; 4], "{step}: a fresh segment");
    }
}

// Unix: the enemy writes the memfd through /proc/<pid>/fd.
#[cfg(unix)]
#[test]
fn memory_written_over_by_another_process_gives_errors_never_a_crash() {
    use std::os::unix::fs::FileExt;
    let dir = TempDir::new().unwrap();
    let v: Shared<[u64; 8]> = opts(dir.path()).open("h").unwrap();
    // The name file says where the memory is: reach it the way an opener does.
    let record = std::fs::read_to_string(dir.path().join("h.value")).unwrap();
    let fields: Vec<&str> = record.lines().nth(1).unwrap().split_whitespace().collect();
    let memory = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/proc/{}/fd/{}", fields[0], fields[1]))
        .unwrap();
    let mut word = [0u8; 8];
    memory.read_at(&mut word, 24).unwrap();
    let copy0 = u64::from_ne_bytes(word);
    // A published length beyond the capacity: the read fails, nothing is allocated for it.
    memory.write_at(&u64::MAX.to_ne_bytes(), copy0 + 8).unwrap();
    let err = v.get().unwrap_err().to_string();
    assert!(err.contains("beyond its capacity"), "{err}");
    // Bytes that are not a value of its type: a decode error.
    memory
        .write_at(&[2, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0], copy0)
        .unwrap();
    memory.write_at(&[0xff, 0xff, 0xff], copy0 + 16).unwrap();
    let err = v.get().unwrap_err().to_string();
    assert!(err.contains("does not decode"), "{err}");
    // Read as plain bytes: a published length other than the type's is refused.
    let plain: SharedPlain<[u64; 8]> = opts(dir.path()).open_existing_plain("h").unwrap();
    memory.write_at(&3u64.to_ne_bytes(), copy0 + 8).unwrap();
    let err = plain.get().unwrap_err().to_string();
    assert!(err.contains("a published length of 3 bytes"), "{err}");
    // A writer repairs it (its write goes to the other copy).
    v.set([4; 8]).unwrap();
    assert_eq!(plain.get().unwrap(), [4; 8]);
    assert_eq!(v.get().unwrap(), [4; 8]);
    // A header that is not lpc's: a new opener refuses it, naming why.
    memory.write_at(b"NOTLPC!!", 0).unwrap();
    let err = opts(dir.path()).open::<[u64; 8]>("h").unwrap_err();
    assert!(matches!(err, Error::Shared { .. }), "{err:?}");
    assert!(err.to_string().contains("no lpc magic number"), "{err}");
    // A layout that does not add up, likewise.
    memory
        .write_at(&u64::from_le_bytes(*b"LPCSHOBJ").to_ne_bytes(), 0)
        .unwrap();
    memory.write_at(&(1u64 << 40).to_ne_bytes(), 32).unwrap();
    let err = opts(dir.path()).open::<[u64; 8]>("h").unwrap_err();
    assert!(err.to_string().contains("capacity"), "{err}");
}
