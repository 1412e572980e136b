//! Shared values (`lpc::Shared`, the DLL shared data section): `get` of a 64-byte value with
//! no writer and while a writer process rewrites it back to back, `set`, and a torn-read check
//! (4 reader processes, 1 writer process, every value read checked).
//!
//! The value is `[u64; 8]` (64 bytes in memory), every word equal to a counter plus
//! [`BASE`]: its postcard encoding is 64 bytes too (eight per word, whatever the counter), and
//! a value whose words differ is torn.

use std::ffi::OsString;
use std::hint::black_box;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lpc::{Shared, SharedOptions, SharedPlain};
use lpc_bench::child::{self, Peer};
use lpc_bench::record::{Record, Workload};
use lpc_bench::stats::{measure, measure_interleaved, Budget};
use serde::{Deserialize, Serialize};

/// The value shared.
pub type Value = [u64; 8];
/// Added to the counter: words from 2⁴⁹ to 2⁵⁶ take eight bytes each in postcard's varint.
pub const BASE: u64 = 1 << 49;
/// The system name of lpc's rows through `lpc::Shared` (serde: the value decoded).
pub const SYSTEM: &str = "lpc-shared";
/// The system name of lpc's rows through `lpc::SharedPlain` (the value's bytes copied out as
/// they are, the same object).
pub const PLAIN_SYSTEM: &str = "lpc-shared-plain";
/// Reader processes of the torn-read check.
pub const READERS: u32 = 4;
/// Checked reads of the torn-read check, over all readers.
pub const CHECKED_READS: u64 = 10_000_000;
const NAME: &str = "bench-value";
const CHILD_LIMIT: Duration = Duration::from_secs(300);
const READY: Duration = Duration::from_secs(20);

/// The value of write number `n`.
pub fn value(n: u64) -> Value {
    [BASE + n; 8]
}

/// Whether `v` is one write's value (all its words equal), not parts of two.
pub fn whole(v: &Value) -> bool {
    v.iter().all(|w| *w == v[0])
}

/// The torn-read check's outcome.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TornCheck {
    pub readers: u32,
    /// Reads checked, over all readers.
    pub reads: u64,
    /// Reads whose words differed.
    pub torn: u64,
    /// Writes published by the writer meanwhile.
    pub writes: u64,
    /// Reads that found a value different from the reader's previous one (so the check ran
    /// against a moving value).
    pub changes: u64,
    pub seconds: f64,
}

fn open(dir: &Path) -> Result<Shared<Value>, String> {
    SharedOptions::new()
        .runtime_dir(dir)
        .open::<Value>(NAME)
        .map_err(|e| format!("opening the shared value: {e}"))
}

fn open_plain(dir: &Path) -> Result<SharedPlain<Value>, String> {
    SharedOptions::new()
        .runtime_dir(dir)
        .open_plain::<Value>(NAME)
        .map_err(|e| format!("opening the shared value as plain: {e}"))
}

fn args(what: &str, dir: &Path, extra: &[String]) -> Vec<OsString> {
    let mut a: Vec<OsString> = vec![what.into(), "--dir".into(), dir.into()];
    a.extend(extra.iter().map(OsString::from));
    a
}

