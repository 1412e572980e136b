//! Calls between a real service process and this test process: every parameter kind, many
//! threads, large payloads, and each error a caller can see.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

#[cfg(unix)]
use lpc::ClientOptions;
use lpc::{CallPhase, Error};
use lpc_tests::{client_options, ProbeClient, ProbeError, Process, Record};
use tempfile::TempDir;

const SERVICE: &str = env!("CARGO_BIN_EXE_lpc-test-service");

fn start(dir: &Path, args: &[&str]) -> Process {
    Process::start(Path::new(SERVICE), args, dir, "ready")
}

fn connect(dir: &Path, name: &str) -> ProbeClient {
    ProbeClient::connect_with(name, &client_options(dir)).expect("connect")
}

#[test]
fn every_parameter_kind_round_trips() {
    let dir = TempDir::new().unwrap();
    let service = start(dir.path(), &["probe"]);
    let probe = connect(dir.path(), "probe");

    assert_eq!(probe.add(10, 20).unwrap(), 30);
    assert_eq!(probe.add(i32::MAX, 1).unwrap(), i32::MIN);
    assert_eq!(probe.echo(b"hello").unwrap(), b"hello");
    assert_eq!(probe.echo(&[]).unwrap(), Vec::<u8>::new());
    assert_eq!(
        probe
            .greet("Ada", &["Dr.".to_string(), "Prof.".to_string()])
            .unwrap(),
        "Dr. Prof. Ada"
    );

    let mut record = Record {
        id: 7,
        name: "r".into(),
        values: vec![1.5, -2.0],
    };
    let mut counter = 41;
    assert_eq!(probe.touch(&mut record, &mut counter).unwrap(), 2);
    assert_eq!(
        record,
        Record {
            id: 8,
            name: "r (touched)".into(),
            values: vec![3.0, -4.0]
        }
    );
    assert_eq!(counter, 42);

    let r = Record {
        id: 1,
        name: "x".into(),
        values: vec![],
    };
    assert_eq!(probe.bump(&r).unwrap().id, 2);
    probe.nothing().unwrap();
    assert_eq!(probe.pid().unwrap(), service.pid());
}

#[test]
fn application_errors_cross_unchanged() {
    let dir = TempDir::new().unwrap();
    let _service = start(dir.path(), &["probe"]);
    let probe = connect(dir.path(), "probe");
    assert_eq!(probe.checked_sqrt(49).unwrap(), Ok(7));
    assert_eq!(
        probe.checked_sqrt(-3).unwrap(),
        Err(ProbeError::Negative(-3))
    );
}

