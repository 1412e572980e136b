//! Model checking of a shared value's seqlock with loom: the real `seqlock` code (reads,
//! writes, the writer lock and its takeover, change waits) over the model backend's memory
//! (`sys::model`), where every 64-bit word of the value object (sequence, length, generation
//! and the value's own words) is a loom atomic, so that loom chooses what each relaxed load of
//! a copy may see, torn copies included. Each thread has its own mapping of the object, as
//! each process has. A value here is [`WORDS`] words all equal to the number of the write that
//! wrote it: a value whose words differ is torn, and a read's version says which write it
//! must be.
//!
//! Run with:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test -p lpc --lib --release --target-dir target/loom shared::model
//! ```
//!
//! The preemption bound is 2 unless `LOOM_MAX_PREEMPTIONS` says otherwise.

use std::sync::Arc;
use std::time::Duration;

use loom::thread;

use super::seqlock::{self, Layout, Seqlock};
use crate::shm::Region;
use crate::sys::{thread_identity, SharedMemory};

/// Words in a value: two, so that a write stores them in two halves (`value.write.half`
/// between them) and a read loads them one at a time.
const WORDS: usize = 2;

/// Never reached in the model (its clock stands still).
const TIMEOUT: Duration = Duration::from_secs(3600);

/// Explores `f` with loom, at most 2 preemptions.
fn model(f: impl Fn() + Sync + Send + 'static) {
    crate::sys::explore_model(2, f)
}

fn encode(n: u64) -> Vec<u8> {
    [n; WORDS].iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// A read's bytes as the write number whose value they are; panics on a torn value.
fn decode(bytes: &[u8]) -> u64 {
    assert_eq!(bytes.len(), 8 * WORDS, "a value of the wrong length");
    let words: Vec<u64> = bytes
        .chunks(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert!(
        words.iter().all(|&w| w == words[0]),
        "a torn value: {words:?}"
    );
    words[0]
}

/// `mappings` views of one fresh value object (each thread's own, as each process maps it),
/// holding value 0 at version 0, as its creator writes it.
fn value_object(mappings: usize) -> Vec<Arc<Seqlock>> {
    let layout = Layout::new(0, 8 * WORDS);
    let shm = SharedMemory::create("model", layout.total_len).unwrap();
    seqlock::initialize(&Region::new(shm.map().unwrap()), &layout, &encode(0)).unwrap();
    let views: Vec<Arc<Seqlock>> = (0..mappings)
        .map(|_| {
            Arc::new(Seqlock {
                region: Region::new(shm.map().unwrap()),
                layout,
                lock_timeout: TIMEOUT,
            })
        })
        .collect();
    views
}

/// Reads once: a whole value, and the one the version says (write `n` publishes version `n`).
fn read(seqlock: &Seqlock) -> u64 {
    let (n, version) = seqlock.read(decode).unwrap();
    assert_eq!(n, version, "version {version} holds write {n}'s value");
    n
}

/// Reads once into a buffer of the value's length, as `SharedPlain::get` does.
fn read_exact(seqlock: &Seqlock) -> u64 {
    let mut bytes = [0u8; 8 * WORDS];
    let version = seqlock.read_exact_into(&mut bytes).unwrap();
    let n = decode(&bytes);
    assert_eq!(n, version, "version {version} holds write {n}'s value");
    n
}

/// Sets the value to write `n`'s, as `Shared::set` does (the `n`th write since creation).
fn set(seqlock: &Seqlock, n: u64) {
    let lock = seqlock.lock().unwrap();
    seqlock.write(&lock, &encode(n), &|_| true).unwrap();
}

/// Reads twice in a thread of its own (started before the writers, so that loom sees each
/// writer's stores race with its loads), the first through a decode, the second into a
/// buffer of the value's length (both of the seqlock's reads): the two write numbers, in
/// order.
fn reader(seqlock: Arc<Seqlock>) -> thread::JoinHandle<(u64, u64)> {
    thread::spawn(move || {
        let first = read(&seqlock);
        let second = read_exact(&seqlock);
        assert!(first <= second, "went back from {first} to {second}");
        (first, second)
    })
}

#[test]
fn a_reader_never_sees_a_torn_value_while_a_writer_writes() {
    model(|| {
        let views = value_object(2);
        let r = reader(views[1].clone());
        // Two writes: the second rewrites the copy that held value 0, which the reader may be
        // reading.
        set(&views[0], 1);
        set(&views[0], 2);
        let (_, second) = r.join().unwrap();
        assert!(second <= 2);
        assert_eq!(read(&views[1]), 2);
    });
}

#[test]
fn two_writers_are_serialized_by_the_writer_lock() {
    model(|| {
        let views = value_object(3);
        let r = reader(views[2].clone());
        // Read-modify-write, as `Shared::update` does: a lost update shows in the total.
        let increment = |writer: &Seqlock| {
            let lock = writer.lock().unwrap();
            let (n, _) = writer.read(decode).unwrap();
            writer.write(&lock, &encode(n + 1), &|_| true).unwrap();
        };
        let other = views[1].clone();
        let t = thread::spawn(move || increment(&other));
        increment(&views[0]);
        t.join().unwrap();
        let (_, second) = r.join().unwrap();
        assert!(second <= 2);
        assert_eq!(read(&views[2]), 2);
    });
}

#[test]
fn a_writer_that_dies_mid_write_leaves_the_published_value_and_the_lock_to_take_over() {
    model(|| {
        let views = value_object(3);
        let r = reader(views[2].clone());
        // Killed between the two halves of write 99 (a killed writer releases nothing: the
        // lock stays held by it).
        let lock = views[0].lock().unwrap();
        views[0]
            .write(&lock, &encode(99), &|step| step != "value.write.half")
            .unwrap();
        std::mem::forget(lock);
        // The published value stays readable, whole, while the dead writer holds the lock.
        assert_eq!(read(&views[2]), 0);
        let dead = thread_identity();
        // Found dead by the next writer, which takes over and writes over the torn copy.
        let heir = views[1].clone();
        thread::spawn(move || {
            let lock = heir.take_over(dead, thread_identity()).expect("taken over");
            heir.write(&lock, &encode(1), &|_| true).unwrap();
        })
        .join()
        .unwrap();
        // Only whole published values: 0 or write 1's, never the dead writer's half.
        let (_, second) = r.join().unwrap();
        assert!(second <= 1, "read write {second}'s value");
        assert_eq!(read(&views[2]), 1);
    });
}

#[test]
fn a_writer_that_dies_after_publishing_has_its_waiters_woken_by_the_takeover() {
    model(|| {
        let views = value_object(3);
        let waiter = views[2].clone();
        // Waits for a change from version 0 (in the model, only a wake ends a wait: a lost
        // one is a deadlock, which loom reports).
        let t = thread::spawn(move || waiter.wait_for_change(0, TIMEOUT));
        // Killed after publishing write 1, before waking the waiters.
        let lock = views[0].lock().unwrap();
        views[0]
            .write(&lock, &encode(1), &|step| step != "value.write.published")
            .unwrap();
        std::mem::forget(lock);
        let dead = thread_identity();
        let heir = views[1].clone();
        thread::spawn(move || drop(heir.take_over(dead, thread_identity()).expect("taken over")))
            .join()
            .unwrap();
        assert_eq!(t.join().unwrap(), Some(1));
        assert_eq!(read(&views[1]), 1);
    });
}
