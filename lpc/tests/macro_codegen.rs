//! What `#[lpc::service]` generates, tested in one process: the interface descriptor, and the
//! dispatchers (`dispatch` with postcard, `dispatch_json` with JSON) fed with encoded arguments
//! directly (no connection, no runtime).

// `m<'a>` spells out its lifetime on purpose: the signature text keeps it.
#![allow(clippy::needless_lifetimes)]

use std::sync::atomic::{AtomicU32, Ordering};

use lpc::__private::postcard;
use lpc::{Dispatch, DispatchError};
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MyInfo {
    pub rounds: u32,
    pub note: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Verdict {
    Better,
    Worse,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum MyError {
    NotFound(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub x: i32,
    pub y: i32,
}

/// A calculator.
#[lpc::service]
pub trait Calc {
    /// Adds two numbers.
    fn add(&self, a: i32, b: i32) -> i32;
    /// Updates `info` and says how it went.
    fn compare(&self, info: &mut MyInfo) -> Verdict;
    fn name(&self) -> String;
    fn ping(&self);
    fn blur(&self, image: &[u8], width: u32) -> Vec<u8>;
    fn get(&self, key: &str) -> Result<Vec<String>, MyError>;
    fn m<'a>(&self, x: &'a [Option<u8>]) -> std::collections::HashMap<String, u32>;
    fn take(&self, bytes: Vec<u8>, point: &Point) -> usize;
    fn two_updates(&self, a: &mut u32, label: &str, b: &mut Vec<String>);
    fn bytes_and_update(&self, counter: &mut u64) -> Vec<u8>;
    fn pings(&self) -> u32;
}

#[derive(Default)]
struct MyCalc {
    pings: AtomicU32,
}

impl Calc for MyCalc {
    fn add(&self, a: i32, b: i32) -> i32 {
        a + b
    }

    fn compare(&self, info: &mut MyInfo) -> Verdict {
        info.rounds += 1;
        info.note.push_str(" seen");
        if info.rounds > 2 {
            Verdict::Better
        } else {
            Verdict::Worse
        }
    }

    fn name(&self) -> String {
        "calc".to_owned()
    }

    fn ping(&self) {
        self.pings.fetch_add(1, Ordering::Relaxed);
    }

    fn blur(&self, image: &[u8], width: u32) -> Vec<u8> {
        image.iter().map(|b| b.wrapping_add(width as u8)).collect()
    }

    fn get(&self, key: &str) -> Result<Vec<String>, MyError> {
        match key {
            "fruit" => Ok(vec!["apple".to_owned(), "pear".to_owned()]),
            other => Err(MyError::NotFound(other.to_owned())),
        }
    }

    fn m<'a>(&self, x: &'a [Option<u8>]) -> std::collections::HashMap<String, u32> {
        x.iter()
            .map(|v| (format!("{v:?}"), u32::from(v.unwrap_or(0))))
            .collect()
    }

    fn take(&self, bytes: Vec<u8>, point: &Point) -> usize {
        bytes.len() + (point.x + point.y) as usize
    }

    fn two_updates(&self, a: &mut u32, label: &str, b: &mut Vec<String>) {
        *a *= 10;
        b.push(label.to_owned());
    }

    fn bytes_and_update(&self, counter: &mut u64) -> Vec<u8> {
        *counter += 1;
        vec![0xff; *counter as usize]
    }

    fn pings(&self) -> u32 {
        self.pings.load(Ordering::Relaxed)
    }
}

/// Dispatches `method` with `args` (a tuple, encoded here) and returns the reply bytes.
fn call<A: Serialize>(server: &impl Dispatch, method: &str, args: &A) -> Vec<u8> {
    let id = CALC_INTERFACE
        .method_by_name(method)
        .unwrap_or_else(|| panic!("no method {method}"))
        .id;
    let args = postcard::to_allocvec(args).expect("encode args");
    let mut reply = Vec::new();
    server
        .dispatch(
            id,
            lpc::EncodedArgs::from_bytes(&args),
            &mut lpc::EncodedReply::to_vec(&mut reply),
        )
        .unwrap_or_else(|e| panic!("{method}: {e:?}"));
    reply
}

fn decode<'a, T: Deserialize<'a>>(reply: &'a [u8]) -> T {
    postcard::from_bytes(reply).expect("decode reply")
}

fn server() -> CalcServer<MyCalc> {
    CalcServer::new(MyCalc::default())
}

#[test]
fn add() {
    let server = server();
    let reply = call(&server, "add", &(10i32, 20i32));
    assert_eq!(decode::<i32>(&reply), 30);
}

#[test]
fn mut_parameter_is_written_back() {
    let server = server();
    let info = MyInfo {
        rounds: 2,
        note: "x".to_owned(),
    };
    let reply = call(&server, "compare", &(&info,));
    let (verdict, info): (Verdict, MyInfo) = decode(&reply);
    assert_eq!(verdict, Verdict::Better);
    assert_eq!(
        info,
        MyInfo {
            rounds: 3,
            note: "x seen".to_owned()
        }
    );
}

#[test]
fn several_mut_parameters_and_unit_return() {
    let server = server();
    let reply = call(
        &server,
        "two_updates",
        &(7u32, "label", vec!["a".to_owned()]),
    );
    let ((), a, b): ((), u32, Vec<String>) = decode(&reply);
    assert_eq!(a, 70);
    assert_eq!(b, ["a", "label"]);
}

#[test]
fn byte_return_with_mut_parameter() {
    let server = server();
    let reply = call(&server, "bytes_and_update", &(2u64,));
    let (bytes, counter): (lpc::__private::serde_bytes::ByteBuf, u64) = decode(&reply);
    assert_eq!(bytes.into_vec(), [0xff; 3]);
    assert_eq!(counter, 3);
}

#[test]
fn zero_arguments() {
    let server = server();
    assert_eq!(decode::<String>(&call(&server, "name", &())), "calc");
    let reply = call(&server, "ping", &());
    decode::<()>(&reply);
    call(&server, "ping", &());
    assert_eq!(decode::<u32>(&call(&server, "pings", &())), 2);
}

#[test]
fn result_return() {
    let server = server();
    let reply = call(&server, "get", &("fruit",));
    assert_eq!(
        decode::<Result<Vec<String>, MyError>>(&reply),
        Ok(vec!["apple".to_owned(), "pear".to_owned()])
    );
    let reply = call(&server, "get", &("meat",));
    assert_eq!(
        decode::<Result<Vec<String>, MyError>>(&reply),
        Err(MyError::NotFound("meat".to_owned()))
    );
}

#[test]
fn bytes_round_trip() {
    use lpc::__private::serde_bytes::{ByteBuf, Bytes};
    let server = server();
    let image: Vec<u8> = (0..=255).collect();
    // Sent as the generated client sends it: raw bytes.
    let reply = call(&server, "blur", &(Bytes::new(&image), 1u32));
    let expected: Vec<u8> = image.iter().map(|b| b.wrapping_add(1)).collect();
    assert_eq!(decode::<ByteBuf>(&reply).into_vec(), expected);
    // postcard encodes `&[u8]` as a sequence of bytes the same way.
    let reply = call(&server, "blur", &(&image[..], 1u32));
    assert_eq!(decode::<Vec<u8>>(&reply), expected);

    let reply = call(
        &server,
        "take",
        &(Bytes::new(&[1, 2, 3]), Point { x: 10, y: 20 }),
    );
    assert_eq!(decode::<usize>(&reply), 33);
}

#[test]
fn slice_of_options() {
    let server = server();
    let reply = call(&server, "m", &(vec![Some(3u8), None],));
    let map: std::collections::HashMap<String, u32> = decode(&reply);
    assert_eq!(map["Some(3)"], 3);
    assert_eq!(map["None"], 0);
}

#[test]
fn unknown_method() {
    let server = server();
    let mut reply = Vec::new();
    assert_eq!(
        server.dispatch(
            0x7fff_fffe,
            lpc::EncodedArgs::from_bytes(&[]),
            &mut lpc::EncodedReply::to_vec(&mut reply)
        ),
        Err(DispatchError::NoSuchMethod)
    );
    assert_eq!(
        server.dispatch(
            lpc::RESERVED_METHOD_IDS,
            lpc::EncodedArgs::from_bytes(&[]),
            &mut lpc::EncodedReply::to_vec(&mut reply)
        ),
        Err(DispatchError::NoSuchMethod)
    );
}

#[test]
fn garbage_arguments() {
    let server = server();
    let mut reply = Vec::new();
    let add = lpc::method_id("add");
    // Truncated: one varint of two.
    let result = server.dispatch(
        add,
        lpc::EncodedArgs::from_bytes(&[0x02]),
        &mut lpc::EncodedReply::to_vec(&mut reply),
    );
    assert!(
        matches!(result, Err(DispatchError::BadArguments(_))),
        "{result:?}"
    );
    // Not UTF-8 where a `&str` is expected.
    let get = lpc::method_id("get");
    let result = server.dispatch(
        get,
        lpc::EncodedArgs::from_bytes(&[2, 0xff, 0xfe]),
        &mut lpc::EncodedReply::to_vec(&mut reply),
    );
    assert!(
        matches!(result, Err(DispatchError::BadArguments(_))),
        "{result:?}"
    );
    // A varint that never ends.
    let result = server.dispatch(
        add,
        lpc::EncodedArgs::from_bytes(&[0xff; 12]),
        &mut lpc::EncodedReply::to_vec(&mut reply),
    );
    assert!(
        matches!(result, Err(DispatchError::BadArguments(_))),
        "{result:?}"
    );
}

#[test]
fn dispatcher_serves_its_interface() {
    let server = server();
    assert!(std::ptr::eq(server.interface(), &CALC_INTERFACE));
    assert_eq!(server.inner().pings(), 0);
}

const SIGNATURES: &[&str] = &[
    "fn add(&self, a: i32, b: i32) -> i32",
    "fn compare(&self, info: &mut MyInfo) -> Verdict",
    "fn name(&self) -> String",
    "fn ping(&self)",
    "fn blur(&self, image: &[u8], width: u32) -> Vec<u8>",
    "fn get(&self, key: &str) -> Result<Vec<String>, MyError>",
    "fn m<'a>(&self, x: &'a [Option<u8>]) -> std::collections::HashMap<String, u32>",
    "fn take(&self, bytes: Vec<u8>, point: &Point) -> usize",
    "fn two_updates(&self, a: &mut u32, label: &str, b: &mut Vec<String>)",
    "fn bytes_and_update(&self, counter: &mut u64) -> Vec<u8>",
    "fn pings(&self) -> u32",
];

/// The fingerprint as documented: FNV-1a 64 over the trait name, then "\n" + each signature.
fn fingerprint(name: &str, signatures: &[&str]) -> u64 {
    let mut text = name.to_owned();
    for signature in signatures {
        text.push('\n');
        text.push_str(signature);
    }
    lpc::fnv1a64(text.as_bytes())
}

#[test]
fn interface_descriptor() {
    assert_eq!(CALC_INTERFACE.name, "Calc");
    let names: Vec<&str> = CALC_INTERFACE.methods.iter().map(|m| m.name).collect();
    assert_eq!(
        names,
        [
            "add",
            "compare",
            "name",
            "ping",
            "blur",
            "get",
            "m",
            "take",
            "two_updates",
            "bytes_and_update",
            "pings"
        ]
    );
    let signatures: Vec<&str> = CALC_INTERFACE.methods.iter().map(|m| m.signature).collect();
    assert_eq!(signatures, SIGNATURES);
    for method in CALC_INTERFACE.methods {
        assert_eq!(method.id, lpc::method_id(method.name), "{}", method.name);
        assert!(method.id < lpc::RESERVED_METHOD_IDS);
    }
    assert_eq!(CALC_INTERFACE.fingerprint, fingerprint("Calc", SIGNATURES));
}

/// The same trait as `Calc` with one signature changed.
#[allow(dead_code)]
mod changed {
    use super::{MyError, MyInfo, Point, Verdict};

    #[lpc::service]
    pub trait Calc {
        fn add(&self, a: i64, b: i32) -> i32;
        fn compare(&self, info: &mut MyInfo) -> Verdict;
        fn name(&self) -> String;
        fn ping(&self);
        fn blur(&self, image: &[u8], width: u32) -> Vec<u8>;
        fn get(&self, key: &str) -> Result<Vec<String>, MyError>;
        fn m<'a>(&self, x: &'a [Option<u8>]) -> std::collections::HashMap<String, u32>;
        fn take(&self, bytes: Vec<u8>, point: &Point) -> usize;
        fn two_updates(&self, a: &mut u32, label: &str, b: &mut Vec<String>);
        fn bytes_and_update(&self, counter: &mut u64) -> Vec<u8>;
        fn pings(&self) -> u32;
    }
}

