//! The doorbell: sleep while a 32-bit word of shared memory holds a value, wake its sleepers.
//!
//! `WaitOnAddress` keys its waiters by virtual address within one process: it never wakes a
//! waiter in another (the two processes map the section at different addresses). So a word of
//! a section gets a named semaphore per [`Lane`], `Local\lpc-bell-<section id>-<offset>-<lane>`,
//! which both processes derive from what they share (the section's id, the word's offset) and
//! open on first use. A semaphore remembers a wake that comes before the waiter sleeps, so a
//! wake between the waiter's check of the word and its sleep is not lost.
//!
//! That memory is also why lanes exist: a remembered wake goes to whichever sleeper of the
//! semaphore asks first, though nothing compared the word for it. A client that waits again on
//! a slot's state (now REQUEST) right after waking the slot's service thread (which checked the
//! state while it was REPLY and has not slept yet) took that wake, and the service thread slept
//! through its request: under Wine, one run in about four of a test of 20 threads on 2 slots.
//! In lanes, the client's and the service thread's sleeps use different semaphores.
//!
//! A semaphore would also remember wakes nobody waits for, and every one of them would later
//! be a wait that returns at once (a system call for nothing). So waiters count themselves in
//! a page beside the section (`Local\lpc-bellw-<section id>`, one counter per word, shared
//! by words whose offsets collide modulo the page), and a wake releases only as many as are
//! counted. A wait that times out as it is released leaves one count behind: one spurious
//! return, which the callers (who always re-check the word) absorb. A peer that writes the
//! counters wrongly only delays its own wake-ups.
//!
//! This is the slow path only: the layers above spin first, and wake only a peer that said it
//! sleeps (the channel's Dekker pair), so no kernel call is made while both sides are awake.
//! A word outside any section (process-local) uses `WaitOnAddress` itself.

use std::collections::{BTreeMap, HashMap};
use std::os::windows::io::{AsRawHandle, OwnedHandle};
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use windows_sys::Win32::Foundation::WAIT_TIMEOUT;
use windows_sys::Win32::System::Threading::{
    CreateSemaphoreW, ReleaseSemaphore, WaitForSingleObject, WaitOnAddress, WakeByAddressAll,
    INFINITE,
};

use super::{owned, wide};
use crate::sys::{Lane, WaitOutcome};

/// The longest one sleep on a section word's semaphore lasts before the word is checked again:
/// a bound on what a lost wake-up could cost (none is known since lanes; this was 50 ms while
/// the one above was not understood, and woke every sleeping service thread 20 times a
/// second).
const SLICE_MS: u32 = 1_000;

/// The most wakes a word's semaphore holds for sleepers still to come.
const MAX_COUNT: i32 = 1024;

/// The views of sections in this process, by first address.
#[derive(Default)]
struct Views {
    by_start: BTreeMap<usize, Arc<View>>,
}

struct View {
    len: usize,
    id: u128,
    /// By word offset and lane.
    bells: Mutex<HashMap<(usize, Lane), Arc<OwnedHandle>>>,
    waiters: std::sync::OnceLock<Option<WaiterPage>>,
}

/// The page of waiter counts of one section's words, mapped here.
struct WaiterPage {
    _section: OwnedHandle,
    view: std::ptr::NonNull<AtomicU32>,
}

// SAFETY: the view is shared memory accessed only through atomics, from any thread.
unsafe impl Send for WaiterPage {}
// SAFETY: as above.
unsafe impl Sync for WaiterPage {}

const WAITER_WORDS: usize = 1024;

impl WaiterPage {
    fn open(id: u128) -> Option<WaiterPage> {
        use windows_sys::Win32::Foundation::INVALID_HANDLE_VALUE;
        use windows_sys::Win32::System::Memory::{
            CreateFileMappingW, MapViewOfFile, FILE_MAP_READ, FILE_MAP_WRITE, PAGE_READWRITE,
        };
        let name = wide(&format!("Local\\lpc-bellw-{id:032x}"));
        let len = WAITER_WORDS * 4;
        // SAFETY: creates (or opens) a pagefile-backed section of one page; we own the handle.
        let section = unsafe {
            owned(CreateFileMappingW(
                INVALID_HANDLE_VALUE,
                std::ptr::null(),
                PAGE_READWRITE,
                0,
                len as u32,
                name.as_ptr(),
            ))
        }
        .ok()?;
        // SAFETY: maps `len` bytes of the section just opened (a smaller one, planted by
        // someone else under this name, makes the call fail).
        let view = unsafe {
            MapViewOfFile(
                section.as_raw_handle(),
                FILE_MAP_READ | FILE_MAP_WRITE,
                0,
                0,
                len,
            )
        };
        let view = std::ptr::NonNull::new(view.Value.cast::<AtomicU32>())?;
        Some(WaiterPage {
            _section: section,
            view,
        })
    }

