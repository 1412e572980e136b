//! The seed corpus: small valid inputs of each target, so that the fuzzer starts past the
//! decoders' first checks. `cargo run --example gen_corpus` (in `fuzz/`) writes them to
//! `fuzz/corpus/<target>/`.
//!
//! The handshake messages are private to lpc; the structs here mirror their field order
//! (postcard is not self-describing, so the same order gives the same bytes). The frame layout
//! is the one documented in `lpc/src/wire/frame.rs`.

use std::collections::BTreeMap;
use std::time::Duration;

use lpc::info::{ClientInfo, LatencyHistogram, MethodStats, ServiceInfo};
use lpc::{Dispatch, InterfaceDescriptor};
use serde::Serialize;

use crate::{Inner, Kind, Outer, Point, Services};

/// Mirror of lpc's `Hello`.
#[derive(Serialize)]
struct Hello {
    service: String,
    interface: Option<(String, u64)>,
    max_reply: u64,
}

/// Mirror of lpc's `Welcome`.
#[derive(Serialize)]
struct Welcome {
    service: String,
    interface: lpc::InterfaceInfo,
    slot_count: u32,
    slot_size: u32,
    queue_size: u32,
    max_request: u64,
    token: u64,
}

/// Mirror of lpc's `RefusalKind`.
#[derive(Serialize)]
enum RefusalKind {
    Protocol,
    Denied,
    Busy,
}

/// Mirror of lpc's `Refusal`.
#[derive(Serialize)]
struct Refusal {
    kind: RefusalKind,
    reason: String,
}

/// The protocol version lpc speaks (`PROTOCOL_VERSION` in `lpc/src/wire/handshake.rs`).
const VERSION: u32 = 3;

/// `tag` and the protocol version, followed by the postcard encoding of `body`.
fn message<T: Serialize + ?Sized>(tag: u8, body: &T) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend(postcard::to_stdvec(body).expect("seeds encode"));
    out
}

/// A query answer about the calc example.
fn info() -> ServiceInfo {
    let calc = &lpc_examples::calc::CALC_INTERFACE;
    ServiceInfo {
        service: "calc".into(),
        pid: Some(1234),
        user: "1000".into(),
        uptime: Duration::from_millis(1500),
        interface: calc.info().expect("the examples trace").clone(),
        connections: 1,
        clients: vec![ClientInfo {
            pid: Some(4321),
            user: "1000".into(),
            gid: Some(1000),
            process: "calc-client".into(),
            connected_for: Duration::from_secs(3),
            calls: 7,
        }],
        methods: calc
            .methods
            .iter()
            .map(|m| MethodStats {
                name: m.name.into(),
                calls: 3,
                errors: 1,
                latency: LatencyHistogram {
                    buckets: vec![0, 1, 2],
                },
            })
            .collect(),
        unknown_calls: 2,
    }
}

/// Seeds of the `handshake` target: one valid message of each kind.
pub fn handshake() -> Vec<(String, Vec<u8>)> {
    let calc = &lpc_examples::calc::CALC_INTERFACE;
    let hello = |interface: Option<&InterfaceDescriptor>| Hello {
        service: "calc".into(),
        interface: interface.map(|i| (i.name.to_owned(), i.fingerprint)),
        max_reply: 1 << 30,
    };
    let welcome = |interface: &InterfaceDescriptor| Welcome {
        service: "calc".into(),
        interface: interface.info().expect("the examples trace").clone(),
        slot_count: 4,
        slot_size: 4096,
        queue_size: 0,
        max_request: 1 << 30,
        token: 0x1234_5678_9abc_def0,
    };
    let info = info();
    let refusal = |kind, reason: &str| Refusal {
        kind,
        reason: reason.into(),
    };
    vec![
        ("hello".into(), message(1, &hello(Some(calc)))),
        ("hello-no-interface".into(), message(1, &hello(None))),
        ("welcome-calc".into(), message(2, &welcome(calc))),
        (
            "welcome-compare".into(),
            message(2, &welcome(&lpc_examples::compare::COMPARE_INTERFACE)),
        ),
        (
            "refused-protocol".into(),
            message(3, &refusal(RefusalKind::Protocol, "interface mismatch")),
        ),
        (
            "refused-denied".into(),
            message(3, &refusal(RefusalKind::Denied, "uid 1001 not admitted")),
        ),
        (
            "refused-busy".into(),
            message(3, &refusal(RefusalKind::Busy, "too many clients")),
        ),
        ("spill".into(), message(4, &(3u32, 9u32))),
        ("query".into(), message(5, &())),
        ("bulk".into(), message(7, &2u32)),
        ("info".into(), message(6, &info)),
    ]
}

