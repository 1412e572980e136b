//! The floors: the least two processes can do to pass a value to each other and back through
//! shared memory. `raw-spin` busy-waits on both sides; `raw-futex` always sleeps on a futex
//! and always wakes the peer (no spinning at all). lpc's calls are compared against these,
//! and against two more floors at the end of this file: a Unix-socket ping-pong (`raw-unix`)
//! and `memcpy` bandwidth.
//!
//! Layout of the shared words (a file mapped by both processes):
//!
//! ```text
//! word  0 (bytes  0..4, cache line 0): ping, written by the parent only
//! word 16 (bytes 64..68, cache line 1): pong, written by the child only
//! ```
//!
//! The parent stores an odd value `v` in ping; the child answers `v + 1` in pong.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use lpc::floor::{futex_wait, futex_wake, SharedWords};
use lpc_bench::stats::{measure, Budget, Summary};

/// Index of the ping word.
const PING: usize = 0;
/// Index of the pong word: 64 bytes after ping, on its own cache line.
const PONG: usize = 16;
/// Words in the file: two cache lines.
const WORDS: usize = 32;
/// Written to ping to end the child's loop (the parent's values never get this high).
const STOP: u32 = u32::MAX;
/// Written to ping to make a spinning child sleep (on a futex on ping) until ping changes
/// again: while the parent measures lpc between two rounds of the floor, the floor's child
/// must not spin on a CPU the lpc service needs.
const PARK: u32 = u32::MAX - 1;

/// How long either side waits for the other before giving up.
const PEER_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest single futex sleep (the deadline is checked between sleeps).
const FUTEX_SLICE: Duration = Duration::from_millis(100);
/// Spins between two looks at the clock while spinning (a power of two; the fast path reads
/// no clock).
const SPINS_PER_CLOCK_CHECK: u32 = 1 << 16;

/// How the two sides wait for each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Busy-wait with `std::hint::spin_loop`.
    Spin,
    /// Sleep with `futex_wait`; signal with a store and `futex_wake`.
    Futex,
}

/// Waits until `word` no longer holds `old`; returns the new value, or `None` after
/// `PEER_TIMEOUT`. The clock is only read once the wait turns out to be long.
fn wait_changed(word: &AtomicU32, old: u32, mode: Mode) -> Option<u32> {
    let mut deadline: Option<Instant> = None;
    match mode {
        Mode::Spin => {
            let mut spins = 0u32;
            loop {
                let value = word.load(Ordering::Acquire);
                if value != old {
                    return Some(value);
                }
                std::hint::spin_loop();
                spins = spins.wrapping_add(1);
                if spins & (SPINS_PER_CLOCK_CHECK - 1) == 0 && past_deadline(&mut deadline) {
                    return None;
                }
            }
        }
        Mode::Futex => {
            let mut slept = false;
            loop {
                let value = word.load(Ordering::Acquire);
                if value != old {
                    return Some(value);
                }
                // The first sleep is the normal case; only later ones look at the clock.
                if slept && past_deadline(&mut deadline) {
                    return None;
                }
                futex_wait(word, old, Some(FUTEX_SLICE));
                slept = true;
            }
        }
    }
}

/// True once `PEER_TIMEOUT` has passed since the first call (which sets `deadline`).
fn past_deadline(deadline: &mut Option<Instant>) -> bool {
    let now = Instant::now();
    now >= *deadline.get_or_insert(now + PEER_TIMEOUT)
}

/// Publishes `value` in `word` and, in futex mode, wakes the peer.
fn signal(word: &AtomicU32, value: u32, mode: Mode) {
    word.store(value, Ordering::Release);
    if mode == Mode::Futex {
        futex_wake(word);
    }
}

/// The parent's side: creates the shared words and times round trips.
pub struct Pinger {
    words: SharedWords,
    mode: Mode,
    /// The last value the child answered (0 before the first round trip).
    last: u32,
}

impl Pinger {
    /// Creates the shared file at `path` for a child to open.
    pub fn create(path: &Path, mode: Mode) -> std::io::Result<Pinger> {
        Ok(Pinger {
            words: SharedWords::create(path, WORDS)?,
            mode,
            last: 0,
        })
    }

