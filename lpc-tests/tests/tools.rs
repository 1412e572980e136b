//! What tools see: JSON calls decoded by the service itself, and service queries.

use std::path::Path;
use std::time::Duration;

use lpc::Error;
use lpc_tests::{client_options, ProbeClient, Process, Record};
use serde_json::json;
use tempfile::TempDir;

const SERVICE: &str = env!("CARGO_BIN_EXE_lpc-test-service");
const CLIENT: &str = env!("CARGO_BIN_EXE_lpc-test-client");

fn start(dir: &Path) -> Process {
    Process::start(Path::new(SERVICE), &["probe"], dir, "ready")
}

fn dynamic(dir: &Path) -> lpc::Client {
    lpc::Client::connect_dynamic("probe", &client_options(dir)).unwrap()
}

#[test]
fn json_arguments_are_strict_about_fields() {
    let dir = TempDir::new().unwrap();
    let _service = start(dir.path());
    let client = dynamic(dir.path());
    let bad = |args: serde_json::Value| match client.call_json("bump", &args) {
        Err(lpc::Error::BadArguments { message, .. }) => message,
        other => panic!("expected BadArguments, got {other:?}"),
    };
    // A misspelt field is named, with the fields there are: never silently dropped.
    let unknown = bad(json!([{"id": 1, "name": "r", "values": [], "valeus": [2.0]}]));
    assert_eq!(
        unknown,
        "argument `record` (&Record): `Record` has no field `valeus` (its fields: id: u32, \
         name: String, values: Vec<f64>)"
    );
    // A missing one is named with its type.
    let missing = bad(json!({"record": {"id": 1, "values": []}}));
    assert_eq!(
        missing,
        "argument `record` (&Record): `Record` is missing field `name` (String)"
    );
    // The right fields still work.
    assert_eq!(
        client
            .call_json("bump", &json!([{"id": 1, "name": "r", "values": []}]))
            .unwrap(),
        json!({"result": {"id": 2, "name": "r", "values": []}})
    );
}

#[test]
fn json_calls_take_arrays_or_objects_and_return_results_and_out_values() {
    let dir = TempDir::new().unwrap();
    let _service = start(dir.path());
    let client = dynamic(dir.path());
    assert_eq!(
        client.call_json("add", &json!([10, 20])).unwrap(),
        json!({"result": 30})
    );
    assert_eq!(
        client.call_json("add", &json!({"b": 2, "a": 1})).unwrap(),
        json!({"result": 3})
    );
    assert_eq!(
        client.call_json("greet", &json!(["Ada", ["Dr."]])).unwrap(),
        json!({"result": "Dr. Ada"})
    );
    assert_eq!(
        client.call_json("echo", &json!([[1, 2, 3]])).unwrap(),
        json!({"result": [1, 2, 3]})
    );
    let record = json!({"id": 1, "name": "r", "values": [1.5]});
    assert_eq!(
        client.call_json("touch", &json!([record, 41])).unwrap(),
        json!({
            "result": 1,
            "out": {"record": {"id": 2, "name": "r (touched)", "values": [3.0]}, "counter": 42}
        })
    );
    assert_eq!(
        client.call_json("checked_sqrt", &json!([16])).unwrap(),
        json!({"result": 4})
    );
    assert_eq!(
        client.call_json("checked_sqrt", &json!([-4])).unwrap(),
        json!({"error": {"Negative": -4}})
    );
    assert_eq!(
        client.call_json("nothing", &json!([])).unwrap(),
        json!({"result": null})
    );
    // Binary calls on the same connection are unaffected.
    let probe = ProbeClient::from_client(client);
    assert_eq!(probe.add(1, 2).unwrap(), 3);
    let r = Record {
        id: 5,
        name: "x".into(),
        values: vec![],
    };
    assert_eq!(probe.bump(&r).unwrap().id, 6);
}

