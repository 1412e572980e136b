//! Two builds of one interface source across real processes: the service of one build
//! (`lpc-evolution-v1-service` or `lpc-evolution-v2-service`, each serving one name per kind of
//! change) against the client of the other (`lpc_evolution_v1` / `lpc_evolution_v2`, in this
//! process). Each change gives the result `docs/evolution.md` documents; the messages asserted
//! here are the ones that document quotes.
//!
//! The interfaces are in `lpc-tests/evolution/interface.rs`; the `v2` feature marks what differs.

use std::path::Path;
use std::time::Duration;

use lpc::{Client, ClientOptions, Error};
use lpc_evolution_v1 as v1;
use lpc_evolution_v2 as v2;
use lpc_tests::Process;
use tempfile::TempDir;

const SERVICE_V1: &str = env!("CARGO_BIN_EXE_lpc-evolution-v1-service");
const SERVICE_V2: &str = env!("CARGO_BIN_EXE_lpc-evolution-v2-service");

/// The tail of every refusal at connect.
const HINT: &str = "; (ClientOptions::allow_mismatched_methods connects anyway, refusing only \
                    these methods' calls)";

/// Starts the service process of `build` ("v1" or "v2") in `dir`; waits (at most 20 s) until
/// it has bound every name.
fn start(dir: &Path, build: &str) -> Process {
    let program = if build == "v1" {
        SERVICE_V1
    } else {
        SERVICE_V2
    };
    Process::start(Path::new(program), &[], dir, &format!("ready {build} "))
}

/// Connects within 5 s; each call gives up after 10 s.
fn options(dir: &Path) -> ClientOptions {
    ClientOptions::new()
        .runtime_dir(dir)
        .connect_timeout(Duration::from_secs(5))
        .call_timeout(Duration::from_secs(10))
}

fn lenient(dir: &Path) -> ClientOptions {
    options(dir).allow_mismatched_methods(true)
}

/// The detail of an `InterfaceMismatch` from `service`.
fn mismatch<T: std::fmt::Debug>(result: Result<T, Error>, service: &str) -> String {
    match result {
        Err(Error::InterfaceMismatch { service: s, detail }) if s == service => detail,
        other => panic!("expected InterfaceMismatch from `{service}`, got {other:?}"),
    }
}

/// Asserts that a call failed with `NoSuchMethod` for `method` of `service`.
fn assert_no_such_method<T: std::fmt::Debug>(
    result: Result<T, Error>,
    service: &str,
    method: &str,
) {
    match result {
        Err(e @ Error::NoSuchMethod { .. }) => {
            assert!(
                matches!(&e, Error::NoSuchMethod { service: s, method: m } if s == service && m == method),
                "{e:?}"
            );
            assert_eq!(
                e.to_string(),
                format!("service `{service}` has no method `{method}`")
            );
        }
        other => panic!("expected NoSuchMethod, got {other:?}"),
    }
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(m, d)| (m.to_string(), d.to_string()))
        .collect()
}

// 1. Reordered fields.

const REORDER_V2_V1: &str =
    "`MyInfo` field 0 is `blue: f64` in the service, `red: f64` in this client";

#[test]
fn reordered_fields_are_refused_at_connect_naming_the_type_the_field_and_both_sides() {
    let dir = TempDir::new().unwrap();
    let _v2 = start(dir.path(), "v2");
    let err =
        v1::reorder::ReorderClient::connect_with("reorder", &options(dir.path())).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "service `reorder` has a different interface than this client expects: `compare`: \
             parameter `info`: {REORDER_V2_V1}{HINT}"
        )
    );
    let detail = mismatch(Err::<(), _>(err), "reorder");
    assert_eq!(
        detail,
        format!("`compare`: parameter `info`: {REORDER_V2_V1}{HINT}")
    );

    // The other way round: the sides swap in the message.
    let dir = TempDir::new().unwrap();
    let _v1 = start(dir.path(), "v1");
    let detail = mismatch(
        v2::reorder::ReorderClient::connect_with("reorder", &options(dir.path())),
        "reorder",
    );
    assert_eq!(
        detail,
        format!(
            "`compare`: parameter `info`: `MyInfo` field 0 is `red: f64` in the service, \
             `blue: f64` in this client{HINT}"
        )
    );
}

