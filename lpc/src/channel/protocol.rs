//! The synchronisation protocol of a call slot and of the service's doorbell, written once
//! over abstract 32-bit words and a futex, so that the same code runs on shared memory (with
//! `futex(2)`) and under the loom model checker (with a modelled futex) — see the tests at the
//! bottom, which explore every interleaving of a client and a service thread.
//!
//! Two "Dekker" pairs make sure no wake-up is lost while no system call is made when the
//! other side is awake:
//!
//! * request: the client stores REQUEST then loads the service-sleeping flag; the service
//!   stores the flag then re-checks the slots before sleeping on the doorbell;
//! * reply: the service swaps the state to REPLY then loads the client-waiting flag; the
//!   client stores the flag then re-checks the state before sleeping on it.
//!
//! Each side of a pair does its store, then a SeqCst fence, then its load, so at least one side
//! sees the other's store. (Fences rather than SeqCst accesses: they are what the C11 model
//! guarantees this for, and what loom checks; on x86 either costs one fenced instruction.)

use std::sync::atomic::Ordering::{AcqRel, Acquire, Release, SeqCst};
use std::time::Duration;

use super::state::{ABANDONED, FREE, REPLY, REQUEST, SERVING};
use crate::sys::{AtomicU32, Lane, WaitOutcome};

/// A 32-bit atomic word.
pub(crate) trait Word {
    /// Acquire load.
    fn load(&self) -> u32;
    /// Release store.
    fn store(&self, value: u32);
    /// AcqRel compare-and-swap.
    fn compare_exchange(&self, current: u32, new: u32) -> Result<u32, u32>;
    /// AcqRel add.
    fn fetch_add(&self, value: u32) -> u32;
    /// A SeqCst fence (of the memory model these words live in).
    fn fence();
}

/// The word of shared memory (`std`'s, or loom's under `cfg(loom)`).
impl Word for AtomicU32 {
    #[inline]
    fn load(&self) -> u32 {
        self.load(Acquire)
    }
    #[inline]
    fn store(&self, value: u32) {
        self.store(value, Release)
    }
    #[inline]
    fn compare_exchange(&self, current: u32, new: u32) -> Result<u32, u32> {
        self.compare_exchange(current, new, AcqRel, Acquire)
    }
    #[inline]
    fn fetch_add(&self, value: u32) -> u32 {
        self.fetch_add(value, AcqRel)
    }
    #[inline]
    fn fence() {
        crate::sys::fence(SeqCst)
    }
}

/// Sleeping on a word and waking its sleepers, in a lane ([`Lane`]: on a slot's state word
/// the client and the slot's service thread sleep for different values, and each side's
/// wakes are for its own lane).
pub(crate) trait Futex<W: ?Sized> {
    /// Sleeps while `*word == expected`, until woken in `lane` or `timeout`; may return
    /// spuriously.
    fn wait(&self, word: &W, expected: u32, timeout: Option<Duration>, lane: Lane) -> WaitOutcome;
    /// Wakes up to `n` sleepers of `word` in `lane`.
    fn wake(&self, word: &W, n: u32, lane: Lane);
}

/// The real thing: `futex(2)` on shared memory (the model's futex under `cfg(loom)`).
pub(crate) struct SysFutex;

impl Futex<AtomicU32> for SysFutex {
    #[inline]
    fn wait(
        &self,
        word: &AtomicU32,
        expected: u32,
        timeout: Option<Duration>,
        lane: Lane,
    ) -> WaitOutcome {
        crate::sys::wait_in(word, expected, timeout, lane)
    }
    #[inline]
    fn wake(&self, word: &AtomicU32, n: u32, lane: Lane) {
        crate::sys::wake_in(word, n, lane)
    }
}

/// The two words of a call slot.
pub(crate) struct Slot<'a, W: ?Sized> {
    pub(crate) state: &'a W,
    pub(crate) client_waiting: &'a W,
}

/// The service's two words.
pub(crate) struct Doorbell<'a, W: ?Sized> {
    pub(crate) bell: &'a W,
    pub(crate) service_sleeping: &'a W,
}