/// `Calc` renamed.
#[allow(dead_code)]
mod renamed {
    #[lpc::service]
    pub trait Calculator {
        fn add(&self, a: i32, b: i32) -> i32;
    }
}

/// Spacing and parameter names as written do not matter beyond the signature text; docs and
/// attributes do not count.
#[allow(dead_code)]
mod respaced {
    #[lpc::service]
    #[rustfmt::skip]
    pub trait Calc {
        /// Docs do not count.
        fn add ( & self , a : i32 , b : i32 ) -> i32 ;
    }
}

#[allow(dead_code)]
mod original {
    #[lpc::service]
    pub trait Calc {
        fn add(&self, a: i32, b: i32) -> i32;
    }
}

#[test]
fn fingerprint_follows_signatures() {
    assert_ne!(
        changed::CALC_INTERFACE.fingerprint,
        CALC_INTERFACE.fingerprint
    );
    assert_eq!(
        changed::CALC_INTERFACE.methods[0].signature,
        "fn add(&self, a: i64, b: i32) -> i32"
    );
    let mut signatures = SIGNATURES.to_vec();
    signatures[0] = "fn add(&self, a: i64, b: i32) -> i32";
    assert_eq!(
        changed::CALC_INTERFACE.fingerprint,
        fingerprint("Calc", &signatures)
    );
    assert_ne!(
        renamed::CALCULATOR_INTERFACE.fingerprint,
        original::CALC_INTERFACE.fingerprint
    );
    assert_eq!(
        respaced::CALC_INTERFACE.fingerprint,
        original::CALC_INTERFACE.fingerprint
    );
    assert_eq!(
        original::CALC_INTERFACE.fingerprint,
        fingerprint("Calc", &["fn add(&self, a: i32, b: i32) -> i32"])
    );
}