/// A frame header, laid out as `lpc/src/wire/frame.rs` documents.
fn frame(method: u32, flags: u32, call_id: u64, len: u64, generation: u32, status: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(lpc::testing::FRAME_SIZE);
    out.extend(method.to_le_bytes());
    out.extend(flags.to_le_bytes());
    out.extend(call_id.to_le_bytes());
    out.extend(len.to_le_bytes());
    out.extend(generation.to_le_bytes());
    out.extend(status.to_le_bytes());
    out.extend(0u64.to_le_bytes());
    assert_eq!(out.len(), lpc::testing::FRAME_SIZE);
    out
}

/// Seeds of the `frame` target: requests and replies with each flag and status.
pub fn frames() -> Vec<(String, Vec<u8>)> {
    let add = lpc_examples::calc::CALC_INTERFACE.methods[0].id;
    let mut seeds = vec![
        ("request".into(), frame(add, 0, 1, 8, 0, 0)),
        ("request-spill".into(), frame(add, 1, 2, 1 << 20, 3, 0)),
        ("request-json".into(), frame(add, 2, 3, 12, 0, 0)),
        ("request-oneway".into(), frame(add, 4, 4, 8, 0, 0)),
    ];
    for status in 0..=5u32 {
        seeds.push((
            format!("reply-status-{status}"),
            frame(add, 0, 5, 4, 0, status),
        ));
    }
    let mut deadline = frame(add, 0, 6, 8, 0, 0);
    deadline[32..40].copy_from_slice(&123_456_789u64.to_le_bytes());
    seeds.push(("request-deadline".into(), deadline));
    seeds
}

/// The selector byte of method `method` of service `service` (0 Calc, 1 Compare, 2 Kitchen).
fn selector(services: &Services, service: usize, method: &str) -> u8 {
    let interface = services.interfaces()[service];
    let index = interface
        .methods
        .iter()
        .position(|m| m.name == method)
        .expect("a method of the interface");
    u8::try_from(index * 4 + service).expect("a small interface")
}

/// The postcard encoding of an argument tuple.
fn pc<T: Serialize>(args: &T) -> Vec<u8> {
    postcard::to_stdvec(args).expect("seeds encode")
}

/// A sample nested record.
fn outer() -> Outer {
    Outer {
        id: 7,
        name: "rec".into(),
        inner: Inner {
            tag: Some("t".into()),
            weights: vec![0.5, 1.5],
            flag: true,
        },
        children: vec![Inner::default()],
        kind: Kind::Struct {
            a: 1,
            b: Some("b".into()),
        },
        pair: (-1, 2),
        counts: BTreeMap::from([("a".to_owned(), 1)]),
    }
}