    /// The waiter count of the word at `offset` in `lane` (shared with the words and lanes
    /// whose index collides modulo the page: a count too high costs a release for nobody).
    fn counter(&self, offset: usize, lane: Lane) -> &AtomicU32 {
        let index = ((offset / 4) * Lane::COUNT + lane as usize) % WAITER_WORDS;
        // SAFETY: `index` is within the page's WAITER_WORDS aligned words; the view lives as
        // long as `self`; an AtomicU32 accepts any bits and concurrent access.
        unsafe { &*self.view.as_ptr().add(index) }
    }
}

impl Drop for WaiterPage {
    fn drop(&mut self) {
        use windows_sys::Win32::System::Memory::{UnmapViewOfFile, MEMORY_MAPPED_VIEW_ADDRESS};
        // SAFETY: the view MapViewOfFile returned, unmapped once; counters borrowed from it
        // are tied to `&self`.
        unsafe {
            UnmapViewOfFile(MEMORY_MAPPED_VIEW_ADDRESS {
                Value: self.view.as_ptr().cast(),
            })
        };
    }
}

impl View {
    fn waiters(&self) -> Option<&WaiterPage> {
        self.waiters
            .get_or_init(|| WaiterPage::open(self.id))
            .as_ref()
    }
}

static VIEWS: RwLock<Views> = RwLock::new(Views {
    by_start: BTreeMap::new(),
});

/// Records a view of section `id` at `start` (its words get doorbells).
pub(super) fn register(start: usize, len: usize, id: u128) {
    let view = Arc::new(View {
        len,
        id,
        bells: Mutex::new(HashMap::new()),
        waiters: std::sync::OnceLock::new(),
    });
    VIEWS
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .by_start
        .insert(start, view);
}

/// Forgets the view at `start` (closing its semaphores).
pub(super) fn unregister(start: usize) {
    VIEWS
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .by_start
        .remove(&start);
}

/// The semaphore of the section word at `addr` in `lane` (with its view and offset), or
/// `None` for a word outside every view.
fn bell(addr: usize, lane: Lane) -> Option<(Arc<OwnedHandle>, Arc<View>, usize)> {
    let view = {
        let views = VIEWS.read().unwrap_or_else(|p| p.into_inner());
        let (&start, view) = views.by_start.range(..=addr).next_back()?;
        if addr >= start + view.len {
            return None;
        }
        (start, view.clone())
    };
    let (start, view) = view;
    let offset = addr - start;
    let mut bells = view.bells.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(bell) = bells.get(&(offset, lane)) {
        return Some((bell.clone(), view.clone(), offset));
    }
    let name = wide(&format!(
        "Local\\lpc-bell-{:032x}-{offset:x}-{}",
        view.id, lane as u8
    ));
    // SAFETY: default security, a nul-terminated name that lives for the call; creates the
    // semaphore or opens the one the peer created; we own the returned handle.
    let handle = unsafe {
        owned(CreateSemaphoreW(
            std::ptr::null(),
            0,
            MAX_COUNT,
            name.as_ptr(),
        ))
    }
    .ok()?;
    let bell = Arc::new(handle);
    bells.insert((offset, lane), bell.clone());
    drop(bells);
    Some((bell, view, offset))
}

fn millis(timeout: Option<Duration>) -> u32 {
    match timeout {
        None => INFINITE,
        // Rounded up: a wait never ends before its timeout.
        Some(t) => u32::try_from(t.as_nanos().div_ceil(1_000_000)).unwrap_or(INFINITE - 1),
    }
}

