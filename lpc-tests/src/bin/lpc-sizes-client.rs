//! `lpc-sizes-client NAME --memory BYTES [--max-reply BYTES] STEP...`: with its address space
//! limited to `--memory` bytes (`RLIMIT_AS`), runs each step against `Sizes` in `$LPC_RUNTIME_DIR` and prints one
//! line per step: `STEP ok VALUE` or `STEP error MESSAGE (lpc::Error::VARIANT)`. Steps:
//!
//! * `connect`: connects (later calls use this connection);
//! * `query`: `lpc::query`;
//! * `wides`, `boxed`, `units`, `chain`, `strings`, `add`: calls the method (`n` = 10; `add`
//!   is `add(2, 3)`), printing the length of the result (the links of a chain, the sum);
//! * `json:METHOD`: the same call with JSON arguments, printing the reply's length.
//!
//! Then prints `done VMPEAK VMHWM` (bytes) and exits 0: a step that aborted the process
//! (an allocation beyond the limit) leaves no `done` line.

use std::time::Duration;

use lpc_tests::sizes::{limit_memory, memory_peaks, SizesClient};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let name = args.first().cloned().unwrap_or_else(|| "sizes".into());
    let mut steps = Vec::new();
    let mut options = lpc::ClientOptions::new()
        .connect_timeout(Duration::from_secs(10))
        .call_timeout(Duration::from_secs(10));
    let mut rest = args.iter().skip(1);
    let number = |v: Option<&String>| -> u64 { v.and_then(|v| v.parse().ok()).expect("BYTES") };
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--memory" => limit_memory(number(rest.next())),
            "--max-reply" => options = options.max_reply(number(rest.next())),
            _ => steps.push(arg.clone()),
        }
    }
    let mut client: Option<SizesClient> = None;
    for step in &steps {
        let outcome: Result<String, lpc::Error> = match step.as_str() {
            "connect" => SizesClient::connect_with(&name, &options).map(|c| {
                client = Some(c);
                String::new()
            }),
            "query" => lpc::query(&name, &options).map(|info| info.service),
            call => match &client {
                None => Ok("no connection".into()),
                Some(c) => run(c, call),
            },
        };
        match outcome {
            Ok(value) => println!("{step} ok {value}"),
            Err(e) => println!("{step} error {e:?}"),
        }
    }
    let (peak, resident) = memory_peaks();
    println!("done {peak} {resident}");
}

fn run(c: &SizesClient, call: &str) -> Result<String, lpc::Error> {
    if let Some(method) = call.strip_prefix("json:") {
        let args = serde_json::json!({ "n": 10 });
        return c
            .client()
            .call_json(method, &args)
            .map(|reply| reply.to_string().len().to_string());
    }
    Ok(match call {
        "add" => c.add(2, 3)?.to_string(),
        "wides" => c.wides(10)?.len().to_string(),
        "boxed" => c.boxed(10)?.len().to_string(),
        "units" => c.units(10)?.len().to_string(),
        "chain" => c.chain(10)?.links().to_string(),
        "strings" => c.strings(10)?.len().to_string(),
        other => format!("unknown step {other}"),
    })
}