/// Client: publishes a request written into the slot, as `request` (REQUEST, or
/// REQUEST_FIXED for a call it will not withdraw); rings if the service sleeps.
#[inline]
pub(crate) fn submit<W: Word + ?Sized, F: Futex<W>>(
    futex: &F,
    slot: &Slot<'_, W>,
    door: &Doorbell<'_, W>,
    request: u32,
) {
    slot.state.store(request);
    W::fence();
    if door.service_sleeping.load() != 0 {
        ring(futex, door);
    }
}

/// Client: publishes a request on a slot that has a service thread of its own (slots 1 and
/// up), and wakes that thread if it sleeps on the state word. The same Dekker pair as
/// [`submit`], with the slot's service-waiting flag for the doorbell's sleeping flag.
#[inline]
pub(crate) fn submit_to_slot<W: Word + ?Sized, F: Futex<W>>(
    futex: &F,
    slot: &Slot<'_, W>,
    service_waiting: &W,
    request: u32,
) {
    slot.state.store(request);
    W::fence();
    if service_waiting.load() != 0 {
        futex.wake(slot.state, 1, Lane::Service);
    }
}

/// Service: the thread of one slot sleeps on its state word (up to `timeout`) unless it
/// already holds a request or `stop()` says otherwise.
#[inline]
pub(crate) fn sleep_on_slot<W: Word + ?Sized, F: Futex<W>>(
    futex: &F,
    slot: &Slot<'_, W>,
    service_waiting: &W,
    has_work: impl Fn(u32) -> bool,
    stop: impl Fn() -> bool,
    timeout: Option<Duration>,
) {
    service_waiting.store(1);
    W::fence();
    let seen = slot.state.load();
    if !has_work(seen) && !stop() {
        futex.wait(slot.state, seen, timeout, Lane::Service);
    }
    service_waiting.store(0);
}

/// Wakes the service.
#[inline]
pub(crate) fn ring<W: Word + ?Sized, F: Futex<W>>(futex: &F, door: &Doorbell<'_, W>) {
    door.bell.fetch_add(1);
    futex.wake(door.bell, 1, Lane::Default);
}

/// One blocking step of a client waiting for its reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// The reply is there.
    Reply,
    /// Slept (or returned at once); the state was last seen as this.
    Waited(WaitOutcome, u32),
}

/// Client: announces it sleeps, re-checks, and sleeps on the state for up to `timeout`.
/// Call [`stop_waiting`] once done.
#[inline]
pub(crate) fn block_once<W: Word + ?Sized, F: Futex<W>>(
    futex: &F,
    slot: &Slot<'_, W>,
    timeout: Option<Duration>,
) -> Step {
    slot.client_waiting.store(1);
    W::fence();
    let seen = slot.state.load();
    if seen == REPLY {
        return Step::Reply;
    }
    Step::Waited(futex.wait(slot.state, seen, timeout, Lane::Client), seen)
}

/// Client: no longer sleeping on this slot.
#[inline]
pub(crate) fn stop_waiting<W: Word + ?Sized>(slot: &Slot<'_, W>) {
    slot.client_waiting.store(0);
}

/// What became of a call the client gave up on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cancel {
    /// The service had not taken it: withdrawn, the slot is FREE again, the handler never ran.
    Withdrawn,
    /// The service is running it: left ABANDONED; the service frees the slot when done.
    Abandoned,
    /// The reply arrived meanwhile: read it as usual.
    Replied,
    /// The state was none of those: the peer broke the protocol.
    Broken(u32),
}

/// Client: gives up on the call in the slot.
#[inline]
pub(crate) fn cancel<W: Word + ?Sized>(slot: &Slot<'_, W>) -> Cancel {
    if slot.state.compare_exchange(REQUEST, FREE).is_ok() {
        return Cancel::Withdrawn;
    }
    match slot.state.compare_exchange(SERVING, ABANDONED) {
        Ok(_) => Cancel::Abandoned,
        Err(REPLY) => Cancel::Replied,
        Err(other) => Cancel::Broken(other),
    }
}

