//! The DLL shared data section, the lpc way: one value every process of the user sees.
//!
//! ```text
//! shared-data set N    set the value to N, then hold it until Enter (or end of input)
//! shared-data get      print the value
//! shared-data add N    add N (a read-modify-write no other writer interleaves)
//! shared-data watch    print the value each time it changes (a futex wait, no polling)
//! ```
//!
//! The value lives while a process holds it: `set` keeps holding it, so that a `get` in
//! another terminal reads it; when the last holder exits, nothing is left behind.

use std::io::BufRead;
use std::time::Duration;

use lpc::Shared;

/// What the processes share: its shape is recorded, so a process opening `shared-data` as
/// another type gets an error naming both.
#[derive(serde::Serialize, serde::Deserialize, Default, Debug)]
struct SharedData {
    value: i64,
}

fn main() -> std::process::ExitCode {
    lpc_examples::report(run())
}

fn number(args: &[String]) -> i64 {
    args.get(2).and_then(|a| a.parse().ok()).unwrap_or_else(|| {
        eprintln!("usage: shared-data set|add N");
        std::process::exit(2)
    })
}

fn run() -> Result<(), lpc::Error> {
    let args: Vec<String> = std::env::args().collect();
    let data: Shared<SharedData> = Shared::open("shared-data")?;
    match args.get(1).map(String::as_str) {
        Some("set") => {
            let n = number(&args);
            data.set(SharedData { value: n })?;
            println!("set shared-data to {n}; holding it until Enter");
            let _ = std::io::stdin().lock().lines().next();
        }
        Some("add") => {
            let n = number(&args);
            let now = data.update(|d| {
                d.value += n;
                d.value
            })?;
            println!("shared-data is now {now}");
        }
        Some("watch") => {
            let (mut seen, mut version) = data.get_versioned()?;
            println!("shared-data = {}", seen.value);
            loop {
                if data
                    .wait_for_change(version, Duration::from_secs(3600))?
                    .is_some()
                {
                    (seen, version) = data.get_versioned()?;
                    println!("shared-data = {}", seen.value);
                }
            }
        }
        Some("get") | None => println!("shared-data = {}", data.get()?.value),
        Some(other) => {
            eprintln!("unknown command {other:?}: shared-data set N | get | add N | watch");
            std::process::exit(2);
        }
    }
    Ok(())
}