#[test]
fn bad_json_calls_get_errors_that_say_what_is_wrong() {
    let dir = TempDir::new().unwrap();
    let _service = start(dir.path());
    let client = dynamic(dir.path());
    let remote = |args: serde_json::Value| match client.call_json("add", &args).unwrap_err() {
        Error::BadArguments {
            method, message, ..
        } => {
            assert_eq!(method, "add");
            message
        }
        other => panic!("expected BadArguments, got {other:?}"),
    };
    let m = remote(json!([1]));
    assert!(
        m.contains("`add` takes 2 arguments (a: i32, b: i32), got 1"),
        "{m}"
    );
    let m = remote(json!([1, "two"]));
    assert!(m.contains("argument `b` (i32)"), "{m}");
    let m = remote(json!({"a": 1}));
    assert!(m.contains("`b` is missing"), "{m}");
    let m = remote(json!({"a": 1, "b": 2, "c": 3}));
    assert!(m.contains("there is no parameter `c`"), "{m}");
    let err = client.call_json("nope", &json!([])).unwrap_err();
    assert!(
        matches!(&err, Error::NoSuchMethod { method, .. } if method == "nope"),
        "{err:?}"
    );
    // A panicking handler is reported the same way in JSON.
    let err = client.call_json("boom", &json!(["kaboom"])).unwrap_err();
    assert!(
        matches!(&err, Error::Remote { message, .. } if message.contains("kaboom")),
        "{err:?}"
    );
}

#[test]
fn a_query_reports_identity_interface_clients_and_statistics() {
    let dir = TempDir::new().unwrap();
    let service = start(dir.path());
    let probe = ProbeClient::connect_with("probe", &client_options(dir.path())).unwrap();
    for i in 0..100 {
        probe.add(i, 1).unwrap();
    }
    probe.boom("x").unwrap_err();
    let mut other = Process::start(Path::new(CLIENT), &["probe"], dir.path(), "connected");

    // A call is counted once its reply is out (the caller does not wait for the count), so
    // the counts of the last call may trail its reply by a moment.
    let counted = |info: &lpc::info::ServiceInfo| {
        let count = |name: &str| {
            info.methods
                .iter()
                .find(|m| m.name == name)
                .map(|m| m.calls)
        };
        count("add") == Some(101) && count("boom") == Some(1)
    };
    let mut info = lpc::query("probe", &client_options(dir.path())).unwrap();
    assert!(lpc_tests::eventually(Duration::from_secs(10), || {
        info = lpc::query("probe", &client_options(dir.path())).unwrap();
        counted(&info)
    }));
    assert_eq!(info.service, "probe");
    assert_eq!(info.pid, Some(service.pid()));
    assert_eq!(info.interface.name, "Probe");
    assert_eq!(
        &info.interface,
        lpc_tests::PROBE_INTERFACE.info().expect("shapes")
    );
    assert_eq!(info.connections, 2);
    let pids: Vec<u32> = info.clients.iter().filter_map(|c| c.pid).collect();
    assert!(
        pids.contains(&std::process::id()) && pids.contains(&other.pid()),
        "{pids:?}"
    );
    let helper = info
        .clients
        .iter()
        .find(|c| c.pid == Some(other.pid()))
        .unwrap();
    assert_eq!(helper.process, "lpc-test-client");
    assert_eq!(helper.calls, 1);
    let add = info.methods.iter().find(|m| m.name == "add").unwrap();
    assert_eq!((add.calls, add.errors), (101, 0)); // ours and the helper's add(1, 2)
    assert!(add.latency.count() >= 1 && add.latency.count() <= 101);
    let boom = info.methods.iter().find(|m| m.name == "boom").unwrap();
    assert_eq!((boom.calls, boom.errors), (1, 1));

    // Calls of a client that left are still counted; the client is not.
    other.kill();
    assert!(lpc_tests::eventually(Duration::from_secs(10), || {
        lpc::query("probe", &client_options(dir.path()))
            .unwrap()
            .connections
            == 1
    }));
    let info = lpc::query("probe", &client_options(dir.path())).unwrap();
    assert_eq!(
        info.methods.iter().find(|m| m.name == "add").unwrap().calls,
        101
    );
}

#[test]
fn the_registry_lists_live_and_stale_services_and_prunes_the_stale() {
    let dir = TempDir::new().unwrap();
    let _live = start(dir.path());
    let mut dead = Process::start(Path::new(SERVICE), &["dead"], dir.path(), "ready");
    dead.kill();
    let listings = lpc::registry::list(dir.path(), Duration::from_secs(5)).unwrap();
    let names: Vec<&str> = listings.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["dead", "probe"]);
    assert!(matches!(
        listings[0].state,
        lpc::registry::ListingState::Stale
    ));
    assert!(
        matches!(&listings[1].state, lpc::registry::ListingState::Live(info) if info.interface.name == "Probe")
    );
    assert_eq!(lpc::registry::prune(dir.path()).unwrap(), ["dead"]);
    let names: Vec<String> = lpc::registry::list(dir.path(), Duration::from_secs(5))
        .unwrap()
        .into_iter()
        .map(|l| l.name)
        .collect();
    assert_eq!(names, ["probe"]);
}