#[test]
fn allowing_mismatched_methods_a_reordered_struct_is_never_sent_and_the_rest_works() {
    let dir = TempDir::new().unwrap();
    let _v2 = start(dir.path(), "v2");
    let client = v1::reorder::ReorderClient::connect_with("reorder", &lenient(dir.path()))
        .expect("connects with allow_mismatched_methods");
    assert_eq!(
        client.client().mismatched_methods(),
        pairs(&[("compare", &format!("parameter `info`: {REORDER_V2_V1}"))])
    );
    assert!(client.client().missing_methods().is_empty());

    let mut info = v1::reorder::MyInfo {
        red: 1.0,
        blue: 2.0,
        note: String::new(),
    };
    let before = info.clone();
    let detail = mismatch(client.compare(&mut info), "reorder");
    assert_eq!(
        detail,
        format!("method `compare`: parameter `info`: {REORDER_V2_V1}; the call was not sent")
    );
    assert_eq!(
        info, before,
        "a refused call leaves its &mut parameter alone"
    );

    // The matching methods work, and the service never executed `compare`.
    assert_eq!(client.ping(41).unwrap(), 42);
    assert_eq!(client.compared().unwrap(), 0);
}

/// What the check prevents: a client that skips it (a dynamic client wrapped in the typed one)
/// sends the same bytes, and the service reads red and blue swapped, without any error.
#[test]
fn without_the_check_a_reordered_struct_would_silently_swap_values() {
    let dir = TempDir::new().unwrap();
    let _v2 = start(dir.path(), "v2");
    let unchecked = v1::reorder::ReorderClient::from_client(
        Client::connect_dynamic("reorder", &options(dir.path())).unwrap(),
    );
    let mut info = v1::reorder::MyInfo {
        red: 1.0,
        blue: 2.0,
        note: String::new(),
    };
    // red (1) is not more than blue (2), but the service saw red 2, blue 1.
    assert!(unchecked.compare(&mut info).unwrap());
    assert_eq!(info.note, "red 2 blue 1");
    assert_eq!(unchecked.compared().unwrap(), 1);
}

// 2. A renamed field.

#[test]
fn a_renamed_field_is_refused_naming_the_field() {
    let dir = TempDir::new().unwrap();
    let _v2 = start(dir.path(), "v2");
    let detail = mismatch(
        v1::rename::RenameClient::connect_with("rename", &options(dir.path())),
        "rename",
    );
    let difference = "parameter `size`: `Size` field 1 is `depth: u32` in the service, \
                      `height: u32` in this client";
    assert_eq!(detail, format!("`area`: {difference}{HINT}"));

    let client = v1::rename::RenameClient::connect_with("rename", &lenient(dir.path())).unwrap();
    assert_eq!(
        client.client().mismatched_methods(),
        pairs(&[("area", difference)])
    );
    let size = v1::rename::Size {
        width: 2,
        height: 3,
    };
    mismatch(client.area(size), "rename");
    assert_eq!(client.ping(1).unwrap(), 2);
}

// 3. Changed field types.

#[test]
fn changed_field_types_are_refused_naming_both_types() {
    let dir = TempDir::new().unwrap();
    let _v2 = start(dir.path(), "v2");
    let detail = mismatch(
        v1::retype::RetypeClient::connect_with("retype", &options(dir.path())),
        "retype",
    );
    // Every mismatched method is listed, each with its first difference.
    let record = "parameter `reading`: `Reading` field 0 `value`: `f32` in the service, \
                  `f64` in this client";
    let totals = "result: `Totals` field 0 `count`: `u64` in the service, `u32` in this client";
    assert_eq!(
        detail,
        format!("`record`: {record}; `totals`: {totals}{HINT}")
    );

    let client = v1::retype::RetypeClient::connect_with("retype", &lenient(dir.path())).unwrap();
    assert_eq!(
        client.client().mismatched_methods(),
        pairs(&[("record", record), ("totals", totals)])
    );
    let reading = v1::retype::Reading {
        value: 1.5,
        times: 2,
    };
    mismatch(client.record(reading), "retype");
    mismatch(client.totals(), "retype");
    assert_eq!(client.ping(7).unwrap(), 8);
}

