//! No size a peer controls reaches an infallible allocation: real processes under a limit on
//! their address space (`RLIMIT_AS`, 512 MiB), fed lengths that lie.
//!
//! * A hostile *client* (a [`RawPeer`]) sends `lpc-sizes-service` arguments that claim 2^60
//!   elements, hold millions of one-byte elements each 1 KiB in memory (inline, spilled and as
//!   JSON), maps, boxes, units, strings and values nested a million deep, and handshakes whose
//!   lengths lie. Each call is answered `BadArguments` naming the budget it broke (or refused,
//!   for a handshake), the service keeps serving honest calls, and its memory stays far below
//!   the limit.
//! * A hostile *service* (a [`RawService`]) answers `lpc-sizes-client`'s connects, queries and
//!   calls with welcomes, query answers and results that lie the same ways. Each step is an
//!   error for the client, which carries on to the next and exits normally.
//!
//! Before the decode budget, every one of the oversized cases aborted the process (an
//! allocation failure under the limit, or a stack overflow). docs/security.md, "Sizes a peer
//! controls", lists what is bounded and how.

// Unix: the service and client run under RLIMIT_AS (lpc_tests::sizes::limit_memory).
#![cfg(unix)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use lpc::testing::varint;
use lpc::testing::{message, spill_notice, RawPeer, RawService, RawSocket, FRAME_SIZE};
use lpc_tests::sizes::{SizesClient, SIZES_INTERFACE};
use lpc_tests::{client_options, eventually, status_field, Process};
use tempfile::TempDir;

const SERVICE: &str = env!("CARGO_BIN_EXE_lpc-sizes-service");
const CLIENT: &str = env!("CARGO_BIN_EXE_lpc-sizes-client");
const NAME: &str = "sizes";

/// The address space each process may use: an allocation beyond it fails, and Rust aborts.
const MEMORY: u64 = 512 << 20;
/// The payload limit of the service and the client (so that a call in flight stays well
/// within the memory limit: its copy, plus values up to the limit + 1 MiB).
const LIMIT: u64 = 32 << 20;
/// The bound on anything that should happen promptly.
const PROMPT: Duration = Duration::from_secs(10);

// The slot layout (lpc/src/shm/layout.rs) and the protocol's constants (lpc/src/wire).
const FRAME: usize = 8;
const PAYLOAD: usize = FRAME + FRAME_SIZE;
const TRAILER: usize = 64;
const REPLY: u32 = 3;
const REQUEST_FIXED: u32 = 5;
const OK: u32 = 0;
const BAD_ARGUMENTS: u32 = 2;
const FLAG_SPILL: u32 = 1;
const FLAG_JSON: u32 = 2;
const TAG_HELLO: u8 = 1;
const TAG_WELCOME: u8 = 2;
const TAG_REFUSED: u8 = 3;
const TAG_SPILL: u8 = 4;
const TAG_QUERY: u8 = 5;
const TAG_INFO: u8 = 6;

/// Postcard's varint of 2^60: a length no payload can hold.
fn huge() -> Vec<u8> {
    varint(1 << 60)
}

// ---------------------------------------------------------------------------------------------
// A hostile client against a service under the limit.

struct Attacker<'a> {
    peer: &'a RawPeer,
    generation: u32,
}

/// What a call came back with: its status and its (inline) payload as text.
struct Answer {
    status: u32,
    text: String,
}