#[test]
fn a_panicking_handler_is_a_remote_error_and_the_service_goes_on() {
    let dir = TempDir::new().unwrap();
    let _service = start(dir.path(), &["probe"]);
    let probe = connect(dir.path(), "probe");
    let err = probe.boom("kaboom").unwrap_err();
    match &err {
        Error::Remote {
            service,
            method,
            message,
        } => {
            assert_eq!(service, "probe");
            assert_eq!(method, "boom");
            assert!(message.contains("kaboom"), "{message}");
        }
        other => panic!("expected Remote, got {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("`probe`") && text.contains("`boom`") && text.contains("kaboom"),
        "{text}"
    );
    // Same connection, and a new one, still work.
    assert_eq!(probe.add(1, 1).unwrap(), 2);
    assert_eq!(connect(dir.path(), "probe").add(2, 2).unwrap(), 4);
}

#[test]
fn one_client_shared_by_many_threads() {
    let dir = TempDir::new().unwrap();
    // Fewer slots than threads: threads also wait for each other's slots.
    let _service = start(dir.path(), &["probe", "--slots", "3"]);
    let options = client_options(dir.path()).queue_for_slot(Duration::from_secs(60));
    let probe = Arc::new(ProbeClient::connect_with("probe", &options).unwrap());
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let probe = probe.clone();
            std::thread::spawn(move || {
                for i in 0..2000 {
                    assert_eq!(probe.add(t * 100_000, i).unwrap(), t * 100_000 + i);
                    if i % 100 == 0 {
                        let data = vec![t as u8; 10_000 + i as usize];
                        assert_eq!(probe.echo(&data).unwrap(), data);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn twenty_threads_on_two_slots_all_succeed_and_none_starves() {
    use std::time::Instant;
    const THREADS: usize = 20;
    const ROUNDS: usize = 25;
    let dir = TempDir::new().unwrap();
    let _service = start(dir.path(), &["probe", "--slots", "2"]);
    // The default options: a call that finds both slots taken waits for one, in line.
    let probe = Arc::new(connect(dir.path(), "probe"));
    let barrier = Arc::new(std::sync::Barrier::new(THREADS + 1));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (probe, barrier) = (probe.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                // The longest any one call took, waiting for a slot included.
                let mut longest = Duration::ZERO;
                for round in 0..ROUNDS {
                    for i in 0..10 {
                        let started = Instant::now();
                        let sum = probe.add(t as i32, (round * 10 + i) as i32);
                        longest = longest.max(started.elapsed());
                        assert_eq!(sum.unwrap(), (t + round * 10 + i) as i32);
                    }
                    // A slow call: holds its slot 2 ms while the others wait.
                    let started = Instant::now();
                    let data = probe.slow_filled(2, 3, t as u8);
                    longest = longest.max(started.elapsed());
                    assert_eq!(data.unwrap(), vec![t as u8; 3], "thread {t}");
                }
                longest
            })
        })
        .collect();
    barrier.wait();
    let started = Instant::now();
    let longest: Vec<Duration> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let total = started.elapsed();
    let worst = longest.iter().max().unwrap();
    eprintln!(
        "{THREADS} threads on 2 slots: {total:?} in all; each thread's longest call: {longest:?}"
    );
    // Served in order, a call waits at most for the calls of the 19 threads ahead of it
    // (about 19 × 2 ms here), a small part of the run; a starving thread would wait for a
    // large part of it. Half of the run leaves room for any scheduling noise.
    assert!(
        *worst < total / 2,
        "a thread waited {worst:?} for one call, in a run of {total:?}: {longest:?}"
    );
}

#[test]
fn payloads_of_any_size_up_to_the_limit() {
    let dir = TempDir::new().unwrap();
    let _service = start(dir.path(), &["probe"]);
    let probe = connect(dir.path(), "probe");
    for size in [
        0usize,
        1,
        4000,
        4047,
        4048,
        4049,
        64 << 10,
        1 << 20,
        16 << 20,
        3 << 20,
    ] {
        let data: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
        assert_eq!(probe.echo(&data).unwrap(), data, "echo of {size} bytes");
        let filled = probe.filled(size as u64, 0xab).unwrap();
        assert_eq!(filled.len(), size);
        assert!(filled.iter().all(|&b| b == 0xab));
    }
}

#[test]
fn too_large_requests_and_replies_are_refused_cleanly() {
    let dir = TempDir::new().unwrap();
    let _service = start(dir.path(), &["probe", "--max-payload", "1000000"]);
    let probe = connect(dir.path(), "probe");
    match probe.echo(&vec![0u8; 2_000_000]).unwrap_err() {
        Error::TooLarge {
            service,
            method,
            size,
            limit,
        } => {
            assert_eq!(
                (service.as_str(), method.as_deref()),
                ("probe", Some("echo"))
            );
            assert!(size > 2_000_000 && limit == 1_000_000, "{size} {limit}");
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    // The connection is intact.
    assert_eq!(probe.add(2, 3).unwrap(), 5);

    let small =
        ProbeClient::connect_with("probe", &client_options(dir.path()).max_reply(10_000)).unwrap();
    let err = small.filled(50_000, 1).unwrap_err();
    assert!(
        matches!(&err, Error::TooLarge { size, limit: 10_000, .. } if *size > 50_000),
        "{err:?}"
    );
    assert!(err.to_string().contains("`filled`"), "{err}");
    assert_eq!(small.filled(100, 1).unwrap().len(), 100);
}

#[test]
fn a_call_past_its_deadline_times_out_and_the_connection_recovers() {
    let dir = TempDir::new().unwrap();
    let _service = start(dir.path(), &["probe", "--slots", "1"]);
    let options = client_options(dir.path()).queue_for_slot(Duration::from_secs(60));
    let probe = ProbeClient::connect_with("probe", &options).unwrap();
    let err = probe
        .with_timeout(Duration::from_millis(100))
        .sleep_ms(1000)
        .unwrap_err();
    match &err {
        Error::Timeout {
            service,
            method,
            phase,
            after,
        } => {
            assert_eq!(
                (service.as_str(), method.as_deref()),
                ("probe", Some("sleep_ms"))
            );
            assert_eq!(*phase, CallPhase::Executing);
            assert_eq!(*after, Duration::from_millis(100));
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
    // The only slot is still busy in the service; the next call waits for it to be freed.
    assert_eq!(probe.add(1, 2).unwrap(), 3);
}

#[test]
fn unknown_service_is_not_found() {
    let dir = TempDir::new().unwrap();
    let err = ProbeClient::connect_with("nobody", &client_options(dir.path())).unwrap_err();
    assert!(
        matches!(&err, Error::NotFound { service, .. } if service == "nobody"),
        "{err:?}"
    );
    assert!(err.to_string().contains("`nobody` not found"), "{err}");
}

#[test]
fn a_client_of_another_interface_version_is_refused_at_connect() {
    let dir = TempDir::new().unwrap();
    let _service = start(dir.path(), &["probe"]);
    let err =
        lpc_tests::v2::ProbeClient::connect_with("probe", &client_options(dir.path())).unwrap_err();
    let Error::InterfaceMismatch { service, detail } = &err else {
        panic!("expected InterfaceMismatch, got {err:?}");
    };
    assert_eq!(service, "probe");
    assert!(
        detail.contains("`add`: parameter `a`: `i32` in the service, `i64` in this client"),
        "{detail}"
    );
    // A method the service lacks is no reason to refuse: only its calls fail.
    assert!(!detail.contains("mul"), "{detail}");
}

#[test]
fn an_unknown_method_id_is_no_such_method() {
    static MISSING: lpc::MethodDescriptor = lpc::MethodDescriptor {
        name: "missing",
        id: 0x1234_5678,
        signature: "fn missing(&self)",
        params: &[],
        output: "()",
        returns_result: false,
        oneway: false,
        trace: |_| Ok(()),
    };
    let dir = TempDir::new().unwrap();
    let _service = start(dir.path(), &["probe"]);
    let client = lpc::Client::connect_dynamic("probe", &client_options(dir.path())).unwrap();
    assert_eq!(client.interface().name, "Probe");
    let err = client.call::<_, ()>(&MISSING, &()).unwrap_err();
    assert!(
        matches!(&err, Error::NoSuchMethod { service, method } if service == "probe" && method == "missing"),
        "{err:?}"
    );
    assert!(err.to_string().contains("has no method `missing`"), "{err}");
}

#[test]
fn arguments_that_do_not_decode_are_bad_arguments() {
    let dir = TempDir::new().unwrap();
    let _service = start(dir.path(), &["probe"]);
    let client = lpc::Client::connect_dynamic("probe", &client_options(dir.path())).unwrap();
    let add = lpc_tests::PROBE_INTERFACE.method_by_name("add").unwrap();
    // `add` takes two i32; send a string instead.
    let err = client.call::<_, i32>(add, &("not numbers",)).unwrap_err();
    assert!(
        matches!(&err, Error::BadArguments { method, message, .. } if method == "add" && message.contains("arguments do not decode")),
        "{err:?}"
    );
}

#[test]
fn a_name_held_by_a_live_service_is_taken() {
    let dir = TempDir::new().unwrap();
    let _service = start(dir.path(), &["probe"]);
    let err = lpc::Server::bind_with("probe", lpc::ServerOptions::new().runtime_dir(dir.path()))
        .unwrap_err();
    assert!(
        matches!(&err, Error::NameTaken { service, .. } if service == "probe"),
        "{err:?}"
    );
    assert!(err.to_string().contains("already taken"), "{err}");
}

#[test]
fn an_unusable_runtime_directory_is_an_io_error() {
    let dir = TempDir::new().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let err =
        lpc::Server::bind_with("svc", lpc::ServerOptions::new().runtime_dir(&file)).unwrap_err();
    assert!(
        matches!(&err, Error::Io { service, .. } if service == "svc"),
        "{err:?}"
    );
    assert!(err.to_string().contains("runtime directory"), "{err}");
}

#[test]
fn a_bad_name_or_option_has_its_own_error() {
    let dir = TempDir::new().unwrap();
    let err = lpc::Server::bind_with(
        "bad/name",
        lpc::ServerOptions::new().runtime_dir(dir.path()),
    )
    .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidName { name, .. } if name == "bad/name"),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with("invalid service name \"bad/name\": it contains '/'"),
        "{err}"
    );
    let err = ProbeClient::connect_with(".hidden", &client_options(dir.path())).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidName { reason, .. } if reason.starts_with("it starts with a dot")),
        "{err:?}"
    );
    let err = lpc::query("", &client_options(dir.path())).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidName { reason, .. } if reason.starts_with("it is empty")),
        "{err:?}"
    );

    let bind = |options: lpc::ServerOptions| {
        lpc::Server::bind_with("svc", options.runtime_dir(dir.path())).unwrap_err()
    };
    for (options, option, reason) in [
        (
            lpc::ServerOptions::new().slots(0),
            "ServerOptions::slots",
            "0 call slots; a connection has 1 to 64",
        ),
        (
            lpc::ServerOptions::new().slots(65),
            "ServerOptions::slots",
            "65 call slots",
        ),
        (
            lpc::ServerOptions::new().slot_size(100),
            "ServerOptions::slot_size",
            "slot size 100 not a multiple of 64",
        ),
    ] {
        let err = bind(options);
        assert!(
            matches!(&err, Error::InvalidOption { service, option: o, reason: r }
                if service == "svc" && o == option && r.starts_with(reason)),
            "{err:?}"
        );
        assert!(
            err.to_string().starts_with(&format!(
                "service `svc`: invalid option `{option}`: {reason}"
            )),
            "{err}"
        );
    }
    // Nothing was bound.
    assert!(!dir.path().join("svc.sock").exists());
}

// Unix: the fake service is a raw Unix socket.
#[cfg(unix)]
#[test]
fn a_peer_that_breaks_the_handshake_is_a_protocol_error() {
    use rustix::net::{
        accept, bind, listen, recv, send, socket, AddressFamily, RecvFlags, SendFlags,
        SocketAddrUnix, SocketType,
    };
    // (answer, what the client must say): an unknown tag of this version, and a welcome of a
    // future version whose body this side cannot know (told apart by the version prefix).
    let cases: [(Vec<u8>, &str); 2] = [
        (vec![0xee, 3, 0, 0, 0, 1, 2, 3], "unknown message tag"),
        (
            [&[2u8, 9, 0, 0, 0][..], &[0xff; 64]].concat(),
            "the peer speaks protocol version 9, this side speaks version 3",
        ),
    ];
    for (answer, needle) in cases {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("fake.sock");
        let listener = socket(AddressFamily::UNIX, SocketType::SEQPACKET, None).unwrap();
        bind(&listener, &SocketAddrUnix::new(&path).unwrap()).unwrap();
        listen(&listener, 1).unwrap();
        let fake = std::thread::spawn(move || {
            let conn = accept(&listener).unwrap();
            let mut buf = [0u8; 65536];
            recv(&conn, &mut buf, RecvFlags::empty()).unwrap();
            send(&conn, &answer, SendFlags::empty()).unwrap();
            // Keep the connection open until the client has read the reply.
            let _ = recv(&conn, &mut buf, RecvFlags::empty());
        });
        let err = ProbeClient::connect_with("fake", &client_options(dir.path())).unwrap_err();
        assert!(
            matches!(&err, Error::Protocol { service, .. } if service == "fake"),
            "{err:?}"
        );
        assert!(err.to_string().contains(needle), "{err}");
        fake.join().unwrap();
    }
}

// Unix: the fake service is a raw Unix socket.
#[cfg(unix)]
#[test]
fn connect_times_out_when_the_service_never_answers_the_handshake() {
    use rustix::net::{bind, listen, socket, AddressFamily, SocketAddrUnix, SocketType};
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("mute.sock");
    let listener = socket(AddressFamily::UNIX, SocketType::SEQPACKET, None).unwrap();
    bind(&listener, &SocketAddrUnix::new(&path).unwrap()).unwrap();
    listen(&listener, 1).unwrap();
    let options = ClientOptions::new()
        .runtime_dir(dir.path())
        .connect_timeout(Duration::from_millis(200));
    let err = ProbeClient::connect_with("mute", &options).unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Timeout {
                method: None,
                phase: CallPhase::Connecting,
                ..
            }
        ),
        "{err:?}"
    );
    // It says it was connecting, not that a call was not sent.
    let text = err.to_string();
    assert!(
        text.starts_with("service `mute`: timed out after 200ms while connecting"),
        "{text}"
    );
    assert!(!text.contains("the call was not sent"), "{text}");
    drop(listener);
}

#[test]
fn a_large_reply_to_an_abandoned_call_does_not_confuse_later_calls() {
    let dir = TempDir::new().unwrap();
    let _service = start(dir.path(), &["probe", "--slots", "1"]);
    let options = client_options(dir.path()).queue_for_slot(Duration::from_secs(60));
    let probe = ProbeClient::connect_with("probe", &options).unwrap();
    // The service finishes this call after the client gave up, writing its 200 kB result into
    // a new spill buffer that the client never reads.
    let err = probe
        .with_timeout(Duration::from_millis(50))
        .slow_filled(300, 200_000, 1)
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Timeout {
                phase: CallPhase::Executing,
                ..
            }
        ),
        "{err:?}"
    );
    // The same (only) slot, with large payloads both ways, replacing the buffers again.
    let data: Vec<u8> = (0..300_000).map(|i| (i % 256) as u8).collect();
    assert_eq!(probe.echo(&data).unwrap(), data);
    assert_eq!(probe.filled(200_000, 9).unwrap(), vec![9u8; 200_000]);
    assert_eq!(probe.filled(1_000_000, 3).unwrap(), vec![3u8; 1_000_000]);
}