/// The client type exists with the documented API (not called: it needs a running service).
#[test]
fn client_api_shape() {
    fn _compiles(client: &CalcClient) -> Result<(), lpc::Error> {
        let _: CalcClient = client.with_timeout(std::time::Duration::from_millis(5));
        let _: &lpc::Client = client.client();
        let _: CalcClient = CalcClient::from_client(client.client().clone());
        let _: Result<CalcClient, lpc::Error> = CalcClient::connect("calc");
        let _: Result<CalcClient, lpc::Error> =
            CalcClient::connect_with("calc", &lpc::ClientOptions::default());
        let _: i32 = client.add(1, 2)?;
        let mut info = MyInfo {
            rounds: 0,
            note: String::new(),
        };
        let _: Verdict = client.compare(&mut info)?;
        let _: String = client.name()?;
        client.ping()?;
        let _: Vec<u8> = client.blur(&[1, 2], 3)?;
        let _: Result<Vec<String>, MyError> = client.get("k")?;
        let _: std::collections::HashMap<String, u32> = client.m(&[Some(1)])?;
        let _: usize = client.take(vec![1], &Point { x: 1, y: 2 })?;
        let mut a = 1;
        let mut b = Vec::new();
        client.two_updates(&mut a, "x", &mut b)?;
        let mut counter = 0;
        let _: Vec<u8> = client.bytes_and_update(&mut counter)?;
        Ok(())
    }
    let _ = _compiles;
}