// 4. An added enum variant.

/// A result enum with a variant the client lacks is refused: the service may return that
/// variant, and the client could not decode it.
#[test]
fn an_added_variant_in_a_result_enum_is_refused_naming_the_variant() {
    let dir = TempDir::new().unwrap();
    let _v2 = start(dir.path(), "v2");
    let difference = "result: `Status` variant 2 `Stopped { code: i32 }` is in the service only";
    let detail = mismatch(
        v1::add_variant::AddVariantClient::connect_with("add-variant", &options(dir.path())),
        "add-variant",
    );
    assert_eq!(detail, format!("`status`: {difference}{HINT}"));

    let client =
        v1::add_variant::AddVariantClient::connect_with("add-variant", &lenient(dir.path()))
            .unwrap();
    assert_eq!(
        client.client().mismatched_methods(),
        pairs(&[("status", difference)])
    );
    mismatch(client.status(), "add-variant");
    assert_eq!(client.ping(0).unwrap(), 1);

    // What the refusal prevents: unchecked, the call reaches the service, which returns
    // `Stopped`, and this client cannot decode the reply.
    let unchecked = v1::add_variant::AddVariantClient::from_client(
        Client::connect_dynamic("add-variant", &options(dir.path())).unwrap(),
    );
    match unchecked.status() {
        Err(e @ Error::Protocol { .. }) => assert_eq!(
            e.to_string(),
            "protocol error with service `add-variant` in method `status`: cannot decode the \
             result: Serde Deserialization Error"
        ),
        other => panic!("expected a reply this client cannot decode, got {other:?}"),
    }
}

/// The comparison is symmetric: a client that knows one variant more than the service is
/// refused as well, although a service of v1 never returns it.
#[test]
fn a_variant_only_the_client_knows_is_refused_too() {
    let dir = TempDir::new().unwrap();
    let _v1 = start(dir.path(), "v1");
    let detail = mismatch(
        v2::add_variant::AddVariantClient::connect_with("add-variant", &options(dir.path())),
        "add-variant",
    );
    assert_eq!(
        detail,
        format!(
            "`status`: result: `Status` variant 2 `Stopped {{ code: i32 }}` is in this client \
             only{HINT}"
        )
    );
}

// 5. An added method.

#[test]
fn a_service_with_an_added_method_serves_an_older_client_fully() {
    let dir = TempDir::new().unwrap();
    let _v2 = start(dir.path(), "v2");
    let client =
        v1::add_method::AddMethodClient::connect_with("add-method", &options(dir.path())).unwrap();
    assert!(client.client().missing_methods().is_empty());
    assert!(client.client().mismatched_methods().is_empty());
    assert_eq!(client.add(2, 3).unwrap(), 5);
    assert_eq!(client.ping(9).unwrap(), 10);
    // The service announces the method this client does not know.
    assert!(client.client().interface().method("mul").is_some());
}

/// The newer client of the same change: it knows `mul`, the older service lacks it.
#[test]
fn a_client_with_an_added_method_connects_to_an_older_service_and_only_that_method_fails() {
    let dir = TempDir::new().unwrap();
    let _v1 = start(dir.path(), "v1");
    let client =
        v2::add_method::AddMethodClient::connect_with("add-method", &options(dir.path())).unwrap();
    assert_eq!(client.client().missing_methods(), vec!["mul".to_string()]);
    assert!(client.client().mismatched_methods().is_empty());
    assert_no_such_method(client.mul(2, 3), "add-method", "mul");
    assert_eq!(client.add(2, 3).unwrap(), 5);
    assert_eq!(client.ping(9).unwrap(), 10);
}

