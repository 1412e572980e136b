//! Model checking of [`Channel`] itself with loom: the real client and service methods over
//! one connection's region, in the model backend (`sys::model`), where every word of shared
//! memory is a loom atomic, every copy of frame or payload bytes is a tracked access, and the
//! doorbell and reply waits are a modelled futex whose waits ignore their timeouts (so a lost
//! wake-up is a deadlock, which loom reports). `protocol::model` checks the slot state machine
//! alone, with more cases of cancellation; this checks the channel as lpc runs it: the
//! "slots used" mark, the frame and payload copies, and two slots at once.
//!
//! Run with:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test -p lpc --lib --release --target-dir target/loom channel::model
//! ```
//!
//! The preemption bound is 3 unless `LOOM_MAX_PREEMPTIONS` says otherwise.

use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::Arc;
use std::time::{Duration, Instant};

use loom::sync::atomic::AtomicBool;
use loom::thread;

use super::spin::SpinBudget;
use super::state::{FREE, REPLY};
use super::{Cancel, Channel, Taken, WaitEnd};
use crate::shm::layout::{ConnectionMemory, Geometry};
use crate::shm::Region;
use crate::sys::{SharedMemory, Stream};
use crate::wire::codec::Sink;
use crate::wire::frame::Status;
use crate::wire::FrameHeader;

/// Two slots of the smallest size: 16 bytes of inline payload each, on the state word's line.
const GEOMETRY: Geometry = Geometry {
    slot_count: 2,
    slot_size: 128,
    queue_size: 0,
};

/// A deadline for the calls that have one: never reached (the model's clock stands still, and
/// the real one does not run for an hour during a model run), but it makes the service take
/// the call with the compare-and-swap to SERVING.
const DEADLINE: Duration = Duration::from_secs(3600);

/// Explores `f` with loom, and says (with `--nocapture`) how many executions it took.
fn model(f: impl Fn() + Sync + Send + 'static) {
    model_with_bound(3, f)
}

/// [`model`] with at most `bound` preemptions.
fn model_with_bound(bound: usize, f: impl Fn() + Sync + Send + 'static) {
    crate::sys::explore_model(bound, f)
}

/// The service's and the client's channels over one region, as a connection makes them.
fn connected() -> (Arc<Channel>, Arc<Channel>) {
    let shm = SharedMemory::create("model", GEOMETRY.region_len()).unwrap();
    let service = ConnectionMemory::initialize(&shm, GEOMETRY).unwrap();
    let client = ConnectionMemory::open(&shm, GEOMETRY).unwrap();
    let (a, b) = Stream::pair().unwrap();
    (
        Arc::new(Channel::new("model", service, Arc::new(a))),
        Arc::new(Channel::new("model", client, Arc::new(b))),
    )
}

/// What the service's "handler" makes of a request: a reply that tells whose request it read.
fn transform(request: &[u8]) -> Vec<u8> {
    request.iter().rev().map(|b| b ^ 0x5a).collect()
}

/// The request of call `call_id` on `slot`: different for every call of a test.
fn request(slot: u32, call_id: u64) -> Vec<u8> {
    (0..12)
        .map(|i| (slot as u8) << 6 | (call_id as u8) << 4 | i)
        .collect()
}

/// One call, as `client::Client::exchange` makes it: [`send`], wait (never spinning),
/// [`receive`].
fn call(client: &Channel, slot: u32, call_id: u64, with_deadline: bool) {
    let request = send(client, slot, call_id, with_deadline);
    let spin = SpinBudget::new(false, None);
    let deadline = with_deadline.then(|| Instant::now() + DEADLINE);
    assert_eq!(
        client.wait_for_reply(slot, &spin, deadline),
        WaitEnd::Reply,
        "call {call_id} on slot {slot}"
    );
    receive(client, slot, call_id, &request);
}

/// The client's side of a call up to the wait: marks the slot used, writes the request
/// (through a payload writer), then the frame, and publishes it. Returns the request.
fn send(client: &Channel, slot: u32, call_id: u64, with_deadline: bool) -> Vec<u8> {
    client.use_slot(slot);
    let request = request(slot, call_id);
    let mut stage = crate::channel::payload::Buffer::for_writing();
    let mut writer = client.writer(slot, u64::MAX, &mut stage);
    writer.put_all(&request).unwrap();
    let written = writer.finish().unwrap();
    assert_eq!(written.flags, 0, "the model's payloads stay inline");
    let header = FrameHeader {
        method: 1,
        flags: 0,
        call_id,
        len: 0,
        spill_generation: 0,
        status: Status::Ok,
        deadline_ns: if with_deadline {
            crate::sys::monotonic_ns() + DEADLINE.as_nanos() as u64
        } else {
            0
        },
    };
    client.publish(slot, header, written, stage.as_slice());
    client.submit(slot, !with_deadline);
    request
}