// After reading a reply the client leaves the slot in REPLY: its next request on the slot
// overwrites that state with REQUEST (the service acts only on REQUEST). Storing FREE in
// between would cost an extra cache-line transfer per call, since the service keeps reading
// the state word while it waits: the benchmarks showed the small call about 15% faster
// without it. FREE is the state of a fresh slot and of one the client withdrew or the service
// freed after an abandoned call.

/// Service: takes the request in the slot, if there still is one.
#[inline]
pub(crate) fn take<W: Word + ?Sized>(slot: &Slot<'_, W>) -> bool {
    slot.state.compare_exchange(REQUEST, SERVING).is_ok()
}

/// Service: takes the request of a call its client cannot withdraw (REQUEST_FIXED: it set no
/// deadline, and a client cancels only at its deadline). The state stays: a compare-and-swap on it
/// would take the cache line away from the client, which reads it while it waits, and cost a
/// transfer each way per call. Instead the call is marked taken on a word of its own line,
/// which the client reads only if the service dies, to tell whether the call may have run.
#[inline]
pub(crate) fn take_unwithdrawable<W: Word + ?Sized>(taken: &W, call: u32) {
    taken.store(call);
}

/// Service: publishes the reply written into the slot, or frees an abandoned slot; wakes the
/// client if it sleeps. `from` is the state the service left the slot in when it took the
/// call: SERVING, or REQUEST_FIXED for [`take_unwithdrawable`]. False if the client broke the state
/// machine.
#[inline]
pub(crate) fn complete<W: Word + ?Sized, F: Futex<W>>(
    futex: &F,
    slot: &Slot<'_, W>,
    from: u32,
) -> bool {
    match slot.state.compare_exchange(from, REPLY) {
        Ok(_) => {
            W::fence();
            if slot.client_waiting.load() != 0 {
                futex.wake(slot.state, 1, Lane::Client);
            }
            true
        }
        Err(ABANDONED) => {
            slot.state.store(FREE);
            true
        }
        Err(_) => false,
    }
}

/// Service: sleeps on the doorbell (up to `timeout`) unless `has_work()` or `stop()` says
/// otherwise.
#[inline]
pub(crate) fn sleep<W: Word + ?Sized, F: Futex<W>>(
    futex: &F,
    door: &Doorbell<'_, W>,
    has_work: impl Fn() -> bool,
    stop: impl Fn() -> bool,
    timeout: Option<Duration>,
) {
    door.service_sleeping.store(1);
    W::fence();
    let seen = door.bell.load();
    if !has_work() && !stop() {
        futex.wait(door.bell, seen, timeout, Lane::Default);
    }
    door.service_sleeping.store(0);
}

/// Model checking with loom: every interleaving of a client and a service thread (bounded
/// preemptions), over the very functions above, with a modelled futex.
// Not on Windows: loom runs each modelled thread on a stack of its own (the `generator`
// crate), which the Windows unwinder cannot walk, so the panics loom uses end the process
// there. The model is of the protocol, the same on every platform; Linux runs it.
#[cfg(all(test, not(windows)))]
mod model {
    use loom::sync::atomic::AtomicU32;
    use loom::sync::{Arc, Condvar, Mutex};
    use loom::thread;

    use super::*;
    use crate::channel::state::{is_request, REQUEST_FIXED};

    // Under `cfg(loom)` loom's word is the shared-memory word, which has its `Word` impl
    // (the same one) above.
    #[cfg(not(loom))]
    impl Word for AtomicU32 {
        fn load(&self) -> u32 {
            AtomicU32::load(self, Acquire)
        }
        fn store(&self, value: u32) {
            AtomicU32::store(self, value, Release)
        }
        fn compare_exchange(&self, current: u32, new: u32) -> Result<u32, u32> {
            AtomicU32::compare_exchange(self, current, new, AcqRel, Acquire)
        }
        fn fetch_add(&self, value: u32) -> u32 {
            AtomicU32::fetch_add(self, value, AcqRel)
        }
        fn fence() {
            loom::sync::atomic::fence(SeqCst)
        }
    }