// 6. A removed method.

#[test]
fn a_removed_method_is_listed_as_missing_and_its_calls_are_no_such_method() {
    let dir = TempDir::new().unwrap();
    let _v2 = start(dir.path(), "v2");
    let client =
        v1::remove_method::RemoveMethodClient::connect_with("remove-method", &options(dir.path()))
            .unwrap();
    assert_eq!(
        client.client().missing_methods(),
        vec!["legacy".to_string()]
    );
    assert!(client.client().mismatched_methods().is_empty());
    assert_no_such_method(client.legacy(), "remove-method", "legacy");
    assert_eq!(client.ping(1).unwrap(), 2);

    // A newer client of an older service: the method it no longer has is no concern.
    let dir = TempDir::new().unwrap();
    let _v1 = start(dir.path(), "v1");
    let client =
        v2::remove_method::RemoveMethodClient::connect_with("remove-method", &options(dir.path()))
            .unwrap();
    assert!(client.client().missing_methods().is_empty());
    assert_eq!(client.ping(1).unwrap(), 2);
}

// Every other change, one method each.

/// `Changes` of v2 against a client of v1: (method, difference) for each refused change.
const CHANGES_V2_V1: [(&str, &str); 13] = [
    (
        "param_added",
        "it takes 2 parameters in the service, 1 parameter in this client",
    ),
    (
        "param_removed",
        "it takes 1 parameter in the service, 2 parameters in this client",
    ),
    (
        "params_reordered",
        "parameter 0 is `label: String` in the service, `count: u32` in this client",
    ),
    (
        "params_swapped",
        "parameter 0 is `den: i64` in the service, `num: i64` in this client",
    ),
    (
        "param_renamed",
        "parameter 0 is `y: u32` in the service, `x: u32` in this client",
    ),
    (
        "result_changed",
        "result: `i64` in the service, `u32` in this client",
    ),
    (
        "error_changed",
        "error type: `Refused` in the service, `String` in this client",
    ),
    (
        "now_fallible",
        "it returns `Result<u32, String>` in the service, `u32` in this client",
    ),
    (
        "type_renamed",
        "parameter `p`: `Couple` in the service, `Pair` in this client",
    ),
    (
        "field_added",
        "parameter `g`: `Grown` field 1 `b: u32` is in the service only",
    ),
    (
        "field_removed",
        "parameter `s`: `Shrunk` field 1 `b: u32` is in this client only",
    ),
    (
        "now_optional",
        "parameter `x`: `Option<u32>` in the service, `u32` in this client",
    ),
    (
        "wrapped",
        "parameter `m`: `Meters` in the service, `f64` in this client",
    ),
];