// ---- `dispatch_json` ----

/// Dispatches `method` with the JSON text `args` and returns the parsed JSON reply, or the error.
fn call_json_raw(
    server: &impl Dispatch,
    method: &str,
    args: &[u8],
) -> Result<serde_json::Value, DispatchError> {
    let id = server
        .interface()
        .method_by_name(method)
        .unwrap_or_else(|| panic!("no method {method}"))
        .id;
    let mut reply = Vec::new();
    server.dispatch_json(id, args, &mut reply)?;
    Ok(serde_json::from_slice(&reply).expect("the reply is JSON"))
}

/// Dispatches `method` with `args` (a JSON value) and returns the parsed JSON reply.
fn call_json(server: &impl Dispatch, method: &str, args: serde_json::Value) -> serde_json::Value {
    let args = serde_json::to_vec(&args).expect("encode args");
    call_json_raw(server, method, &args).unwrap_or_else(|e| panic!("{method}: {e:?}"))
}

/// The message of the `BadArguments` error that `args` (JSON text) gives.
fn bad_json(server: &impl Dispatch, method: &str, args: &str) -> String {
    match call_json_raw(server, method, args.as_bytes()) {
        Err(DispatchError::BadArguments(message)) => message,
        other => panic!("{method}({args}): expected BadArguments, got {other:?}"),
    }
}

