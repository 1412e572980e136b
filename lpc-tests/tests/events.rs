//! Events (`#[lpc::events]`) across real processes: a full ring under each policy, a slow
//! subscriber beside a fast one, events to the caller only, a subscriber killed (its ring
//! freed), the service killed mid-stream (the iterator ends with `Disconnected`), 1,000
//! subscribers. Every test has its own runtime directory and service process; every wait is
//! bounded; no sleep synchronises anything.

use std::path::Path;
use std::time::{Duration, Instant};

use lpc::{Error, Overflow, SubscribeOptions, Subscription};
use lpc_tests::feed::{FeedControlClient, FeedEvent};
use lpc_tests::{client_options, eventually, Process};
use tempfile::TempDir;

const EVENTS: &str = env!("CARGO_BIN_EXE_lpc-events");
const PROMPT: Duration = Duration::from_secs(20);

fn start(dir: &Path, extra: &[&str]) -> Process {
    let mut args = vec!["serve", "feed"];
    args.extend_from_slice(extra);
    Process::start(Path::new(EVENTS), &args, dir, "ready")
}

fn control(dir: &Path) -> FeedControlClient {
    FeedControlClient::connect_with("feed", &client_options(dir)).unwrap()
}

fn subscribe(dir: &Path, ring: u32, policy: Overflow) -> Subscription<FeedEvent> {
    Subscription::open(
        "feed",
        SubscribeOptions::new()
            .runtime_dir(dir)
            .ring(ring)
            .on_full(policy),
    )
    .unwrap()
}

/// The events in the ring now, (seq, missed) of each `item`.
fn drain(sub: &mut Subscription<FeedEvent>) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    while let Some(r) = sub.recv_timeout(Duration::ZERO).unwrap() {
        if let FeedEvent::Item { seq, .. } = r.event {
            out.push((seq, r.missed));
        }
    }
    out
}

#[test]
fn a_full_ring_dropping_the_newest_keeps_the_first_and_says_how_many_it_missed() {
    let dir = TempDir::new().unwrap();
    let _service = start(dir.path(), &[]);
    let feed = control(dir.path());
    let mut sub = subscribe(dir.path(), 4096, Overflow::DropNewest);
    let written = feed.burst(200, 64).unwrap();
    assert!(written > 10 && written < 200, "{written}");
    let got = drain(&mut sub);
    let expected: Vec<_> = (0..written).map(|s| (s, 0)).collect();
    assert_eq!(got, expected);
    // The next event says how many were missed before it.
    assert_eq!(feed.burst(1, 8).unwrap(), 1);
    assert_eq!(drain(&mut sub), vec![(0, 200 - written)]);
    assert_eq!(sub.missed(), 200 - written);
}

#[test]
fn a_full_ring_dropping_the_oldest_keeps_the_latest_and_says_how_many_it_missed() {
    let dir = TempDir::new().unwrap();
    let _service = start(dir.path(), &[]);
    let feed = control(dir.path());
    let mut sub = subscribe(dir.path(), 4096, Overflow::DropOldest);
    assert_eq!(feed.burst(200, 64).unwrap(), 200);
    let got = drain(&mut sub);
    let (first, missed) = got[0];
    assert!(first > 0 && missed == first, "{got:?}");
    for (i, &(seq, missed)) in got.iter().enumerate().skip(1) {
        assert_eq!((seq, missed), (first + i as u64, 0));
    }
    assert_eq!(got.last().unwrap().0, 199);
    assert_eq!(sub.missed(), first);
}

#[test]
fn a_full_ring_with_the_disconnect_policy_ends_the_subscription_and_frees_it() {
    let dir = TempDir::new().unwrap();
    let _service = start(dir.path(), &[]);
    let feed = control(dir.path());
    let mut sub = subscribe(dir.path(), 4096, Overflow::Disconnect);
    assert_eq!(feed.subscribers().unwrap(), 1);
    let written = feed.burst(200, 64).unwrap();
    assert!(written < 200);
    let mut read = 0;
    let deadline = Instant::now() + PROMPT;
    let end = loop {
        assert!(Instant::now() < deadline, "the subscription never ended");
        match sub.recv_timeout(Duration::from_millis(100)) {
            Ok(Some(_)) => read += 1,
            Ok(None) => {}
            Err(e) => break e,
        }
    };
    assert_eq!(read, written);
    assert!(matches!(end, Error::Disconnected { .. }), "{end}");
    assert!(sub.overflowed());
    assert!(sub.missed() >= 1);
    assert!(sub.next().is_none());
    assert!(eventually(PROMPT, || feed.subscribers().unwrap() == 0));
}