/// Reads the reply of call `call_id` on `slot`, which must be the service's transform of
/// this very `request`.
fn receive(client: &Channel, slot: u32, call_id: u64, request: &[u8]) {
    let reply = FrameHeader::decode_head(&client.slot(slot).read_head()).unwrap();
    assert_eq!((reply.call_id, reply.status), (call_id, Status::Ok));
    let mut scratch = crate::channel::payload::Buffer::for_reading();
    let got = client
        .with_payload(slot, &reply, u64::MAX, &mut scratch, |payload| {
            payload.into_local().unwrap().to_vec()
        })
        .unwrap();
    assert_eq!(got, transform(request), "call {call_id} on slot {slot}");
}

/// The loop of the service thread of `slot` (`server::connection::serve`, without spinning)
/// until it has served `calls` calls: serves the slot's request, or sleeps — on the doorbell
/// for slot 0 (the connection's own thread), on the slot's state word for the others (each
/// has a thread of its own).
fn serve(service: &Channel, slot: u32, calls: usize) {
    let mut args = crate::channel::payload::Buffer::for_reading();
    let mut served = 0;
    while served < calls {
        if service.has_request(slot) {
            assert!(
                serve_one(service, slot, &mut args),
                "nothing withdraws here"
            );
            served += 1;
        } else if slot == 0 {
            service.service_sleep(|| false, || false);
        } else {
            service.slot_sleep(slot, || false);
        }
    }
}

/// The service's loop until `stop()`, as the reactor stops it (setting the flag, then
/// ringing): returns how many calls it ran.
fn serve_until(service: &Channel, stop: impl Fn() -> bool) -> usize {
    let mut args = crate::channel::payload::Buffer::for_reading();
    let mut ran = 0;
    while !stop() {
        if service.has_request(0) {
            ran += usize::from(serve_one(service, 0, &mut args));
        } else {
            service.service_sleep(&stop, || false);
        }
    }
    ran
}

/// A service thread for slot 0, run by [`serve_until`], that the test stops as the reactor
/// does (setting the flag, then ringing).
struct Stoppable {
    stop: Arc<AtomicBool>,
    thread: thread::JoinHandle<usize>,
}

impl Stoppable {
    fn serve(service: Arc<Channel>) -> Stoppable {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = thread::spawn(move || serve_until(&service, || flag.load(Acquire)));
        Stoppable { stop, thread }
    }

    /// Stops it; returns how many calls it ran.
    fn stop(self, client: &Channel) -> usize {
        self.stop.store(true, Release);
        client.ring();
        self.thread.join().unwrap()
    }
}

/// One call, as `server::connection::serve_one` serves it: a call with a deadline is taken
/// with the compare-and-swap to SERVING (and its frame read again), one without is marked
/// taken; the reply is written, its frame, then published (or the slot freed, if the client
/// abandoned the call meanwhile). False if the client withdrew the call before it was taken.
fn serve_one(service: &Channel, slot: u32, args: &mut crate::channel::payload::Buffer) -> bool {
    let Some(Taken {
        frame,
        withdrawable,
        ..
    }) = service.take_request(slot)
    else {
        return false;
    };
    let header = frame.unwrap();
    let reply = service
        .with_payload(slot, &header, u64::MAX, args, |payload| {
            transform(payload.into_local().unwrap())
        })
        .unwrap();
    let frame = FrameHeader {
        method: header.method,
        flags: 0,
        call_id: header.call_id,
        len: 0,
        spill_generation: 0,
        status: Status::Ok,
        deadline_ns: 0,
    };
    service.write_payload(slot, &reply, frame).unwrap();
    assert!(service.complete(slot, withdrawable));
    true
}

/// (a) Two client threads call at once, on slots 0 and 1 (one call with a deadline, one
/// without), each slot served by its own service thread, which sleeps (on the doorbell, or
/// on its slot) whenever it finds nothing: both complete (no lost wake-up on either side),
/// each with the reply to its own request, and no frame or payload byte is read while the
/// other side may write it. Four threads: explored with two preemptions.
#[test]
fn two_calls_on_two_slots_each_get_their_own_reply() {
    model_with_bound(2, || {
        let (service, client) = connected();
        let service = Arc::new(service);
        let first = {
            let service = service.clone();
            thread::spawn(move || serve(&service, 0, 1))
        };
        let second = {
            let service = service.clone();
            thread::spawn(move || serve(&service, 1, 1))
        };
        let other = {
            let client = client.clone();
            thread::spawn(move || call(&client, 1, 1, false))
        };
        call(&client, 0, 1, true);
        other.join().unwrap();
        first.join().unwrap();
        second.join().unwrap();
    });
}