#[test]
fn json_positional_and_named_arguments() {
    let server = server();
    assert_eq!(
        call_json(&server, "add", json!([10, 20])),
        json!({"result": 30})
    );
    assert_eq!(
        call_json(&server, "add", json!({"b": 2, "a": 40})),
        json!({"result": 42})
    );
}

#[test]
fn json_mut_parameter_comes_back_in_out() {
    let server = server();
    assert_eq!(
        call_json(&server, "compare", json!([{"rounds": 2, "note": "x"}])),
        json!({"result": "Better", "out": {"info": {"rounds": 3, "note": "x seen"}}})
    );
    assert_eq!(
        call_json(
            &server,
            "compare",
            json!({"info": {"rounds": 0, "note": ""}})
        ),
        json!({"result": "Worse", "out": {"info": {"rounds": 1, "note": " seen"}}})
    );
    // Several `&mut` parameters, in order, and a `()` return as `null`.
    assert_eq!(
        call_json(&server, "two_updates", json!([7, "label", ["a"]])),
        json!({"result": null, "out": {"a": 70, "b": ["a", "label"]}})
    );
    // Bytes returned with an update.
    assert_eq!(
        call_json(&server, "bytes_and_update", json!([2])),
        json!({"result": [255, 255, 255], "out": {"counter": 3}})
    );
}

#[test]
fn json_result_method_gives_result_or_error() {
    let server = server();
    assert_eq!(
        call_json(&server, "get", json!(["fruit"])),
        json!({"result": ["apple", "pear"]})
    );
    assert_eq!(
        call_json(&server, "get", json!({"key": "meat"})),
        json!({"error": {"NotFound": "meat"}})
    );
}

