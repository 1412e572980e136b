//! A tight loop of one-way posts makes no system call per message, whether the service is
//! awake or asleep when a burst begins: the client rings the doorbell only when the service
//! sleeps, and sleeps for room at most once per half a queue. Its own test binary, so that the
//! process-wide counters (`lpc::testing::oneway_system_calls`) see only this test's posts.

use std::path::Path;
use std::time::Duration;

use lpc_tests::journal::JournalClient;
use lpc_tests::{client_options, Process};
use tempfile::TempDir;

const JOURNAL: &str = env!("CARGO_BIN_EXE_lpc-journal");

#[test]
fn a_tight_loop_of_posts_makes_no_system_call_per_message() {
    let dir = TempDir::new().unwrap();
    let _service = Process::start(
        Path::new(JOURNAL),
        &["serve", "journal"],
        dir.path(),
        "ready",
    );
    let journal = JournalClient::connect_with("journal", &client_options(dir.path())).unwrap();
    let pid = std::process::id();
    const BURSTS: u64 = 20;
    const PER_BURST: u64 = 10_000;
    let mut seq = 0;
    for _ in 0..BURSTS {
        // Long enough for the service to stop spinning and sleep on the doorbell (its spin
        // is at most 200 µs): each burst starts against a sleeping service. Not a
        // synchronisation: the counts below hold whether it slept or not.
        std::thread::sleep(Duration::from_millis(5));
        for _ in 0..PER_BURST {
            journal.note(pid, 0, seq).unwrap();
            seq += 1;
        }
    }
    let (wakes, waits) = lpc::testing::oneway_system_calls();
    // Every message arrived, in order.
    assert_eq!(journal.check().unwrap(), Ok(BURSTS * PER_BURST));
    let messages = BURSTS * PER_BURST;
    eprintln!("{messages} posts: {wakes} doorbell rings, {waits} waits for room");
    assert!(
        wakes + waits <= messages / 100,
        "{messages} posts made {wakes} wake-ups and {waits} waits"
    );
    // At least the bursts' first posts found it asleep (else the test measured nothing of
    // that case): allow a burst or two that found it still spinning on a loaded machine.
    assert!(wakes >= 1, "no post ever found the service asleep");
}