impl Attacker<'_> {
    /// Writes the request for `method` (flags as given; a spilled payload goes in a fresh
    /// spill buffer of `spill_len` bytes holding `payload` at its start), publishes it, rings
    /// and waits for the reply.
    fn call(&mut self, method: &str, flags: u32, payload: &[u8], spill_len: usize) -> Answer {
        let slot = 0;
        let base = self.peer.slot_offset(slot);
        let mut generation = 0;
        if flags & FLAG_SPILL != 0 {
            self.generation += 1;
            generation = self.generation;
            let mut notice = message(TAG_SPILL, &varint(slot.into()));
            notice.extend(varint(generation.into()));
            self.peer
                .socket()
                .send_with_contents(&notice, spill_len, payload)
                .unwrap();
        } else {
            self.peer.write(base + PAYLOAD, payload);
        }
        // A spilled payload fills its buffer (what `payload` does not write is zeros).
        let len = if flags & FLAG_SPILL != 0 {
            spill_len as u64
        } else {
            payload.len() as u64
        };
        let mut frame = [0u8; FRAME_SIZE];
        frame[0..4].copy_from_slice(&lpc::method_id(method).to_le_bytes());
        frame[4..8].copy_from_slice(&flags.to_le_bytes());
        frame[8..16].copy_from_slice(&1u64.to_le_bytes());
        frame[16..24].copy_from_slice(&len.to_le_bytes());
        frame[24..28].copy_from_slice(&generation.to_le_bytes());
        self.peer.write(base + FRAME, &frame);
        self.peer.store(base, REQUEST_FIXED);
        self.peer.ring();
        assert!(
            eventually(PROMPT, || self.peer.state(slot) == REPLY),
            "{method}: no reply within {PROMPT:?} (state {})",
            self.peer.state(slot)
        );
        let reply = self.peer.read(base + FRAME, FRAME_SIZE);
        let status = u32::from_le_bytes(reply[28..32].try_into().unwrap());
        let len = u64::from_le_bytes(reply[16..24].try_into().unwrap()) as usize;
        let flags = u32::from_le_bytes(reply[4..8].try_into().unwrap());
        assert_eq!(flags & FLAG_SPILL, 0, "{method}: a spilled reply");
        let text = String::from_utf8_lossy(&self.peer.read(base + PAYLOAD, len)).into_owned();
        // The slot is ours again.
        self.peer.store(base, 0);
        Answer { status, text }
    }
}

fn inline_capacity(peer: &RawPeer) -> usize {
    peer.slot_offset(1) - peer.slot_offset(0) - PAYLOAD - TRAILER
}

/// The service's peak address space and resident memory (`VmPeak`, `VmHWM`), in MiB.
fn peaks(pid: u32) -> (u64, u64) {
    (
        status_field(pid, "VmPeak") / 1024,
        status_field(pid, "VmHWM") / 1024,
    )
}

