//! What `#[lpc::service]` generates, tested in one process: the interface descriptor, and the
//! dispatcher fed with encoded arguments directly (no connection, no runtime).

// `m<'a>` spells out its lifetime on purpose: the signature text keeps it.
#![allow(clippy::needless_lifetimes)]

use std::sync::atomic::{AtomicU32, Ordering};

use lpc::__private::postcard;
use lpc::{Dispatch, DispatchError};
use serde::{Deserialize, Serialize};

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
        .dispatch(id, &args, &mut reply)
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
        server.dispatch(0x7fff_fffe, &[], &mut reply),
        Err(DispatchError::NoSuchMethod)
    );
    assert_eq!(
        server.dispatch(lpc::RESERVED_METHOD_IDS, &[], &mut reply),
        Err(DispatchError::NoSuchMethod)
    );
}

#[test]
fn garbage_arguments() {
    let server = server();
    let mut reply = Vec::new();
    let add = lpc::method_id("add");
    // Truncated: one varint of two.
    let result = server.dispatch(add, &[0x02], &mut reply);
    assert!(
        matches!(result, Err(DispatchError::BadArguments(_))),
        "{result:?}"
    );
    // Not UTF-8 where a `&str` is expected.
    let get = lpc::method_id("get");
    let result = server.dispatch(get, &[2, 0xff, 0xfe], &mut reply);
    assert!(
        matches!(result, Err(DispatchError::BadArguments(_))),
        "{result:?}"
    );
    // A varint that never ends.
    let result = server.dispatch(add, &[0xff; 12], &mut reply);
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