/// Seeds of the `dispatch` target: each method with valid postcard and JSON arguments, and a
/// few raw method ids.
pub fn dispatch() -> Vec<(String, Vec<u8>)> {
    let services = Services::default();
    let with = |service: usize, method: &str, args: Vec<u8>| {
        let mut input = vec![selector(&services, service, method)];
        input.extend(args);
        input
    };
    let json = |text: &str| text.as_bytes().to_vec();
    let bytes = |b: &[u8]| serde_bytes::ByteBuf::from(b.to_vec());
    let point = Point { x: 1, y: 2 };
    let info = lpc_examples::compare::MyInfo {
        red: 2.1,
        blue: 0.9,
    };
    let outer_json = serde_json::to_string(&outer()).expect("seeds encode");
    let mut seeds: Vec<(String, Vec<u8>)> = vec![
        ("calc-add".into(), with(0, "add", pc(&(10i32, 20i32)))),
        ("calc-add-json".into(), with(0, "add", json("[10, 20]"))),
        (
            "calc-checked_div".into(),
            with(0, "checked_div", pc(&(7i32, 0i32))),
        ),
        (
            "calc-checked_div-json".into(),
            with(0, "checked_div", json(r#"{"a": -2147483648, "b": -1}"#)),
        ),
        ("calc-sum".into(), with(0, "sum", pc(&(vec![1i64, -2, 3],)))),
        ("calc-sum-json".into(), with(0, "sum", json("[[1, 2, 3]]"))),
        // Found by the fuzzer: `Calculator::sum` overflowed (see `KNOWN_SUM_OVERFLOW`).
        (
            "calc-sum-overflow".into(),
            with(0, "sum", pc(&(vec![i64::MAX, 1],))),
        ),
        (
            "calc-sum-overflow-json".into(),
            with(0, "sum", json("[[9223372036854775807, 1]]")),
        ),
        (
            "compare-compare_image".into(),
            with(1, "compare_image", pc(&(info,))),
        ),
        (
            "compare-compare_image-json".into(),
            with(
                1,
                "compare_image",
                json(r#"{"info": {"red": 2.0, "blue": 1.0}}"#),
            ),
        ),
        (
            "kitchen-greet".into(),
            with(2, "greet", pc(&("Ada", vec!["Dr".to_owned()]))),
        ),
        (
            "kitchen-greet-json".into(),
            with(2, "greet", json(r#"["Ada", ["Dr", "Prof"]]"#)),
        ),
        (
            "kitchen-echo".into(),
            with(2, "echo", pc(&(bytes(b"hello"),))),
        ),
        (
            "kitchen-echo-json".into(),
            with(2, "echo", json("[[104, 105]]")),
        ),
        (
            "kitchen-weigh".into(),
            with(2, "weigh", pc(&(bytes(&[1, 2, 255]),))),
        ),
        (
            "kitchen-rightmost".into(),
            with(2, "rightmost", pc(&(vec![point, Point::default()],))),
        ),
        (
            "kitchen-rightmost-json".into(),
            with(2, "rightmost", json(r#"[[{"x": 1, "y": 2}]]"#)),
        ),
        (
            "kitchen-update".into(),
            with(2, "update", pc(&(outer(), 41u64))),
        ),
        (
            "kitchen-update-json".into(),
            with(
                2,
                "update",
                json(&format!(r#"{{"outer": {outer_json}, "counter": 1}}"#)),
            ),
        ),
        (
            "kitchen-inspect".into(),
            with(2, "inspect", pc(&(outer(),))),
        ),
        (
            "kitchen-inspect-json".into(),
            with(2, "inspect", json(&format!("[{outer_json}]"))),
        ),
        (
            "kitchen-labels".into(),
            with(2, "labels", pc(&(Some("a".to_owned()), Some("bc")))),
        ),
        (
            "kitchen-labels-json".into(),
            with(2, "labels", json(r#"[null, "bc"]"#)),
        ),
        (
            "kitchen-divide".into(),
            with(2, "divide", pc(&(i64::MIN, -1i64))),
        ),
        (
            "kitchen-mix".into(),
            with(2, "mix", pc(&((1u8, -2i16, 'é', true), 0.5f64))),
        ),
        (
            "kitchen-mix-json".into(),
            with(2, "mix", json(r#"[[1, -2, "x", false], 1e300]"#)),
        ),
        (
            "kitchen-kinds".into(),
            with(2, "kinds", pc(&(Kind::Tuple(3, 'k'), 3u8))),
        ),
        (
            "kitchen-kinds-json".into(),
            with(2, "kinds", json(r#"{"k": {"Newtype": -5}, "times": 2}"#)),
        ),
        // A loan handle (token, buffer id, length) and a loan by value: outside a connection
        // both must be refused cleanly.
        (
            "kitchen-checksum".into(),
            with(2, "checksum", pc(&((1u64, 2u32, 3u64), 7u64))),
        ),
        (
            "kitchen-checksum-json".into(),
            with(2, "checksum", json("[[1, 2, 3], 7]")),
        ),
        ("kitchen-nothing".into(), with(2, "nothing", Vec::new())),
        (
            "kitchen-nothing-json".into(),
            with(2, "nothing", json("null")),
        ),
    ];
    // Raw ids: a real one (Calc's `add`, tried on all three services) and an unknown one.
    let add = services.interfaces()[0].methods[0].id;
    let mut raw = vec![3];
    raw.extend(add.to_le_bytes());
    raw.extend(pc(&(1i32, 2i32)));
    seeds.push(("raw-add".into(), raw));
    let mut unknown = vec![3];
    unknown.extend(0x8000_0001u32.to_le_bytes());
    seeds.push(("raw-unknown".into(), unknown));
    seeds
}

/// Postcard's varint of `n`.
fn varint(mut n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// Seeds of the `decode` target: an honest value of several of its types on each path (named
/// `ok-…`, which must decode), and lengths that lie (`lie-…`, which must not).
pub fn decode() -> Vec<(String, Vec<u8>)> {
    use crate::sizes::{Chain, Node, Tree, Wide, TYPES};
    let mut seeds = Vec::new();
    let mut add = |name: String, which: usize, path: usize, body: Vec<u8>| {
        let selector = u8::try_from(which + TYPES * path).expect("a selector byte");
        seeds.push((name, [vec![selector, 0], body].concat()));
    };
    let tree = Tree::Node(vec![
        Tree::Leaf(1),
        Tree::Map([("a".to_owned(), Tree::Leaf(2))].into()),
    ]);
    let node = Node {
        value: 1,
        next: Some(Box::new(Node {
            value: 2,
            next: None,
        })),
    };
    let info = info();
    for (path, label) in ["private", "spilled", "json"].into_iter().enumerate() {
        let encode = |value: &dyn erased::Encode| value.encode(path == 2);
        let values: [(&str, usize, Vec<u8>); 9] = [
            ("wides", 0, encode(&vec![Wide::Small, Wide::Small])),
            ("boxed", 2, encode(&vec![Box::new(Wide::Small)])),
            ("strings", 7, encode(&vec!["a".to_owned(), String::new()])),
            ("chain", 9, encode(&Chain::Link(Box::new(Chain::End)))),
            ("tree", 10, encode(&tree)),
            ("node", 11, encode(&node)),
            ("service-info", 15, encode(&info)),
            (
                "shape",
                17,
                encode(&lpc::shape::Shape::Seq(Box::new(lpc::shape::Shape::U8))),
            ),
            (
                "tuple",
                19,
                encode(&(7u64, vec![Wide::Small], Some(Box::new(Chain::End)))),
            ),
        ];
        for (name, which, body) in values {
            add(format!("ok-{name}-{label}"), which, path, body);
        }
    }
    let zeros = vec![0u8; 4000];
    add(
        "lie-wides-2^60".into(),
        0,
        0,
        [varint(1 << 60), zeros.clone()].concat(),
    );
    add(
        "lie-wides-4000".into(),
        0,
        1,
        [varint(4000), zeros.clone()].concat(),
    );
    add(
        "lie-map-2000".into(),
        3,
        0,
        [varint(2000), zeros.clone()].concat(),
    );
    add("lie-units-2^60".into(), 5, 0, varint(1 << 60));
    add("lie-chain-4000".into(), 9, 1, vec![1; 4000]);
    add("lie-tree-deep".into(), 10, 2, b"{\"Node\":[".repeat(200));
    seeds
}

/// Values encoded as postcard or JSON without naming their types.
mod erased {
    use serde::Serialize;

    pub trait Encode {
        fn encode(&self, json: bool) -> Vec<u8>;
    }

    impl<T: Serialize> Encode for T {
        fn encode(&self, json: bool) -> Vec<u8> {
            if json {
                serde_json::to_vec(self).expect("seeds encode")
            } else {
                postcard::to_stdvec(self).expect("seeds encode")
            }
        }
    }
}

/// Every seed passes its target (the generator checks this before writing).
pub fn check(services: &Services) {
    for (name, input) in handshake() {
        if let Err(e) = lpc::testing::decode_message(&input) {
            panic!("handshake seed {name} does not decode: {e}");
        }
    }
    for (name, input) in frames() {
        if let Err(e) = lpc::testing::decode_frame(&input) {
            panic!("frame seed {name} does not decode: {e}");
        }
    }
    let area = lpc::testing::SpillArea::new(1 << 16).expect("a spill buffer");
    for (name, input) in decode() {
        let which = usize::from(input[0]) % crate::sizes::TYPES;
        let path = match usize::from(input[0]) / crate::sizes::TYPES {
            0 => crate::sizes::Path::Private,
            1 => crate::sizes::Path::Spilled(&area),
            _ => crate::sizes::Path::Json,
        };
        let result = crate::sizes::decode_as(which, path, &input[2..], u64::MAX);
        assert_eq!(
            result.is_ok(),
            name.starts_with("ok-"),
            "decode seed {name}: {result:?}"
        );
    }
    for (name, input) in dispatch() {
        crate::run_dispatch(services, &input);
        // A valid seed reaches the handler: one of the two entry points accepts it.
        let (selector, args) = input.split_first().expect("a selector");
        if selector % 4 == 3 {
            continue;
        }
        let dispatcher: &dyn Dispatch = services.dispatcher(usize::from(selector % 4));
        let methods = dispatcher.interface().methods;
        let id = methods[usize::from(selector / 4) % methods.len()].id;
        let ok = dispatcher
            .dispatch(
                id,
                lpc::EncodedArgs::from_bytes(args),
                &mut lpc::EncodedReply::to_vec(&mut Vec::new()),
            )
            .is_ok()
            || dispatcher.dispatch_json(id, args, &mut Vec::new()).is_ok();
        // A loan can only be received in a connection's call: outside, always refused.
        let takes_loan = name.contains("checksum");
        assert!(
            ok != takes_loan,
            "seed {name} is {} by both dispatchers",
            if ok { "accepted" } else { "rejected" }
        );
    }
}