#[test]
fn a_service_under_a_memory_limit_refuses_arguments_whose_lengths_lie_and_keeps_serving() {
    let dir = TempDir::new().unwrap();
    let limit = LIMIT.to_string();
    let memory = MEMORY.to_string();
    let mut service = Process::start(
        Path::new(SERVICE),
        &[NAME, "--memory", &memory, "--max-payload", &limit],
        dir.path(),
        "ready",
    );
    let pid = service.pid();
    let good = SizesClient::connect_with(NAME, &client_options(dir.path()).call_timeout(PROMPT))
        .expect("connect");
    assert_eq!(good.add(2, 3).unwrap(), 5);
    let honest = (
        good.count_wide(vec![lpc_tests::sizes::Wide::Small; 1000])
            .unwrap(),
        1000,
    );
    assert_eq!(honest.0, honest.1);
    let before = peaks(pid);

    let peer = RawSocket::connect(dir.path(), NAME)
        .unwrap()
        .handshake()
        .unwrap();
    let mut attacker = Attacker {
        peer: &peer,
        generation: 0,
    };
    let room = inline_capacity(&peer);
    let zeros = |n: usize| vec![0u8; n];
    let ones = |n: usize| vec![1u8; n];
    // A payload of 30 MiB: its spill buffer holds only the length (the rest is zeros).
    let spilled = 30 << 20;
    let json_wides = |len: usize| {
        let mut json = b"{\"items\": [\"Small\"".to_vec();
        while json.len() < len {
            json.extend(b",\"Small\"");
        }
        json.extend(b"]}");
        json
    };
    let (json_large, json_small) = (json_wides(20 << 20), json_wides(800_000));
    // Where a budget of 1 MiB more than the limit runs out for 1,032-byte elements.
    let last = ((LIMIT + (1 << 20)) / 1032).to_string();
    // (what, method, flags, payload, spill buffer size, what the refusal says)
    #[allow(clippy::type_complexity)]
    let cases: Vec<(&str, &str, u32, Vec<u8>, usize, String)> = vec![
        (
            "2^60 unit variants of a 1 KiB enum claimed, a slot's worth present",
            "count_wide",
            0,
            [huge(), zeros(room - 9)].concat(),
            0,
            "of 1032-byte elements".to_owned(),
        ),
        (
            "30 million unit variants of a 1 KiB enum, spilled (31 GB of values)",
            "count_wide",
            FLAG_SPILL,
            varint(spilled as u64 - 4),
            spilled,
            format!(
                "(1 MiB more than the payload limit); refused at element {last} of a sequence \
                 claiming {} elements of 1032-byte elements",
                spilled - 4
            ),
        ),
        (
            "boxes of a 1 KiB enum",
            "count_boxed",
            0,
            [varint(room as u64 - 2), zeros(room - 2)].concat(),
            0,
            "a 1032-byte value held by a 8-byte pointer".to_owned(),
        ),
        (
            "a map of 1 KiB values",
            "count_map",
            0,
            [varint(1900), zeros(3800)].concat(),
            0,
            "of a map claiming 1900 entries whose keys and values take 1036 bytes".to_owned(),
        ),
        (
            "2^60 units (no bytes at all)",
            "count_units",
            0,
            huge(),
            0,
            "of a sequence of 1-byte elements".to_owned(),
        ),
        (
            "2^60 strings claimed, the first claiming 2^60 bytes",
            "count_strings",
            0,
            [huge(), huge(), b"abc".to_vec()].concat(),
            0,
            "Hit the end of buffer".to_owned(),
        ),
        (
            "a chain of a slot's worth of links",
            "chain_len",
            0,
            ones(room),
            0,
            "values nested deeper than 128 levels".to_owned(),
        ),
        (
            "a chain of 30 million links, spilled",
            "chain_len",
            FLAG_SPILL,
            ones(spilled),
            spilled,
            "values nested deeper than 128 levels".to_owned(),
        ),
        (
            "20 MiB of JSON unit variants of a 1 KiB enum (2.6 million values to parse)",
            "count_wide",
            FLAG_SPILL | FLAG_JSON,
            json_large.clone(),
            json_large.len(),
            "the arguments are too large to decode".to_owned(),
        ),
        (
            "800 KB of JSON unit variants of a 1 KiB enum (parsed, then decoded)",
            "count_wide",
            FLAG_SPILL | FLAG_JSON,
            json_small.clone(),
            json_small.len(),
            format!(
                "argument `items` (Vec<Wide>): a {} byte payload may decode into at most",
                json_small.len()
            ),
        ),
    ];
    for (what, method, flags, payload, spill_len, expected) in &cases {
        let spill_len = if *spill_len == 0 {
            payload.len()
        } else {
            *spill_len
        };
        let answer = attacker.call(method, *flags, payload, spill_len);
        eprintln!("{what}: status {}: {}", answer.status, answer.text);
        assert_eq!(answer.status, BAD_ARGUMENTS, "{what}: {}", answer.text);
        assert!(
            answer.text.contains(expected.as_str()),
            "{what}: {}",
            answer.text
        );
        assert!(
            service.child.try_wait().unwrap().is_none(),
            "the service died after {what}"
        );
        assert!(!peer.socket().closed_by_peer(), "{what}: connection closed");
        assert_eq!(good.add(40, 2).unwrap(), 42, "after {what}");
    }
    // The attacker's own connection still serves honest calls.
    let answer = attacker.call("add", 0, &[2, 3], 0);
    assert_eq!((answer.status, answer.text.as_bytes()), (OK, &[5][..]));

    // Handshakes whose lengths lie, under the same limit.
    let refusals: [(&str, Vec<u8>); 3] = [
        (
            "a hello naming a service of 2^60 bytes",
            message(TAG_HELLO, &[huge(), b"probe".to_vec()].concat()),
        ),
        (
            "a hello with an interface name of 2^60 bytes",
            message(TAG_HELLO, &[vec![0, 1], huge(), b"x".to_vec()].concat()),
        ),
        ("a query with a body", message(TAG_QUERY, &huge())),
    ];
    for (what, bytes) in &refusals {
        let socket = RawSocket::connect(dir.path(), NAME).unwrap();
        socket.send(bytes).unwrap();
        let answer = socket.recv(PROMPT).unwrap();
        // The refusal's text, after its prefix (tag, version), kind and length.
        let text = String::from_utf8_lossy(answer.get(7..).unwrap_or_default());
        eprintln!("{what}: {text}");
        assert_eq!(answer.first(), Some(&TAG_REFUSED), "{what}: {text}");
        assert!(text.contains("bad handshake"), "{what}: {text}");
    }
    assert!(service.child.try_wait().unwrap().is_none());
    assert_eq!(good.add(1, 1).unwrap(), 2);
    let after = peaks(pid);
    eprintln!(
        "service memory: VmPeak {} MiB, VmHWM {} MiB before the attacks; {} MiB, {} MiB after \
         (limit {} MiB)",
        before.0,
        before.1,
        after.0,
        after.1,
        MEMORY >> 20
    );
    assert!(after.0 <= MEMORY >> 20);
}