    /// One round trip: ping `last + 1`, wait for `last + 2`.
    pub fn round_trip(&mut self) -> Result<(), String> {
        let value = self.last.wrapping_add(1);
        if value >= PARK - 1 {
            return Err("sequence exhausted".into());
        }
        signal(self.words.word(PING), value, self.mode);
        match wait_changed(self.words.word(PONG), self.last, self.mode) {
            Some(answer) if answer == value.wrapping_add(1) => {
                self.last = answer;
                Ok(())
            }
            Some(answer) => Err(format!("child answered {answer} to {value}")),
            None => Err(format!("child did not answer within {PEER_TIMEOUT:?}")),
        }
    }

    /// Tells the child to exit.
    pub fn stop(&self) {
        signal(self.words.word(PING), STOP, self.mode);
    }

    /// Makes the child sleep until [`Pinger::unpark`] (it spins no more meanwhile).
    pub fn park(&self) {
        signal(self.words.word(PING), PARK, Mode::Futex);
    }

    /// Wakes the parked child: ping goes back to the last value it answered.
    pub fn unpark(&self) {
        signal(
            self.words.word(PING),
            self.last.saturating_sub(1),
            Mode::Futex,
        );
    }
}

/// The child's side: answers pings until told to stop.
pub fn answer(path: &Path, mode: Mode) -> Result<(), String> {
    let words = SharedWords::open(path).map_err(|e| format!("opening {}: {e}", path.display()))?;
    lpc_bench::child::ready();
    let (ping, pong) = (words.word(PING), words.word(PONG));
    let mut last = 0;
    loop {
        let value = wait_changed(ping, last, mode)
            .ok_or_else(|| format!("no ping within {PEER_TIMEOUT:?}"))?;
        if value == STOP {
            return Ok(());
        }
        if value == PARK {
            // Asleep until unparked (bounded: the parent's death ends it, see `child`).
            while ping.load(Ordering::Acquire) == PARK {
                futex_wait(ping, PARK, Some(FUTEX_SLICE));
            }
            continue;
        }
        signal(pong, value.wrapping_add(1), mode);
        last = value;
    }
}

/// The Unix-socket floor, parent side: a connected `UnixStream` to a child that echoes every
/// `size` bytes it reads.
pub struct UnixPinger {
    stream: UnixStream,
    out: Vec<u8>,
    back: Vec<u8>,
}

impl UnixPinger {
    /// Connects to the child listening at `path`; each round trip sends and receives `size`
    /// bytes.
    pub fn connect(path: &Path, size: usize) -> std::io::Result<UnixPinger> {
        let stream = UnixStream::connect(path)?;
        stream.set_read_timeout(Some(PEER_TIMEOUT))?;
        stream.set_write_timeout(Some(PEER_TIMEOUT))?;
        let mut out = vec![0u8; size];
        for (i, b) in out.iter_mut().enumerate() {
            *b = i as u8;
        }
        Ok(UnixPinger {
            stream,
            out,
            back: vec![0u8; size],
        })
    }

    /// Writes the message and reads the echo; checks its ends.
    pub fn round_trip(&mut self) -> Result<(), String> {
        self.out[0] = self.out[0].wrapping_add(1);
        self.stream
            .write_all(&self.out)
            .and_then(|()| self.stream.read_exact(&mut self.back))
            .map_err(|e| format!("unix socket: {e}"))?;
        if self.back.first() != self.out.first() || self.back.last() != self.out.last() {
            return Err("unix socket: the echo differs".into());
        }
        Ok(())
    }
}

/// The Unix-socket floor, child side: accepts one connection at `path` and echoes each
/// `size`-byte message until the parent closes it.
pub fn answer_unix(path: &Path, size: usize) -> Result<(), String> {
    let listener =
        UnixListener::bind(path).map_err(|e| format!("binding {}: {e}", path.display()))?;
    lpc_bench::child::ready();
    let (mut stream, _) = listener.accept().map_err(|e| format!("accept: {e}"))?;
    let mut buf = vec![0u8; size];
    loop {
        match stream.read_exact(&mut buf) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(format!("unix socket: {e}")),
        }
        stream
            .write_all(&buf)
            .map_err(|e| format!("unix socket: {e}"))?;
    }
}