/// Measures lpc's rows and the torn-read check.
pub fn measure_lpc(budget: &Budget) -> Result<(Vec<Record>, TornCheck), String> {
    let dir = temp_dir()?;
    let result = measure_in(&dir, budget);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn measure_in(dir: &Path, budget: &Budget) -> Result<(Vec<Record>, TornCheck), String> {
    let shared = open(dir)?;
    shared.set(value(0)).map_err(|e| e.to_string())?;
    let mut records = Vec::new();
    let plain = open_plain(dir)?;
    eprintln!("lpc-bench: {SYSTEM}, {PLAIN_SYSTEM}: get, no writer…");
    let [serde_get, plain_get] = measure_gets(budget, &shared, &plain)?;
    records.push(Record::measured(
        SYSTEM,
        Workload::SharedGet,
        "unpinned",
        serde_get,
    ));
    records.push(Record::measured(
        PLAIN_SYSTEM,
        Workload::SharedGet,
        "unpinned",
        plain_get,
    ));

    eprintln!("lpc-bench: {SYSTEM}: set…");
    let mut n = 0;
    let s = measure(budget, || {
        n += 1;
        shared.set(value(n)).map_err(|e| e.to_string())
    })?;
    records.push(Record::measured(SYSTEM, Workload::SharedSet, "unpinned", s));

    eprintln!("lpc-bench: {SYSTEM}: get while a writer process sets…");
    let writer = Peer::spawn(
        "shared writer",
        &args("child-shared-writer", dir, &[]),
        CHILD_LIMIT,
    )?;
    writer.wait_ready(READY)?;
    wait_for_writes(&shared)?;
    let before = shared.version();
    let [serde_get, plain_get] = measure_gets(budget, &shared, &plain)?;
    let writes = shared.version().wrapping_sub(before);
    for (system, s) in [(SYSTEM, serde_get), (PLAIN_SYSTEM, plain_get)] {
        let mut r = Record::measured(system, Workload::SharedGetWriting, "unpinned", s);
        r.note = Some(format!(
            "{writes} writes published during the two measurements"
        ));
        records.push(r);
    }

    eprintln!(
        "lpc-bench: {SYSTEM}: {READERS} reader processes, {CHECKED_READS} checked reads, 1 writer…"
    );
    let per_reader = CHECKED_READS.div_ceil(u64::from(READERS));
    let mut readers = Vec::new();
    for i in 0..READERS {
        // Half the readers through each API: both copy through the same seqlock.
        let mut extra = vec!["--reads".to_owned(), per_reader.to_string()];
        if i % 2 == 1 {
            extra.push("--plain".into());
        }
        let reader = Peer::spawn(
            "shared reader",
            &args("child-shared-reader", dir, &extra),
            CHILD_LIMIT,
        )?;
        reader.wait_ready(READY)?;
        readers.push(reader);
    }
    wait_for_writes(&shared)?;
    let before = shared.version();
    let start = Instant::now();
    for reader in &mut readers {
        reader.send_line("go")?;
    }
    let mut check = TornCheck {
        readers: READERS,
        reads: 0,
        torn: 0,
        writes: 0,
        changes: 0,
        seconds: 0.0,
    };
    for reader in readers {
        let line = reader.next_line(CHILD_LIMIT)?;
        let fields: Vec<u64> = line
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        let [reads, torn, changes] = fields[..] else {
            return Err(format!("a reader said {line:?}"));
        };
        check.reads += reads;
        check.torn += torn;
        check.changes += changes;
        reader.finish(Duration::from_secs(10))?;
    }
    check.seconds = start.elapsed().as_secs_f64();
    check.writes = shared.version().wrapping_sub(before);
    writer.finish(Duration::from_secs(10))?;
    Ok((records, check))
}

/// `get` through `Shared` and through `SharedPlain` of the same object, interleaved (so
/// that a drift of the machine weighs on both alike); each checked whole.
fn measure_gets(
    budget: &Budget,
    shared: &Shared<Value>,
    plain: &SharedPlain<Value>,
) -> Result<[lpc_bench::stats::Summary; 2], String> {
    let check = |v: Value| {
        if whole(black_box(&v)) {
            Ok(())
        } else {
            Err(format!("a torn value: {v:?}"))
        }
    };
    let mut serde_get = || check(shared.get().map_err(|e| e.to_string())?);
    let mut plain_get = || check(plain.get().map_err(|e| e.to_string())?);
    let summaries = measure_interleaved(budget, 8, &mut [&mut serde_get, &mut plain_get])?;
    let [a, b]: [_; 2] = summaries
        .try_into()
        .map_err(|_| "two summaries".to_owned())?;
    Ok([a, b])
}

/// Waits until the writer child has published a few more writes (so that it is writing, not
/// starting).
fn wait_for_writes(shared: &Shared<Value>) -> Result<(), String> {
    let start = shared.version();
    let deadline = Instant::now() + READY;
    while shared.version().wrapping_sub(start) < 100 {
        if Instant::now() > deadline {
            return Err("the writer child does not write".into());
        }
        std::thread::yield_now();
    }
    Ok(())
}

/// The writer child: sets the value back to back until the parent closes its stdin.
pub fn writer(dir: &Path) -> Result<(), String> {
    let shared = open(dir)?;
    let mut n = shared.get().map_err(|e| e.to_string())?[0] - BASE + 1;
    shared.set(value(n)).map_err(|e| e.to_string())?;
    // Ready once writing.
    child::ready();
    loop {
        n += 1;
        shared.set(value(n)).map_err(|e| e.to_string())?;
    }
}

/// A reader child: once told `go`, gets and checks `reads` values; prints `reads torn
/// changes`.
pub fn reader(
    dir: &Path,
    reads: u64,
    plain: bool,
    from_parent: &std::sync::mpsc::Receiver<String>,
) -> Result<(), String> {
    let (shared, plain) = if plain {
        (None, Some(open_plain(dir)?))
    } else {
        (Some(open(dir)?), None)
    };
    let get = || match (&shared, &plain) {
        (Some(s), _) => s.get().map_err(|e| e.to_string()),
        (_, Some(p)) => p.get().map_err(|e| e.to_string()),
        _ => unreachable!("one of them is open"),
    };
    child::ready();
    from_parent
        .recv()
        .map_err(|_| "the parent left before go".to_owned())?;
    let (mut torn, mut changes, mut last) = (0u64, 0u64, 0u64);
    for _ in 0..reads {
        let v = get()?;
        if !whole(&v) {
            torn += 1;
        }
        if v[0] != last {
            changes += 1;
            last = v[0];
        }
    }
    child::tell_parent(&format!("{reads} {torn} {changes}"));
    // Stay until the parent closes stdin (exit_with_parent exits then).
    loop {
        std::thread::park();
    }
}

/// For profiling (`valgrind --tool=callgrind lpc-bench child-shared-loop --count N`): `N`
/// gets of a value no one writes, in a fresh directory.
pub fn get_loop(count: u64, plain: bool) -> Result<(), String> {
    let dir = temp_dir()?;
    let shared = open(&dir)?;
    shared.set(value(7)).map_err(|e| e.to_string())?;
    let mut sum = 0u64;
    if plain {
        let plain = open_plain(&dir)?;
        for _ in 0..count {
            let v = plain.get().map_err(|e| e.to_string())?;
            sum = sum.wrapping_add(black_box(v)[3]);
        }
    } else {
        for _ in 0..count {
            let v = shared.get().map_err(|e| e.to_string())?;
            sum = sum.wrapping_add(black_box(v)[3]);
        }
    }
    drop(shared);
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("{count} gets, sum {sum}");
    Ok(())
}

fn temp_dir() -> Result<PathBuf, String> {
    let dir = std::env::temp_dir().join(format!("lpc-bench-shared-{}", std::process::id()));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| format!("creating {}: {e}", dir.display()))?;
    Ok(dir)
}