// ---------------------------------------------------------------------------------------------
// A hostile service against a client under the limit.

/// Runs `lpc-sizes-client` with `steps` under the limit, while `serve` plays the service; the
/// client's output lines.
fn run_client(dir: &Path, steps: &[&str], serve: impl FnOnce(&RawService) + Send) -> Vec<String> {
    let service = RawService::bind(dir, NAME).unwrap();
    std::thread::scope(|scope| {
        let server = scope.spawn(|| serve(&service));
        let output = Command::new(CLIENT)
            .arg(NAME)
            .args(["--memory", &MEMORY.to_string()])
            .args(["--max-reply", &LIMIT.to_string()])
            .args(steps)
            .env("LPC_RUNTIME_DIR", dir)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .unwrap();
        server.join().expect("the raw service panicked");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "client {:?}: {stdout}",
            output.status
        );
        stdout.lines().map(str::to_owned).collect()
    })
}

/// The client's line for `step` (its `n`th, from 0).
fn line<'a>(lines: &'a [String], n: usize, step: &str) -> &'a str {
    let line = lines
        .get(n)
        .unwrap_or_else(|| panic!("no line {n} ({step}): {lines:?}"));
    assert!(line.starts_with(&format!("{step} ")), "{line}");
    line
}

/// As a service: waits for the next request in slot 0 of `peer`, checks it calls `method`,
/// and answers it (status Ok) with `payload`: inline if it fits, else in a fresh spill buffer
/// of generation `generation`, announced first.
fn serve_call(peer: &RawPeer, method: &str, payload: &[u8], generation: u32) {
    let base = peer.slot_offset(0);
    assert!(
        eventually(PROMPT, || matches!(peer.state(0), 1 | REQUEST_FIXED)),
        "{method}: no request (state {})",
        peer.state(0)
    );
    let request = peer.read(base + FRAME, FRAME_SIZE);
    assert_eq!(
        request[0..4],
        lpc::method_id(method).to_le_bytes(),
        "{method}"
    );
    if payload.len() <= inline_capacity(peer) {
        let mut frame = [0u8; FRAME_SIZE];
        frame[0..4].copy_from_slice(&request[0..4]);
        frame[8..16].copy_from_slice(&request[8..16]);
        frame[16..24].copy_from_slice(&(payload.len() as u64).to_le_bytes());
        peer.write(base + PAYLOAD, payload);
        peer.write(base + FRAME, &frame);
        peer.store(base, REPLY);
        peer.wake_slot(0);
    } else {
        peer.socket()
            .send_with_contents(&spill_notice(0, generation), payload.len(), payload)
            .unwrap();
        peer.reply_spilled(0, payload.len() as u64, generation);
    }
}