/// (b) A client that uses only slot 1 wakes that slot's own service thread, even when it is
/// just about to sleep on the slot (the slot's service-waiting flag and the state word are a
/// Dekker pair, like the doorbell's), and marks the slot used.
#[test]
fn a_request_on_slot_one_alone_is_found_by_a_service_about_to_sleep() {
    model(|| {
        let (service, client) = connected();
        let server = thread::spawn(move || serve(&service, 1, 1));
        call(&client, 1, 1, false);
        server.join().unwrap();
        assert_eq!(client.memory().slots_used().load(Relaxed), 2);
    });
}

/// (c) Two calls back to back on one slot: the first with a deadline (taken with the
/// compare-and-swap to SERVING, so it is not marked taken), the second without (taken
/// without touching the state, marked taken with its call id); the second request
/// overwrites the slot left in REPLY.
#[test]
fn calls_with_and_without_a_deadline_are_taken_each_their_way() {
    model(|| {
        let (service, client) = connected();
        let server = thread::spawn(move || serve(&service, 0, 2));
        call(&client, 0, 1, true);
        assert!(
            !client.was_taken(0, 1),
            "a call with a deadline is not marked taken"
        );
        call(&client, 0, 2, false);
        assert!(client.was_taken(0, 2), "a call without one is");
        server.join().unwrap();
    });
}

/// (d) A client gives up on its call (its deadline passes) at any moment, racing the
/// service taking, running and completing it: the call is withdrawn and never runs, or
/// abandoned and the service frees the slot when done, or its reply arrived and is read;
/// never run twice, never left in a state the next call could not use.
#[test]
fn a_call_given_up_is_withdrawn_abandoned_or_replied() {
    model(|| {
        let (service, client) = connected();
        let server = Stoppable::serve(service);
        let request = send(&client, 0, 1, true);
        let outcome = client.cancel(0);
        if outcome == Cancel::Replied {
            receive(&client, 0, 1, &request);
        }
        let ran = server.stop(&client);
        let end = client.slot(0).state().load(Acquire);
        match outcome {
            Cancel::Withdrawn => assert_eq!((ran, end), (0, FREE)),
            Cancel::Abandoned => assert_eq!((ran, end), (1, FREE)),
            Cancel::Replied => assert_eq!((ran, end), (1, REPLY)),
            Cancel::Broken(state) => panic!("broken state {state}"),
        }
    });
}

/// A call withdrawn at its deadline, its slot reused at once by a call without a deadline (as
/// a `Client::with_timeout` handle and a plain one on the same connection do). This model
/// found a race when the service chose how to take a call from its frame, read before taking
/// it: the read raced the client's write of the next call's frame, and the service could take
/// the next call while the slot was still FREE, run it, and close the connection as broken.
/// The kind of request now lives in the state word (REQUEST or REQUEST_FIXED), loaded with
/// acquire ordering before any frame byte is read (`Channel::take_request`).
#[test]
fn a_withdrawn_slot_reused_at_once_by_a_call_without_a_deadline() {
    model(|| {
        let (service, client) = connected();
        let server = Stoppable::serve(service);
        let request = send(&client, 0, 1, true);
        match client.cancel(0) {
            Cancel::Withdrawn => {}
            // Quarantined until the service frees it.
            Cancel::Abandoned => {
                while client.slot(0).state().load(Acquire) != FREE {
                    thread::yield_now();
                }
            }
            Cancel::Replied => receive(&client, 0, 1, &request),
            Cancel::Broken(state) => panic!("broken state {state}"),
        }
        call(&client, 0, 2, false);
        server.stop(&client);
    });
}

/// The model keeps words and bytes apart, so lpc may not mix them at one offset: it panics
/// rather than let a copy and an atomic silently disagree about the same memory.
#[test]
#[should_panic(expected = "both as plain bytes and as the atomic word at offset 8")]
fn the_model_refuses_bytes_and_an_atomic_at_one_offset() {
    loom::model(|| {
        let shm = SharedMemory::create("mixed", 64).unwrap();
        let region = Region::new(shm.map().unwrap());
        region.atomic_u32(8).store(1, Relaxed);
        region.copy_in(6, &[0; 4]).unwrap();
    });
}