    /// A futex: the value check and the sleep are atomic with respect to wakers, as in the
    /// kernel. A wait with a timeout returns at once (the timer may fire at any moment).
    #[derive(Default)]
    struct ModelFutex {
        lock: Mutex<()>,
        woken: Condvar,
    }

    impl Futex<AtomicU32> for ModelFutex {
        fn wait(
            &self,
            word: &AtomicU32,
            expected: u32,
            timeout: Option<Duration>,
            _lane: Lane,
        ) -> WaitOutcome {
            let guard = self.lock.lock().unwrap();
            if Word::load(word) != expected {
                return WaitOutcome::Woken;
            }
            if timeout.is_some() {
                return WaitOutcome::TimedOut;
            }
            drop(self.woken.wait(guard).unwrap());
            WaitOutcome::Woken
        }
        fn wake(&self, _word: &AtomicU32, _n: u32, _lane: Lane) {
            let _guard = self.lock.lock().unwrap();
            self.woken.notify_all();
        }
    }

    #[derive(Default)]
    struct Shared {
        futex: ModelFutex,
        state: AtomicU32,
        client_waiting: AtomicU32,
        taken: AtomicU32,
        bell: AtomicU32,
        service_sleeping: AtomicU32,
        /// Times the "handler" ran, and times a reply was read.
        ran: AtomicU32,
        read: AtomicU32,
    }