#[test]
fn a_client_under_a_memory_limit_gets_errors_from_a_service_whose_lengths_lie() {
    let dir = TempDir::new().unwrap();
    let steps = [
        "connect",
        "query",
        "query",
        "connect",
        "wides",
        "boxed",
        "units",
        "chain",
        "strings",
        "json:wides",
        "add",
        "query",
    ];
    let zeros = |n: usize| vec![0u8; n];
    let spilled = 30 << 20;
    let lines = run_client(dir.path(), &steps, |service| {
        // 1. A welcome whose interface claims 2^60 methods: service "raw", interface "Sizes",
        // fingerprint 0, then the lie (and a region, as a welcome carries).
        let conn = service.accept(PROMPT).unwrap();
        assert_eq!(
            conn.socket().recv(PROMPT).unwrap().first(),
            Some(&TAG_HELLO)
        );
        let mut body = [&[3][..], b"raw", &[5], b"Sizes", &[0]].concat();
        body.extend(huge());
        body.extend(zeros(64));
        conn.socket()
            .send_with_memory(&message(TAG_WELCOME, &body), 1 << 16)
            .unwrap();
        // 2. A query answered with 2^60 clients: service "raw", pid 0, user "", uptime 0,
        // an empty interface, 0 connections, then the lie.
        let conn = service.accept(PROMPT).unwrap();
        assert_eq!(
            conn.socket().recv(PROMPT).unwrap().first(),
            Some(&TAG_QUERY)
        );
        let mut body = [&[3][..], b"raw", &[0, 0, 0, 0, 0, 0, 0, 0, 0]].concat();
        body.extend(huge());
        body.extend(zeros(64));
        conn.socket().send(&message(TAG_INFO, &body)).unwrap();
        // 3. A query answered with a latency histogram of 190,000 buckets... that are all
        // there: honest, if large (8 bytes of memory per byte).
        let conn = service.accept(PROMPT).unwrap();
        assert_eq!(
            conn.socket().recv(PROMPT).unwrap().first(),
            Some(&TAG_QUERY)
        );
        let mut body = [
            &[3][..],
            b"raw",
            &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0],
        ]
        .concat();
        body.extend(varint(190_000));
        body.extend(zeros(190_000));
        body.push(0);
        // No events, no subscribers.
        body.extend([0, 0]);
        conn.socket().send(&message(TAG_INFO, &body)).unwrap();
        // 4. An honest welcome, then results that lie.
        let conn = service.accept(PROMPT).unwrap();
        let peer = conn.welcome(Some(&SIZES_INTERFACE)).unwrap();
        let mut generation = 0;
        let mut answer = |expect: &str, payload: &[u8]| {
            generation += 1;
            serve_call(&peer, expect, payload, generation);
        };
        // 30 million unit variants of a 1 KiB enum (a spilled reply).
        answer("wides", &[varint(spilled as u64), zeros(spilled)].concat());
        answer("boxed", &[varint(3000), zeros(3000)].concat());
        answer("units", &huge());
        // A million links: a stack overflow without the depth limit.
        answer("chain", &vec![1u8; 1 << 20]);
        answer("strings", &[huge(), huge(), b"abc".to_vec()].concat());
        let mut json = b"{\"result\": [\"Small\"".to_vec();
        while json.len() < 20 << 20 {
            json.extend(b",\"Small\"");
        }
        json.extend(b"]}");
        answer("wides", &json);
        answer("add", &[5]);
        // 5. An answer to a query whose interface names an array of 2^60 elements (what
        // `lpc describe` would show an example of): decodes (a number is not a size).
        let conn = service.accept(PROMPT).unwrap();
        assert_eq!(
            conn.socket().recv(PROMPT).unwrap().first(),
            Some(&TAG_QUERY)
        );
        let mut body = [&[3][..], b"raw", &[0, 0, 0, 0, 1, b'I', 0, 1]].concat();
        // One method "m", id 0, signature "", one parameter "p" of type "" not out, whose
        // shape is an array (variant 21) of u8 (7) of 2^60 elements...
        body.extend([1, b'm', 0, 0, 1, 1, b'p', 0, 0, 21, 7]);
        body.extend(huge());
        // ... output "", no result, not one-way, unit result, no error, fingerprint 0; no
        // types.
        body.extend([0, 0, 0, 0, 0, 0, 0]);
        // 0 connections, no clients, no methods, 0 unknown calls; no events, no subscribers.
        body.extend([0, 0, 0, 0, 0, 0]);
        conn.socket().send(&message(TAG_INFO, &body)).unwrap();
    });
    for l in &lines {
        eprintln!("{l}");
    }
    let expect = |n: usize, step: &str, needle: &str| {
        let l = line(&lines, n, step);
        assert!(l.contains(needle), "{step}: expected {needle:?}: {l}");
    };
    let lie = "bad handshake answer: malformed message: Hit the end of buffer";
    expect(0, "connect", lie);
    expect(1, "query", lie);
    expect(2, "query", "ok raw");
    expect(3, "connect", "ok");
    let last = (LIMIT + (1 << 20)) / 1032;
    expect(
        4,
        "wides",
        &format!("(1 MiB more than the payload limit); refused at element {last} "),
    );
    expect(5, "boxed", "a 1032-byte value held by a 8-byte pointer");
    expect(6, "units", "of a sequence of 1-byte elements");
    expect(7, "chain", "values nested deeper than 128 levels");
    expect(8, "strings", "Hit the end of buffer");
    expect(9, "json:wides", "the reply is too large to decode");
    expect(10, "add", "ok 5");
    expect(11, "query", "ok raw");
    for line in &lines[4..=9] {
        assert!(line.contains("(lpc::Error::Protocol)"), "{line}");
    }
    let done = line(&lines, 12, "done");
    let peak: Vec<u64> = done
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse::<u64>().unwrap() >> 20)
        .collect();
    eprintln!(
        "client memory: VmPeak {} MiB, VmHWM {} MiB (limit {} MiB)",
        peak[0],
        peak[1],
        MEMORY >> 20
    );
}
