//! Which CPUs the two processes run on.
//!
//! On a VM, a futex wake-up costs ten times more when the sleeper is on another (idle) vCPU
//! than on the waker's own, and an unpinned pair lands on either at the scheduler's whim: the
//! blocking systems are therefore pinned, so that a floor and its lpc counterpart are compared
//! in the same placement. The spinning systems are not pinned: two busy processes stay on
//! separate CPUs by themselves, and lpc (rightly) never spins in a process allowed only one CPU.

use rustix::thread::{sched_getaffinity, sched_setaffinity, CpuSet};

/// Where the parent and the child of one system run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Wherever the scheduler puts them.
    Unpinned,
    /// Parent on one CPU, child on another.
    Apart,
    /// Both on the same single CPU.
    Together,
}

impl Placement {
    pub fn describe(self) -> &'static str {
        match self {
            Placement::Unpinned => "unpinned",
            Placement::Apart => "2 CPUs",
            Placement::Together => "1 CPU",
        }
    }
}

/// The CPUs this thread may run on.
pub fn allowed_cpus() -> Vec<usize> {
    match sched_getaffinity(None) {
        Ok(set) => (0..CpuSet::MAX_CPU)
            .filter(|&cpu| set.is_set(cpu))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Restricts the calling thread (and the threads and processes it starts later) to `cpu`.
pub fn pin_to(cpu: usize) -> std::io::Result<()> {
    let mut set = CpuSet::new();
    set.set(cpu);
    sched_setaffinity(None, &set).map_err(Into::into)
}

/// Pins the calling thread to `cpu` until dropped, then restores its previous CPU set.
pub struct Pinned {
    saved: CpuSet,
}

impl Pinned {
    pub fn new(cpu: usize) -> std::io::Result<Pinned> {
        let saved = sched_getaffinity(None)?;
        pin_to(cpu)?;
        Ok(Pinned { saved })
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        let _ = sched_setaffinity(None, &self.saved);
    }
}

/// The CPU a process (or, with `"thread-self"`, the calling thread) last ran on: field 39 of
/// `/proc/<which>/stat` (`processor`, see proc(5)).
pub fn last_cpu(which: &str) -> Option<usize> {
    stat_fields(&format!("/proc/{which}/stat")).map(|(cpu, _)| cpu)
}

/// The CPU that the busiest thread of process `pid` (the one with the most CPU time: a
/// service's serving thread, not its sleeping main thread) last ran on.
pub fn busiest_thread_cpu(pid: u32) -> Option<usize> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .filter_map(|task| stat_fields(&format!("{}/stat", task.ok()?.path().display())))
        .max_by_key(|&(_, time)| time)
        .map(|(cpu, _)| cpu)
}

/// Fields 39 (`processor`) and 14 + 15 (`utime` + `stime`) of a `stat` file (proc(5)).
fn stat_fields(path: &str) -> Option<(usize, u64)> {
    let stat = std::fs::read_to_string(path).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    let time = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some((fields.get(36)?.parse().ok()?, time))
}
