//! iceoryx2 0.10's blackboard (`ipc::Service`), beside lpc's shared value (lpc-bench's
//! `shared` section): one entry, key 0, of the same `[u64; 8]` (every word a counter plus
//! 2⁴⁹), read with a reader port's `EntryHandle::get` (a copy) and written with a writer
//! port's `EntryHandleMut::update_with_copy`. A blackboard has one writer at a time: the
//! `set` row's writer is dropped before the writer child of the `get` row with a writer opens
//! its own.

use std::ffi::OsString;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use iceoryx2::prelude::*;
use lpc_bench::child::Peer;
use lpc_bench::record::{Record, Workload};
use lpc_bench::stats::{measure, Budget};

type Value = [u64; 8];
const BASE: u64 = 1 << 49;
const KEY: u64 = 0;

/// Set when the parent closes the writer child's stdin.
static STOP: AtomicBool = AtomicBool::new(false);

fn value(n: u64) -> Value {
    [BASE + n; 8]
}

fn whole(v: &Value) -> bool {
    v.iter().all(|w| *w == v[0])
}

fn name(dir: &Path) -> Result<ServiceName, String> {
    let base = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "bench-peers".into());
    ServiceName::new(&format!("lpc-bench/{base}/board")).map_err(|e| format!("{e:?}"))
}

fn node() -> Result<Node<ipc::Service>, String> {
    set_log_level(LogLevel::Error);
    NodeBuilder::new()
        .create::<ipc::Service>()
        .map_err(|e| format!("iceoryx2 node: {e:?}"))
}

fn e(e: &dyn std::fmt::Debug) -> String {
    format!("iceoryx2 blackboard: {e:?}")
}

/// Measures the shared-value workloads among `workloads` (`label` names the records).
pub fn measure_board(
    label: &str,
    workloads: &[Workload],
    budget: &Budget,
    dir: &Path,
) -> Result<Vec<Record>, String> {
    let node = node()?;
    let service = node
        .service_builder(&name(dir)?)
        .blackboard_creator::<u64>()
        .add::<Value>(KEY, value(0))
        .create()
        .map_err(|x| e(&x))?;
    let reader = service.reader_builder().create().map_err(|x| e(&x))?;
    let entry = reader.entry::<Value>(&KEY).map_err(|x| e(&x))?;
    let get = || {
        let v = *entry.get();
        if !whole(std::hint::black_box(&v)) {
            return Err(format!("a torn value: {v:?}"));
        }
        Ok(())
    };
    let mut out = Vec::new();
    for &w in workloads {
        eprintln!("bench-peers: {label} blackboard {}…", w.label());
        let result = match w {
            Workload::SharedGet => measure(budget, get).map(|s| (s, None)),
            Workload::SharedSet => {
                let writer = service.writer_builder().create().map_err(|x| e(&x))?;
                let handle = writer.entry::<Value>(&KEY).map_err(|x| e(&x))?;
                let mut n = 0;
                measure(budget, || {
                    n += 1;
                    handle.update_with_copy(value(n));
                    Ok(())
                })
                .map(|s| (s, None))
            }
            Workload::SharedGetWriting => {
                let args: Vec<OsString> = vec!["board-writer".into(), "--dir".into(), dir.into()];
                let child = Peer::spawn("blackboard writer", &args, Duration::from_secs(300))?;
                child.wait_ready(Duration::from_secs(20))?;
                // Writing, not starting: wait for the value to move.
                let first = *entry.get();
                let deadline = Instant::now() + Duration::from_secs(20);
                while *entry.get() == first {
                    if Instant::now() > deadline {
                        return Err("the blackboard writer child does not write".into());
                    }
                    std::thread::yield_now();
                }
                let before = entry.get()[0];
                let r = measure(budget, get);
                let writes = entry.get()[0].wrapping_sub(before);
                child.finish(Duration::from_secs(10))?;
                r.map(|s| {
                    (
                        s,
                        Some(format!("{writes} writes published during the measurement")),
                    )
                })
            }
            _ => continue,
        };
        out.push(match result {
            Ok((summary, note)) => {
                let mut r = Record::measured(label, w, "unpinned", summary);
                r.note = note;
                r
            }
            Err(why) => Record::skipped(label, w, format!("failed: {why}")),
        });
    }
    Ok(out)
}

/// The writer child: updates the entry back to back until the parent closes stdin.
pub fn writer(dir: &Path) -> Result<(), String> {
    std::thread::spawn(|| {
        let mut sink = [0u8; 64];
        let mut stdin = std::io::stdin();
        while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
        STOP.store(true, Ordering::Relaxed);
    });
    let node = node()?;
    let service = node
        .service_builder(&name(dir)?)
        .blackboard_opener::<u64>()
        .open()
        .map_err(|x| e(&x))?;
    let writer = service.writer_builder().create().map_err(|x| e(&x))?;
    let handle = writer.entry::<Value>(&KEY).map_err(|x| e(&x))?;
    let reader = service.reader_builder().create().map_err(|x| e(&x))?;
    let mut n = reader.entry::<Value>(&KEY).map_err(|x| e(&x))?.get()[0] - BASE;
    drop(reader);
    n += 1;
    handle.update_with_copy(value(n));
    lpc_bench::child::ready();
    while !STOP.load(Ordering::Relaxed) {
        for _ in 0..1024 {
            n += 1;
            handle.update_with_copy(value(n));
        }
    }
    Ok(())
}