#[test]
fn a_slow_subscriber_never_slows_the_service_or_the_other_subscribers() {
    let dir = TempDir::new().unwrap();
    let _service = start(dir.path(), &[]);
    let feed = control(dir.path());
    // Never read.
    let _slow = subscribe(dir.path(), 4096, Overflow::DropNewest);
    let fast = subscribe(dir.path(), 1 << 20, Overflow::DropNewest);
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = fast
        .spawn(move |r| {
            let _ = tx.send(r.map(|r| r.missed));
        })
        .unwrap();
    let started = Instant::now();
    let written = feed.burst(5000, 16).unwrap();
    let took = started.elapsed();
    // All 5,000 into the fast ring, some into the slow one.
    assert!(written > 5000 && written < 10_000, "{written}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    for _ in 0..5000 {
        let missed = rx.recv_timeout(PROMPT).unwrap().unwrap();
        assert_eq!(missed, 0);
    }
    // And the service still answers.
    assert_eq!(feed.subscribers().unwrap(), 2);
    thread.stop();
}

#[test]
fn events_to_the_caller_reach_only_the_callers_linked_subscription() {
    let dir = TempDir::new().unwrap();
    let _service = start(dir.path(), &[]);
    let feed = control(dir.path());
    let mut linked = Subscription::<FeedEvent>::for_client(
        feed.client(),
        SubscribeOptions::new().runtime_dir(dir.path()),
    )
    .unwrap();
    let mut other = subscribe(dir.path(), 4096, Overflow::DropNewest);
    assert_eq!(feed.to_me(42).unwrap(), 1);
    let got = linked.recv_timeout(PROMPT).unwrap().unwrap();
    assert!(matches!(got.event, FeedEvent::Note { n: 42 }), "{got:?}");
    assert!(other.recv_timeout(Duration::ZERO).unwrap().is_none());
}

#[test]
fn a_killed_subscriber_has_its_ring_freed() {
    let dir = TempDir::new().unwrap();
    let _service = start(dir.path(), &[]);
    let feed = control(dir.path());
    let mut subscriber = Process::start(
        Path::new(EVENTS),
        &["subscribe", "feed"],
        dir.path(),
        "subscribed",
    );
    assert_eq!(feed.subscribers().unwrap(), 1);
    let info = lpc::query("feed", &client_options(dir.path())).unwrap();
    assert_eq!(info.subscribers.len(), 1);
    assert_eq!(info.subscribers[0].pid, Some(subscriber.pid()));
    feed.burst(500, 64).unwrap();
    let info = lpc::query("feed", &client_options(dir.path())).unwrap();
    assert!(info.subscribers[0].dropped > 0, "{:?}", info.subscribers);
    subscriber.kill();
    assert!(eventually(PROMPT, || feed.subscribers().unwrap() == 0));
    assert!(lpc::query("feed", &client_options(dir.path()))
        .unwrap()
        .subscribers
        .is_empty());
}

#[test]
fn the_iterator_ends_with_disconnected_when_the_service_is_killed_mid_stream() {
    let dir = TempDir::new().unwrap();
    let mut service = start(dir.path(), &["--stream"]);
    let mut sub = subscribe(dir.path(), 64 * 1024, Overflow::DropOldest);
    let mut last = None;
    for _ in 0..100 {
        let r = sub.recv_timeout(PROMPT).unwrap().expect("an event in time");
        if let FeedEvent::Item { seq, .. } = r.event {
            if let Some(last) = last {
                assert_eq!(seq, last + 1 + r.missed, "seq and missed agree");
            }
            last = Some(seq);
        }
    }
    service.kill();
    let deadline = Instant::now() + PROMPT;
    let mut ended = None;
    for r in sub.by_ref() {
        assert!(Instant::now() < deadline, "the iterator never ended");
        if let Err(e) = r {
            ended = Some(e);
        }
    }
    assert!(
        matches!(ended, Some(Error::Disconnected { .. })),
        "{ended:?}"
    );
}

/// Raises this process's soft limit on open descriptors to the hard limit.
#[cfg(unix)]
fn raise_open_files(want: u64) {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    let hard = limit.maximum.unwrap_or(u64::MAX);
    let soft = limit.current.unwrap_or(u64::MAX);
    if soft < want {
        rustix::process::setrlimit(
            rustix::process::Resource::Nofile,
            rustix::process::Rlimit {
                current: Some(hard),
                maximum: limit.maximum,
            },
        )
        .unwrap();
    }
    let now = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    assert!(
        now.is_none_or(|n| n >= want),
        "this test needs {want} open descriptors (hard limit {hard})"
    );
}

#[test]
fn a_thousand_subscribers_each_get_every_event() {
    #[cfg(unix)]
    raise_open_files(1200);
    let dir = TempDir::new().unwrap();
    let _service = start(dir.path(), &[]);
    let feed = control(dir.path());
    let started = Instant::now();
    let mut subs: Vec<_> = (0..1000)
        .map(|_| subscribe(dir.path(), 4096, Overflow::DropNewest))
        .collect();
    assert_eq!(feed.subscribers().unwrap(), 1000);
    assert_eq!(feed.burst(10, 8).unwrap(), 10_000);
    for sub in &mut subs {
        let got = drain(sub);
        assert_eq!(got, (0..10).map(|s| (s, 0)).collect::<Vec<_>>());
    }
    drop(subs);
    assert!(eventually(PROMPT, || feed.subscribers().unwrap() == 0));
    assert!(started.elapsed() < Duration::from_secs(120));
}