/// Sleeps while `*word == expected`, until woken in `lane` or `timeout` passes. Returns at
/// once if the word already differs; may return early (callers re-check the word).
pub(crate) fn wait_in(
    word: &AtomicU32,
    expected: u32,
    timeout: Option<Duration>,
    lane: Lane,
) -> WaitOutcome {
    let addr = word as *const AtomicU32 as usize;
    match bell(addr, lane) {
        Some((bell, view, offset)) => {
            use std::sync::atomic::Ordering::SeqCst;
            // Counted before the word is checked: a waker that changes the word after our
            // check sees the count, and releases.
            let counter = view.waiters().map(|w| w.counter(offset, lane));
            if let Some(c) = counter {
                c.fetch_add(1, SeqCst);
            }
            // Slept in slices of at most SLICE_MS, the word re-checked between them: should a
            // wake-up ever be lost (a peer that wakes in the wrong lane, or not at all), it
            // costs that much, not the caller's whole timeout.
            let end = timeout.map(|t| std::time::Instant::now() + t);
            let outcome = loop {
                if word.load(SeqCst) != expected {
                    break WaitOutcome::Woken;
                }
                let left = match end {
                    None => SLICE_MS,
                    Some(end) => match end.checked_duration_since(std::time::Instant::now()) {
                        Some(left) if !left.is_zero() => millis(Some(left)).min(SLICE_MS),
                        _ => break WaitOutcome::TimedOut,
                    },
                };
                // SAFETY: the semaphore handle is open (held by `bell` for the call).
                if unsafe { WaitForSingleObject(bell.as_raw_handle(), left) } != WAIT_TIMEOUT {
                    break WaitOutcome::Woken;
                }
            };
            if let Some(c) = counter {
                // Never below zero, whatever a peer wrote.
                let _ = c.fetch_update(SeqCst, SeqCst, |n| Some(n.saturating_sub(1)));
            }
            outcome
        }
        None => {
            // SAFETY: `word` is a live 4-byte atomic; `expected` lives for the call.
            let ok = unsafe {
                WaitOnAddress(
                    word.as_ptr().cast(),
                    (&expected as *const u32).cast(),
                    4,
                    millis(timeout),
                )
            };
            if ok == 0 && super::last_error().raw_os_error() == Some(1460) {
                // ERROR_TIMEOUT
                WaitOutcome::TimedOut
            } else {
                WaitOutcome::Woken
            }
        }
    }
}

/// Wakes up to `n` waiters on `word` in `lane`.
pub(crate) fn wake_in(word: &AtomicU32, n: u32, lane: Lane) {
    let addr = word as *const AtomicU32 as usize;
    match bell(addr, lane) {
        Some((bell, view, offset)) => {
            // The Dekker pair with the waiter (it counts itself, then reads the word; we changed
            // the word, now read the count): the caller's store may be only Release, which a
            // later load can pass; the fence keeps it before (as the futex call does on Linux).
            std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
            // As many as wait (all asked for, if the count cannot be read).
            let waiting = view.waiters().map_or(n, |w| {
                w.counter(offset, lane)
                    .load(std::sync::atomic::Ordering::SeqCst)
            });
            let n = n.min(waiting);
            if n == 0 {
                return;
            }
            let n = i32::try_from(n).unwrap_or(MAX_COUNT).clamp(1, MAX_COUNT);
            // SAFETY: the semaphore handle is open. A release past the cap fails as a whole:
            // then one is tried (the count is already high, so waiters will run anyway).
            unsafe {
                if ReleaseSemaphore(bell.as_raw_handle(), n, std::ptr::null_mut()) == 0 {
                    ReleaseSemaphore(bell.as_raw_handle(), 1, std::ptr::null_mut());
                }
            }
        }
        // SAFETY: `word` is a live atomic; waking never touches its value.
        None => unsafe { WakeByAddressAll(word.as_ptr().cast()) },
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
    use std::time::Duration;

    use super::{bell, wait_in, wake_in};
    use crate::sys::{Lane, SharedMemory, WaitOutcome};

    /// The race lanes close, made to happen: the slot's service thread has counted itself and
    /// checked the state, but is not asleep yet (its count is raised by hand here), when the
    /// client wakes it and then sleeps on the state itself, for the value it just stored. The
    /// wake stays in the service thread's semaphore; the client's sleep, in its own lane, does
    /// not take it (with one semaphore for the word it returned at once, and the service
    /// thread then slept through its request).
    #[test]
    fn a_wake_for_a_sleeper_not_yet_asleep_is_not_taken_by_a_sleeper_of_another_lane() {
        let shm = SharedMemory::create("doorbell-lanes", 4096).unwrap();
        let map = shm.map().unwrap();
        // SAFETY: offset 0 of a live, page-aligned mapping of 4096 bytes; the mapping outlives
        // the borrow; AtomicU32 accepts any bits and concurrent access.
        let state = unsafe { &*map.as_ptr().cast::<AtomicU32>() };
        let (_, view, offset) = bell(state as *const AtomicU32 as usize, Lane::Service).unwrap();
        let service_count = view.waiters().unwrap().counter(offset, Lane::Service);
        // The service thread, counted, saw the state at 0 and is about to sleep.
        service_count.fetch_add(1, SeqCst);
        // The client stores its request and wakes it.
        state.store(1, SeqCst);
        wake_in(state, 1, Lane::Service);
        // The client sleeps for its reply, the state still 1.
        assert_eq!(
            wait_in(state, 1, Some(Duration::from_millis(200)), Lane::Client),
            WaitOutcome::TimedOut,
            "the client took the service thread's wake"
        );
        // The service thread sleeps at last, and finds its wake there (asked to sleep on the
        // value the state holds, it returns for the wake alone, not after its timeout).
        assert_eq!(
            wait_in(state, 1, Some(Duration::from_secs(10)), Lane::Service),
            WaitOutcome::Woken
        );
        service_count.fetch_sub(1, SeqCst);
    }
}