#[test]
fn every_other_change_gives_its_documented_result() {
    let dir = TempDir::new().unwrap();
    let _v2 = start(dir.path(), "v2");

    // Refused at connect, every incompatible method listed in declaration order.
    let detail = mismatch(
        v1::changes::ChangesClient::connect_with("changes", &options(dir.path())),
        "changes",
    );
    let listed: Vec<String> = CHANGES_V2_V1
        .iter()
        .map(|(m, d)| format!("`{m}`: {d}"))
        .collect();
    assert_eq!(detail, format!("{}{HINT}", listed.join("; ")));

    let client = v1::changes::ChangesClient::connect_with("changes", &lenient(dir.path())).unwrap();
    assert_eq!(client.client().mismatched_methods(), pairs(&CHANGES_V2_V1));

    // A renamed method is a removed one (and an added one the client does not know).
    assert_eq!(client.client().missing_methods(), vec!["hello".to_string()]);
    assert_no_such_method(client.hello(), "changes", "hello");

    // Each refused method fails without being sent.
    use v1::changes::{Grown, Pair, Shrunk, Spot};
    let not_sent = |r: Result<String, Error>| {
        let d = mismatch(r, "changes");
        assert!(d.ends_with("; the call was not sent"), "{d}");
    };
    not_sent(client.param_added(1).map(|v| v.to_string()));
    not_sent(client.param_removed(1, 2).map(|v| v.to_string()));
    not_sent(client.params_reordered(1, "x".into()));
    not_sent(client.result_changed().map(|v| v.to_string()));
    not_sent(client.error_changed(1).map(|v| format!("{v:?}")));
    not_sent(client.now_fallible(1).map(|v| v.to_string()));
    not_sent(
        client
            .type_renamed(Pair { a: 1, b: 2 })
            .map(|v| v.to_string()),
    );
    not_sent(client.field_added(Grown { a: 1 }).map(|v| v.to_string()));
    not_sent(
        client
            .field_removed(Shrunk { a: 1, b: 2 })
            .map(|v| v.to_string()),
    );
    not_sent(client.now_optional(1).map(|v| v.to_string()));
    not_sent(client.wrapped(1.0).map(|v| v.to_string()));

    // Two parameters of one type swapped, or a parameter renamed: their names differ, so the
    // values would go to the other parameter: refused, never sent.
    not_sent(client.params_swapped(10, 2).map(|v| v.to_string()));
    not_sent(client.param_renamed(4).map(|v| v.to_string()));

    // Compatible: unchanged, `String` taken as `&str`, a type and a field renamed in Rust with
    // `#[serde(rename)]` keeping the names that cross.
    assert_eq!(client.ping(1).unwrap(), 2);
    assert_eq!(client.borrowed("abc".into()).unwrap(), 3);
    assert_eq!(client.serde_renamed(Spot { x: 5, y: 2 }).unwrap(), 3);
}

#[test]
fn every_other_change_seen_from_a_newer_client() {
    let dir = TempDir::new().unwrap();
    let _v1 = start(dir.path(), "v1");
    let client = v2::changes::ChangesClient::connect_with("changes", &lenient(dir.path())).unwrap();
    let mismatched = client.client().mismatched_methods();
    let names: Vec<&str> = mismatched.iter().map(|(m, _)| m.as_str()).collect();
    let expected: Vec<&str> = CHANGES_V2_V1.iter().map(|(m, _)| *m).collect();
    assert_eq!(names, expected);
    // The sides swap: what is "in the service only" one way is "in this client only" the other.
    let field_added = &mismatched
        .iter()
        .find(|(m, _)| m == "field_added")
        .expect("field_added is mismatched")
        .1;
    assert_eq!(
        field_added,
        "parameter `g`: `Grown` field 1 `b: u32` is in this client only"
    );
    assert_eq!(
        client.client().missing_methods(),
        vec!["greeting".to_string()]
    );
    assert_no_such_method(client.greeting(), "changes", "greeting");
    assert_eq!(client.ping(1).unwrap(), 2);
    assert!(matches!(
        client.param_renamed(4),
        Err(Error::InterfaceMismatch { .. })
    ));
    assert_eq!(client.borrowed("abcd").unwrap(), 4);
    let place = v2::changes::Place { x: 5, height: 2 };
    assert_eq!(client.serde_renamed(place).unwrap(), 3);
}

// A different interface.

/// Another trait behind the name is refused whatever the options: methods are only compared
/// between two versions of one interface.
#[test]
fn another_interface_is_refused_even_allowing_mismatched_methods() {
    let dir = TempDir::new().unwrap();
    let _v1 = start(dir.path(), "v1");
    let expected = "the service implements interface `Reorder`, this client expects `Rename`";
    let detail = mismatch(
        v1::rename::RenameClient::connect_with("reorder", &options(dir.path())),
        "reorder",
    );
    assert_eq!(detail, expected);
    let detail = mismatch(
        v1::rename::RenameClient::connect_with("reorder", &lenient(dir.path())),
        "reorder",
    );
    assert_eq!(detail, expected);
}
