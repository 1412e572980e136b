//! Calls from different threads of one client run concurrently in the service: a slow handler
//! never delays another thread's call, and a call that gave up frees its caller at once.
//! Real processes; the slow calls are long (30 s) and every check happens while they still
//! run, so a service that served one call at a time fails the checks, not a timer.

use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use lpc::{CallPhase, Error};
use lpc_tests::{client_options, ProbeClient, Process};
use tempfile::TempDir;

const SERVICE: &str = env!("CARGO_BIN_EXE_lpc-test-service");
/// Long enough that nothing in a test waits for it to end.
const SLOW_MS: u64 = 30_000;
const PROMPT: Duration = Duration::from_secs(10);

fn start(dir: &Path) -> Process {
    Process::start(Path::new(SERVICE), &["probe"], dir, "ready")
}

#[test]
fn a_slow_call_on_one_thread_never_delays_another_threads_calls() {
    let dir = TempDir::new().unwrap();
    let mut service = start(dir.path());
    let probe = ProbeClient::connect_with("probe", &client_options(dir.path())).unwrap();
    let (done, slow_returned) = mpsc::channel();
    let slow = {
        let probe = probe.clone();
        std::thread::spawn(move || {
            let result = probe
                .with_timeout(Duration::from_secs(60))
                .sleep_ms(SLOW_MS);
            let _ = done.send(());
            result
        })
    };
    // The slow handler is running in the service.
    service.expect_line("sleeping", PROMPT);
    // Meanwhile another thread's calls are served, many of them, at once.
    let started = Instant::now();
    for i in 0..1000 {
        assert_eq!(probe.add(i, 1).unwrap(), i + 1);
    }
    let took = started.elapsed();
    assert!(
        slow_returned.try_recv().is_err(),
        "the slow call finished first: the calls waited behind it"
    );
    assert!(took < Duration::from_millis(SLOW_MS / 2), "{took:?}");
    // Clean up: the service goes away, the slow call reports it.
    drop(service);
    let err = slow.join().unwrap().unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Disconnected {
                phase: CallPhase::Executing,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn a_call_that_gave_up_frees_its_caller_at_once() {
    let dir = TempDir::new().unwrap();
    let mut service = start(dir.path());
    let probe = ProbeClient::connect_with("probe", &client_options(dir.path())).unwrap();
    let impatient = probe.with_timeout(Duration::from_millis(200));
    let err = impatient.sleep_ms(SLOW_MS).unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Timeout {
                phase: CallPhase::Executing,
                ..
            }
        ),
        "{err:?}"
    );
    service.expect_line("sleeping", PROMPT);
    // The abandoned handler still runs (for 30 s); the same client's next calls, on this very
    // thread, are answered now.
    let started = Instant::now();
    for i in 0..100 {
        assert_eq!(impatient.add(i, 2).unwrap(), i + 2);
    }
    assert!(
        started.elapsed() < Duration::from_millis(SLOW_MS / 2),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn sixteen_threads_of_one_client_each_get_their_own_answers() {
    let dir = TempDir::new().unwrap();
    let _service = start(dir.path());
    let probe = ProbeClient::connect_with("probe", &client_options(dir.path())).unwrap();
    std::thread::scope(|s| {
        for t in 0..16 {
            let probe = probe.clone();
            s.spawn(move || {
                for i in 0..200 {
                    let name = format!("t{t}-{i}");
                    assert_eq!(
                        probe.greet(&name, &[format!("{t}")]).unwrap(),
                        format!("{t} {name}")
                    );
                }
            });
        }
    });
}