    impl Shared {
        fn slot(&self) -> Slot<'_, AtomicU32> {
            Slot {
                state: &self.state,
                client_waiting: &self.client_waiting,
            }
        }
        fn door(&self) -> Doorbell<'_, AtomicU32> {
            Doorbell {
                bell: &self.bell,
                service_sleeping: &self.service_sleeping,
            }
        }
    }

    fn model(f: impl Fn() + Sync + Send + 'static) {
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(3);
        builder.check(f);
    }

    /// The service loop of one call: sleep until there is a request, serve it.
    fn serve_one(s: &Shared) {
        serve_one_taking(s, true);
    }

    /// [`serve_one`], taking the call with the compare-and-swap to SERVING if `withdrawable`,
    /// else as a call without a deadline ([`take_unwithdrawable`], marked 7).
    fn serve_one_taking(s: &Shared, withdrawable: bool) {
        loop {
            let taken = if withdrawable {
                take(&s.slot())
            } else if Word::load(&s.state) == REQUEST_FIXED {
                take_unwithdrawable(&s.taken, 7);
                true
            } else {
                false
            };
            if taken {
                Word::fetch_add(&s.ran, 1);
                let from = if withdrawable { SERVING } else { REQUEST_FIXED };
                assert!(complete(&s.futex, &s.slot(), from));
                return;
            }
            sleep(
                &s.futex,
                &s.door(),
                || is_request(Word::load(&s.state)),
                || false,
                None,
            );
        }
    }

    /// No lost wake-up on either side: a client and a sleeping service always finish the
    /// call (loom reports a deadlock otherwise), the handler runs once, the reply is read once.
    #[test]
    fn a_call_always_completes() {
        model(|| {
            let s = Arc::new(Shared::default());
            let service = {
                let s = s.clone();
                thread::spawn(move || serve_one(&s))
            };
            submit(&s.futex, &s.slot(), &s.door(), REQUEST);
            while block_once(&s.futex, &s.slot(), None) != Step::Reply {}
            stop_waiting(&s.slot());
            Word::fetch_add(&s.read, 1);
            service.join().unwrap();
            assert_eq!((Word::load(&s.ran), Word::load(&s.read)), (1, 1));
            assert_eq!(Word::load(&s.state), REPLY);
        });
    }

    /// A call taken without a compare-and-swap (no deadline) completes like any other, with no
    /// lost wake-up, and is marked taken.
    #[test]
    fn a_call_without_deadline_completes_without_touching_the_state_until_the_reply() {
        model(|| {
            let s = Arc::new(Shared::default());
            let service = {
                let s = s.clone();
                thread::spawn(move || serve_one_taking(&s, false))
            };
            submit(&s.futex, &s.slot(), &s.door(), REQUEST_FIXED);
            while block_once(&s.futex, &s.slot(), None) != Step::Reply {}
            stop_waiting(&s.slot());
            service.join().unwrap();
            assert_eq!(Word::load(&s.ran), 1);
            assert_eq!(Word::load(&s.taken), 7);
            assert_eq!(Word::load(&s.state), REPLY);
        });
    }

    /// A slot left in REPLY is reused straight away: the next request overwrites the state,
    /// and the service, looping, serves each call exactly once.
    #[test]
    fn back_to_back_calls_reuse_the_slot_from_reply() {
        model(|| {
            let s = Arc::new(Shared::default());
            let service = {
                let s = s.clone();
                thread::spawn(move || {
                    serve_one(&s);
                    serve_one(&s);
                })
            };
            for call in 1..=2 {
                submit(&s.futex, &s.slot(), &s.door(), REQUEST);
                while block_once(&s.futex, &s.slot(), None) != Step::Reply {}
                stop_waiting(&s.slot());
                Word::fetch_add(&s.read, 1);
                assert_eq!(Word::load(&s.ran), call);
            }
            service.join().unwrap();
            assert_eq!((Word::load(&s.ran), Word::load(&s.read)), (2, 2));
        });
    }

    /// A client that gives up races the service taking and completing the call: whatever the
    /// interleaving, the handler ran at most once, a withdrawn call never ran, and the slot
    /// ends FREE (or REPLY, read, when the reply won the race).
    #[test]
    fn cancellation_never_double_completes() {
        model(|| {
            let s = Arc::new(Shared::default());
            submit(&s.futex, &s.slot(), &s.door(), REQUEST);
            let service = {
                let s = s.clone();
                thread::spawn(move || {
                    if take(&s.slot()) {
                        Word::fetch_add(&s.ran, 1);
                        assert!(complete(&s.futex, &s.slot(), SERVING));
                    }
                })
            };
            // The deadline passes after one (timed) wait.
            let outcome = match block_once(&s.futex, &s.slot(), Some(Duration::from_millis(1))) {
                Step::Reply => Cancel::Replied,
                Step::Waited(..) => cancel(&s.slot()),
            };
            stop_waiting(&s.slot());
            if outcome == Cancel::Replied {
                Word::fetch_add(&s.read, 1);
            }
            service.join().unwrap();
            let (ran, read) = (Word::load(&s.ran), Word::load(&s.read));
            let end = Word::load(&s.state);
            match outcome {
                Cancel::Withdrawn => assert_eq!((ran, read, end), (0, 0, FREE)),
                Cancel::Abandoned => assert_eq!((ran, read, end), (1, 0, FREE)),
                Cancel::Replied => assert_eq!((ran, read, end), (1, 1, REPLY)),
                Cancel::Broken(state) => panic!("broken state {state}"),
            }
        });
    }

    /// After an abandoned call the slot is reused only once the service has freed it, and the
    /// next call completes normally.
    #[test]
    fn an_abandoned_slot_is_reused_safely() {
        model(|| {
            let s = Arc::new(Shared::default());
            submit(&s.futex, &s.slot(), &s.door(), REQUEST);
            assert!(take(&s.slot()));
            let service = {
                let s = s.clone();
                thread::spawn(move || {
                    // Finish the first call (possibly abandoned), then serve the second.
                    assert!(complete(&s.futex, &s.slot(), SERVING));
                    serve_one(&s);
                })
            };
            let first = cancel(&s.slot());
            assert!(
                matches!(first, Cancel::Abandoned | Cancel::Replied),
                "{first:?}"
            );
            if first == Cancel::Abandoned {
                // Quarantined until the service frees it.
                while Word::load(&s.state) != FREE {
                    thread::yield_now();
                }
            }
            submit(&s.futex, &s.slot(), &s.door(), REQUEST);
            while block_once(&s.futex, &s.slot(), None) != Step::Reply {}
            stop_waiting(&s.slot());
            service.join().unwrap();
            assert_eq!(Word::load(&s.state), REPLY);
        });
    }
}