/// The bandwidth floor: single-threaded `memcpy` of `size` bytes between two buffers of this
/// process (both touched beforehand, so no page fault is timed).
pub fn memcpy(budget: &Budget, size: usize) -> Result<Summary, String> {
    let src = vec![0x5au8; size];
    let mut dst = vec![0u8; size];
    measure(budget, || {
        dst.copy_from_slice(std::hint::black_box(&src));
        std::hint::black_box(&mut dst);
        Ok(())
    })
}

/// The cross-check floors, `raw-spin-bare` and `raw-futex-bare`: the same ping-pong written
/// as plainly as it can be, sharing nothing with the harness above but the mapping — no
/// `spin_loop` hint, no clock in the wait (a bound on the spins instead), the futex called
/// straight through rustix instead of through `lpc::floor`, and its own timing loop
/// (`Instant` around each round trip into a preallocated vector, summarised at the end). If
/// `raw-spin` or `raw-futex` ever costs much more than its bare twin, the harness, not the
/// machine, is the floor.
pub fn bare_round_trips(path: &Path, samples: usize, futex: bool) -> Result<Summary, String> {
    let words = SharedWords::open(path).map_err(|e| format!("opening {}: {e}", path.display()))?;
    let (ping, pong) = (words.word(PING), words.word(PONG));
    let mut latencies = Vec::with_capacity(samples);
    let mut value = 1u32;
    let round_trip = |value: u32| -> Result<(), String> {
        ping.store(value, Ordering::Release);
        if futex {
            bare_wake(ping);
        }
        bare_wait(pong, |v| v == value + 1, futex)
            .ok_or_else(|| "the child did not answer".to_owned())?;
        Ok(())
    };
    for _ in 0..samples / 10 {
        round_trip(value)?;
        value += 2;
    }
    for _ in 0..samples {
        let start = Instant::now();
        round_trip(value)?;
        latencies.push(start.elapsed().as_nanos() as u64);
        value += 2;
    }
    let batch = Instant::now();
    for _ in 0..samples {
        round_trip(value)?;
        value += 2;
    }
    let wall = batch.elapsed();
    ping.store(STOP, Ordering::Release);
    if futex {
        bare_wake(ping);
    }
    Ok(lpc_bench::stats::summarise(latencies, samples, wall))
}

/// Waits until `word` holds a value `done` accepts, spinning on it or sleeping on it with
/// `FUTEX_WAIT` (shared: the word is in another process's mapping too); `None` after about
/// ten seconds without one.
fn bare_wait(word: &AtomicU32, done: impl Fn(u32) -> bool, futex: bool) -> Option<u32> {
    let mut tries = 0u64;
    loop {
        let value = word.load(Ordering::Acquire);
        if done(value) {
            return Some(value);
        }
        tries += 1;
        if futex {
            if tries == BARE_SLEEP_BOUND {
                return None;
            }
            let slice = rustix::thread::futex::Timespec {
                tv_sec: 0,
                tv_nsec: 100_000_000,
            };
            // Interrupted, timed out or the value changed: all mean look again.
            let _ = rustix::thread::futex::wait(
                word,
                rustix::thread::futex::Flags::empty(),
                value,
                Some(&slice),
            );
        } else if tries == BARE_SPIN_BOUND {
            return None;
        }
    }
}

/// `FUTEX_WAKE` of the one waiter on `word`, if it sleeps.
fn bare_wake(word: &AtomicU32) {
    let _ = rustix::thread::futex::wake(word, rustix::thread::futex::Flags::empty(), 1);
}

/// About ten seconds of sleeps of at most 100 ms.
const BARE_SLEEP_BOUND: u64 = 100;
/// About ten seconds of spinning at a few loads per nanosecond.
const BARE_SPIN_BOUND: u64 = 1 << 35;

/// The child of `raw-spin-bare` and `raw-futex-bare`: answers `v + 1` to every ping `v`,
/// spinning without a hint or sleeping on the futex.
pub fn answer_bare(path: &Path, futex: bool) -> Result<(), String> {
    let words = SharedWords::open(path).map_err(|e| format!("opening {}: {e}", path.display()))?;
    lpc_bench::child::ready();
    let (ping, pong) = (words.word(PING), words.word(PONG));
    let mut last = 0;
    loop {
        let value = bare_wait(ping, |v| v != last, futex).ok_or_else(|| "no ping".to_owned())?;
        if value == STOP {
            return Ok(());
        }
        pong.store(value + 1, Ordering::Release);
        if futex {
            bare_wake(pong);
        }
        last = value;
    }
}
