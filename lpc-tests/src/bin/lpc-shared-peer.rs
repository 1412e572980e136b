//! A process that opens shared values and segments for tests/shared.rs, and can stop at a named
//! step of creating or writing one (printing `at STEP`) to be SIGKILLed there.
//!
//! ```text
//! lpc-shared-peer hold-value NAME [STEP]        open (create with zeros), print "ready V", hold
//! lpc-shared-peer set-value NAME N [STEP]       open, set [N; 8], print "ready", hold
//! lpc-shared-peer get-value NAME                print "value N0 … N7", exit
//! lpc-shared-peer writer NAME                   set [i; 8] for i = 1, 2, … forever ("ready" first)
//! lpc-shared-peer reader NAME COUNT             read COUNT times; print "reads R torn T"
//! lpc-shared-peer plain-reader NAME COUNT       the same through SharedPlain
//! lpc-shared-peer hold-segment NAME LEN [STEP]  create, write "peer" at 0, print "ready", hold
//! lpc-shared-peer exit-value NAME               open, print "ready", exit normally
//! ```
//!
//! The runtime directory is `$LPC_RUNTIME_DIR`.

use std::io::Write;

use lpc::{Segment, Shared, SharedPlain};

static STEP: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn stop_at(step: &str) {
    if STEP.get().is_some_and(|s| s == step) {
        println!("at {step}");
        let _ = std::io::stdout().flush();
        loop {
            std::thread::park();
        }
    }
}

fn hold() -> ! {
    let _ = std::io::stdout().flush();
    loop {
        std::thread::park();
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    let step_at = |i: usize| {
        if let Some(step) = args.get(i) {
            let _ = STEP.set(step.clone());
            lpc::shared::testing::set_step_hook(stop_at);
        }
    };
    match arg(0).as_str() {
        "hold-value" => {
            step_at(2);
            let v: Shared<[u64; 8]> = Shared::open(&arg(1)).expect("open");
            println!("ready {}", v.get().expect("get")[0]);
            hold();
        }
        "set-value" => {
            step_at(3);
            let n: u64 = arg(2).parse().expect("N");
            let v: Shared<[u64; 8]> = Shared::open(&arg(1)).expect("open");
            v.set([n; 8]).expect("set");
            println!("ready");
            hold();
        }
        "get-value" => {
            let v: Shared<[u64; 8]> = Shared::open(&arg(1)).expect("open");
            let words = v.get().expect("get");
            let text: Vec<String> = words.iter().map(u64::to_string).collect();
            println!("value {}", text.join(" "));
        }
        "exit-value" => {
            let v: Shared<[u64; 8]> = Shared::open(&arg(1)).expect("open");
            println!("ready");
            drop(v);
        }
        "writer" => {
            let v: Shared<[u64; 8]> = Shared::open(&arg(1)).expect("open");
            println!("ready");
            let _ = std::io::stdout().flush();
            for i in 1u64.. {
                v.set([i; 8]).expect("set");
            }
        }
        "reader" | "plain-reader" => {
            let count: u64 = arg(2).parse().expect("COUNT");
            // The same object through serde or as plain bytes: one seqlock under both.
            let (v, plain) = if arg(0) == "reader" {
                let v: Shared<[u64; 8]> = Shared::open(&arg(1)).expect("open");
                (Some(v), None)
            } else {
                let p: SharedPlain<[u64; 8]> = SharedPlain::open(&arg(1)).expect("open");
                (None, Some(p))
            };
            let get = || match (&v, &plain) {
                (Some(v), _) => v.get().expect("get"),
                (_, Some(p)) => p.get().expect("get"),
                _ => unreachable!("one is open"),
            };
            println!("ready");
            let _ = std::io::stdout().flush();
            let mut torn = 0u64;
            let mut distinct = 0u64;
            let mut last = u64::MAX;
            for _ in 0..count {
                let words = get();
                if words.iter().any(|&w| w != words[0]) {
                    torn += 1;
                }
                if words[0] != last {
                    distinct += 1;
                    last = words[0];
                }
            }
            println!("reads {count} torn {torn} distinct {distinct}");
        }
        "hold-segment" => {
            step_at(3);
            let len: usize = arg(2).parse().expect("LEN");
            let seg = Segment::create(&arg(1), len).expect("create");
            seg.write_at(0, b"peer").expect("write");
            println!("ready");
            hold();
        }
        other => {
            eprintln!("unknown command {other:?}");
            std::process::exit(2);
        }
    }
}