#[test]
fn json_bytes_are_arrays_of_numbers() {
    let server = server();
    assert_eq!(
        call_json(&server, "blur", json!([[0, 1, 255], 1])),
        json!({"result": [1, 2, 0]})
    );
    assert_eq!(
        call_json(&server, "take", json!([[1, 2, 3], {"x": 10, "y": 20}])),
        json!({"result": 33})
    );
    let message = bad_json(&server, "blur", r#"[[256], 1]"#);
    assert!(message.contains("argument `image` (&[u8])"), "{message}");
}

#[test]
fn json_strings_and_slices() {
    let extras = extras();
    assert_eq!(
        call_json(&extras, "join", json!([["a", "b", "c"], "-"])),
        json!({"result": "a-b-c"})
    );
    assert_eq!(
        call_json(&extras, "join", json!({"parts": [], "sep": ","})),
        json!({"result": ""})
    );
    // A slice of options, into a map.
    let reply = call_json(&server(), "m", json!([[3, null]]));
    assert_eq!(reply, json!({"result": {"Some(3)": 3, "None": 0}}));
}

#[test]
fn json_borrowed_parameter_types() {
    let server = extras();
    assert_eq!(
        call_json(&server, "borrowed", json!(["four", ["a", "bc"]])),
        json!({"result": 7})
    );
    assert_eq!(
        call_json(&server, "borrowed", json!([null, []])),
        json!({"result": 0})
    );
    assert_eq!(
        call_json(&server, "cow", json!(["text"])),
        json!({"result": "TEXT"})
    );
    // The message has the same form as for owned types.
    let message = bad_json(&server, "borrowed", r#"[5, []]"#);
    assert!(
        message.starts_with("argument `text` (Option<&'a str>): "),
        "{message}"
    );
    // `std::result::Result` is a `Result` too.
    assert_eq!(
        call_json(&server, "check", json!([0])),
        json!({"error": {"NotFound": "zero"}})
    );
    assert_eq!(
        call_json(&server, "check", json!([4])),
        json!({"result": 2})
    );
}

#[test]
fn json_zero_arguments() {
    let server = server();
    assert_eq!(
        call_json(&server, "name", json!([])),
        json!({"result": "calc"})
    );
    assert_eq!(
        call_json(&server, "ping", json!({})),
        json!({"result": null})
    );
    assert_eq!(
        call_json(&server, "ping", json!(null)),
        json!({"result": null})
    );
    assert_eq!(call_json(&server, "pings", json!([])), json!({"result": 2}));
}

#[test]
fn json_bad_arguments() {
    let server = server();
    let message = bad_json(&server, "add", "[1]");
    assert!(
        message.contains("takes 2 arguments (a: i32, b: i32), got 1"),
        "{message}"
    );
    let message = bad_json(&server, "add", r#"[1, "two"]"#);
    assert!(message.contains("argument `b` (i32)"), "{message}");
    let message = bad_json(&server, "add", r#"{"a": 1}"#);
    assert!(message.contains("is missing"), "{message}");
    assert!(message.contains("`b`"), "{message}");
    let message = bad_json(&server, "add", r#"{"a": 1, "b": 2, "c": 3}"#);
    assert!(message.contains("there is no parameter"), "{message}");
    assert!(message.contains("`c`"), "{message}");
    let message = bad_json(&server, "add", "1, 2");
    assert!(message.contains("not valid JSON"), "{message}");
    let message = bad_json(&server, "compare", r#"[{"rounds": -1, "note": ""}]"#);
    assert!(
        message.contains("argument `info` (&mut MyInfo)"),
        "{message}"
    );
    let message = bad_json(&server, "name", "[1]");
    assert!(message.contains("takes 0 arguments (), got 1"), "{message}");
}

#[test]
fn json_unknown_method() {
    let server = server();
    let mut reply = Vec::new();
    assert_eq!(
        server.dispatch_json(0x7fff_fffe, b"[]", &mut reply),
        Err(DispatchError::NoSuchMethod)
    );
    assert_eq!(
        server.dispatch_json(lpc::RESERVED_METHOD_IDS, b"[]", &mut reply),
        Err(DispatchError::NoSuchMethod)
    );
    assert!(reply.is_empty());
}

#[test]
fn descriptor_parameters_and_output() {
    let params = |name: &str| -> Vec<(&str, &str, bool)> {
        CALC_INTERFACE
            .method_by_name(name)
            .expect("method")
            .params
            .iter()
            .map(|p| (p.name, p.ty, p.out))
            .collect()
    };
    let method = |name: &str| CALC_INTERFACE.method_by_name(name).expect("method");

    assert_eq!(params("add"), [("a", "i32", false), ("b", "i32", false)]);
    assert_eq!(method("add").output, "i32");
    assert!(!method("add").returns_result);

    assert_eq!(params("compare"), [("info", "&mut MyInfo", true)]);
    assert_eq!(method("compare").output, "Verdict");

    assert_eq!(params("ping"), []);
    assert_eq!(method("ping").output, "()");
    assert!(!method("ping").returns_result);

    assert_eq!(
        params("blur"),
        [("image", "&[u8]", false), ("width", "u32", false)]
    );
    assert_eq!(method("blur").output, "Vec<u8>");

    assert_eq!(params("get"), [("key", "&str", false)]);
    assert_eq!(method("get").output, "Result<Vec<String>, MyError>");
    assert!(method("get").returns_result);

    assert_eq!(params("m"), [("x", "&'a [Option<u8>]", false)]);
    assert_eq!(method("m").output, "std::collections::HashMap<String, u32>");

    assert_eq!(
        params("two_updates"),
        [
            ("a", "&mut u32", true),
            ("label", "&str", false),
            ("b", "&mut Vec<String>", true)
        ]
    );
    assert_eq!(method("two_updates").output, "()");

    let extras = |name: &str| EXTRAS_INTERFACE.method_by_name(name).expect("method");
    assert!(extras("check").returns_result);
    assert_eq!(extras("check").output, "std::result::Result<u8, MyError>");
    assert!(!extras("not_a_result").returns_result);
    assert_eq!(extras("unit").output, "()");
    let raw = extras("match");
    assert_eq!(raw.params[0].name, "type");
    assert_eq!(raw.params[0].ty, "u8");

    // The owned copy carries the same.
    let info = CALC_INTERFACE.info().expect("shapes");
    let two = info.method("two_updates").expect("method");
    assert_eq!(two.params[2].name, "b");
    assert!(two.params[2].out);
    assert!(info.method("get").expect("method").returns_result);

    // And the shapes of what crosses, as the service decodes it.
    use lpc::shape::Shape;
    let extras = EXTRAS_INTERFACE.info().expect("shapes");
    let join = extras.method("join").expect("method");
    assert_eq!(join.params[0].shape, Shape::Seq(Box::new(Shape::Str)));
    assert_eq!(join.params[1].shape, Shape::Str);
    assert_eq!(join.result, Shape::Str);
    let borrowed = extras.method("borrowed").expect("method");
    assert_eq!(
        borrowed.params[0].shape,
        Shape::Option(Box::new(Shape::Str))
    );
    let check = extras.method("check").expect("method");
    assert_eq!(
        (&check.result, &check.error),
        (&Shape::U8, &Some(Shape::Named("MyError".into())))
    );
    let nested = extras.method("not_a_result").expect("method");
    assert_eq!(
        nested.result,
        Shape::Option(Box::new(Shape::Result {
            ok: Box::new(Shape::U8),
            err: Box::new(Shape::Named("MyError".into()))
        }))
    );
    assert!(extras.types.contains_key("MyError"));
    assert_eq!(extras.method("unit").expect("method").result, Shape::Unit);
}

/// Parameter and return types the JSON dispatcher handles specially.
#[lpc::service]
pub trait Extras {
    fn join(&self, parts: &[String], sep: &str) -> String;
    fn borrowed<'a>(&self, text: Option<&'a str>, items: &'a [&'a str]) -> usize;
    fn cow(&self, text: std::borrow::Cow<'_, str>) -> String;
    fn check(&self, n: u8) -> std::result::Result<u8, MyError>;
    fn not_a_result(&self) -> Option<Result<u8, MyError>>;
    fn unit(&self) -> ();
    fn r#match(&self, r#type: u8) -> u8;
}

struct MyExtras;

impl Extras for MyExtras {
    fn join(&self, parts: &[String], sep: &str) -> String {
        parts.join(sep)
    }

    fn borrowed<'a>(&self, text: Option<&'a str>, items: &'a [&'a str]) -> usize {
        text.map_or(0, str::len) + items.iter().map(|s| s.len()).sum::<usize>()
    }

    fn cow(&self, text: std::borrow::Cow<'_, str>) -> String {
        text.to_uppercase()
    }

    fn check(&self, n: u8) -> std::result::Result<u8, MyError> {
        match n {
            0 => Err(MyError::NotFound("zero".to_owned())),
            n => Ok(n / 2),
        }
    }

    fn not_a_result(&self) -> Option<Result<u8, MyError>> {
        Some(Ok(1))
    }

    fn unit(&self) {}

    fn r#match(&self, r#type: u8) -> u8 {
        r#type
    }
}

fn extras() -> ExtrasServer<MyExtras> {
    ExtrasServer::new(MyExtras)
}

#[test]
fn json_extras_round_trip() {
    let server = extras();
    assert_eq!(
        call_json(&server, "not_a_result", json!([])),
        json!({"result": {"Ok": 1}})
    );
    assert_eq!(
        call_json(&server, "unit", json!([])),
        json!({"result": null})
    );
    assert_eq!(
        call_json(&server, "match", json!({"type": 9})),
        json!({"result": 9})
    );
    // The postcard dispatcher still borrows what it can.
    let id = lpc::method_id("borrowed");
    let args = postcard::to_allocvec(&(Some("ab"), &["c"][..])).expect("encode");
    let mut reply = Vec::new();
    server
        .dispatch(
            id,
            lpc::EncodedArgs::from_bytes(&args),
            &mut lpc::EncodedReply::to_vec(&mut reply),
        )
        .expect("dispatch");
    assert_eq!(decode::<usize>(&reply), 3);
}
