//! The C examples (examples/c), built against lpc's C ABI (the lpc-c crate's static library
//! and its generated header) with the system's C compiler, and run as processes against the
//! Rust services.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CALC_SERVICE: &str = env!("CARGO_BIN_EXE_calc-service");

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// lpc-c's static library, which cargo built beside this test (a dev-dependency).
fn static_lib() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let lib = exe.parent().unwrap().join("liblpc_c.a");
    assert!(
        lib.exists(),
        "no {} (lpc-c is a dev-dependency)",
        lib.display()
    );
    lib
}

/// Runs a compiler, which must succeed without a single warning.
fn compile(compiler: &str, args: &[&str]) {
    let out = Command::new(compiler)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("{compiler}: {e} (scripts/setup.sh installs a C and a C++ compiler)")
        });
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "{compiler} {args:?}:\n{stderr}"
    );
}

/// Builds examples/c/`source` into `dir`; returns the program.
fn build_c(source: &str, dir: &Path) -> PathBuf {
    let program = dir.join(source.trim_end_matches(".c"));
    let include = root().join("lpc-c/include");
    let source = root().join("examples/c").join(source);
    let lib = static_lib();
    compile(
        "cc",
        &[
            "-std=c99",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
            "-I",
            include.to_str().unwrap(),
            source.to_str().unwrap(),
            lib.to_str().unwrap(),
            "-lpthread",
            "-ldl",
            "-lm",
            "-o",
            program.to_str().unwrap(),
        ],
    );
    program
}

/// A service process, killed when dropped; started once it printed `ready`. The receiver
/// gets the lines it prints after.
struct Service(std::process::Child, bool, std::sync::mpsc::Receiver<String>);

impl Service {
    fn start(bin: &str, dir: &Path) -> Service {
        Service::start_args(bin, &[], dir)
    }

    fn start_args(bin: &str, args: &[&str], dir: &Path) -> Service {
        let mut child = Command::new(bin)
            .args(args)
            .env("LPC_RUNTIME_DIR", dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
                Ok(line) if line.starts_with("ready") => return Service(child, false, rx),
                Ok(_) => {}
                Err(_) => panic!("{bin} printed no `ready` within 20 s"),
            }
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if !self.1 {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[test]
fn the_header_compiles_as_c99_and_as_cpp_without_warnings() {
    let dir = tempfile::TempDir::new().unwrap();
    let include = root().join("lpc-c/include");
    let unit = dir.path().join("unit.c");
    std::fs::write(
        &unit,
        "#include \"lpc.h\"\nint main(void) { return LPC_OK; }\n",
    )
    .unwrap();
    let common = [
        "-Wall",
        "-Wextra",
        "-Werror",
        "-pedantic",
        "-fsyntax-only",
        "-I",
    ];
    let mut c = vec!["-std=c99"];
    c.extend(common);
    c.extend([include.to_str().unwrap(), unit.to_str().unwrap()]);
    compile("cc", &c);
    let mut cpp = vec!["-std=c++11", "-x", "c++"];
    cpp.extend(common);
    cpp.extend([include.to_str().unwrap(), unit.to_str().unwrap()]);
    compile("c++", &cpp);
}

#[test]
fn a_c_client_calls_the_rust_calc_service_by_json_and_by_binary() {
    let dir = tempfile::TempDir::new().unwrap();
    let client = build_c("calc_client.c", dir.path());
    let _service = Service::start(CALC_SERVICE, dir.path());
    let out = Command::new(&client)
        .env("LPC_RUNTIME_DIR", dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout,
        "json: add(10, 20) -> {\"result\":30}\n\
         binary: add(10, 20) = 30\n\
         json: checked_div(1, 0) -> {\"error\":\"DivisionByZero\"}\n\
         sqrt: status 6: service `calc` has no method `sqrt`\n"
    );
}

#[test]
fn a_c_client_of_a_missing_service_gets_not_found_with_its_message() {
    let dir = tempfile::TempDir::new().unwrap();
    let client = build_c("calc_client.c", dir.path());
    let out = Command::new(&client)
        .arg("nosuch")
        .env("LPC_RUNTIME_DIR", dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("connect failed (status 2): service `nosuch` not found"),
        "{stderr}"
    );
}

const CALC_CLIENT: &str = env!("CARGO_BIN_EXE_calc-client");

fn calc_interface_json() -> PathBuf {
    root().join("examples/c/calc.interface.json")
}

#[test]
fn the_c_services_interface_file_is_the_rust_calc_interface() {
    let text = std::fs::read_to_string(calc_interface_json()).unwrap();
    let described = lpc::InterfaceInfo::from_describe_json(&text).unwrap();
    let traced = lpc_examples::calc::CALC_INTERFACE.info().unwrap();
    assert!(
        &described == traced,
        "examples/c/calc.interface.json is stale: rewrite it with `lpc describe --json calc` \
         against examples' calc-service"
    );
}

#[test]
fn the_rust_calc_client_and_json_calls_use_the_calc_service_written_in_c() {
    let dir = tempfile::TempDir::new().unwrap();
    let program = build_c("calc_service.c", dir.path());
    let json = calc_interface_json();
    let mut service = Service::start_args(
        program.to_str().unwrap(),
        &[json.to_str().unwrap()],
        dir.path(),
    );
    // The typed Rust client, as a process: it checks the interface at connect.
    let out = Command::new(CALC_CLIENT)
        .env("LPC_RUNTIME_DIR", dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "add(10, 20) = 30\n");

    let options = lpc::ClientOptions::new().runtime_dir(dir.path());
    // Typed calls of every method, an application error included.
    let calc = lpc_examples::calc::CalcClient::connect_with("calc", &options).unwrap();
    assert_eq!(calc.add(i32::MAX, 1).unwrap(), i32::MIN);
    assert_eq!(calc.checked_div(7, 2).unwrap(), Ok(3));
    assert_eq!(
        calc.checked_div(1, 0).unwrap(),
        Err(lpc_examples::calc::CalcError::DivisionByZero)
    );
    assert_eq!(calc.sum(&[1, 2, 3, -10, 1 << 40]).unwrap(), (1 << 40) - 4);
    // JSON calls, converted through the interface's shapes.
    let dynamic = lpc::Client::connect_dynamic("calc", &options).unwrap();
    let call = |method: &str, args: serde_json::Value| dynamic.call_json(method, &args).unwrap();
    assert_eq!(
        call("add", serde_json::json!([10, 20])),
        serde_json::json!({"result": 30})
    );
    assert_eq!(
        call("checked_div", serde_json::json!({"a": 1, "b": 0})),
        serde_json::json!({"error": "DivisionByZero"})
    );
    assert_eq!(
        call("sum", serde_json::json!([[1, 2, -4]])),
        serde_json::json!({"result": -1})
    );
    // A call the C handler refuses (arguments it cannot decode) reaches the caller.
    let refused = dynamic
        .call_json("add", &serde_json::json!([1, "two"]))
        .unwrap_err();
    assert!(refused.to_string().contains("argument `b`"), "{refused}");
    drop((calc, dynamic));

    // SIGTERM stops it cleanly.
    let status = Command::new("kill")
        .args(["-TERM", &service.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = service.0.wait().unwrap();
    assert_eq!(exit.code(), Some(0), "{exit:?}");
    service.1 = true;
}

#[test]
fn a_c_client_reads_events_and_posts_one_way_calls() {
    let dir = tempfile::TempDir::new().unwrap();
    let client = build_c("events_client.c", dir.path());
    let _ticker = Service::start(env!("CARGO_BIN_EXE_ticker-service"), dir.path());
    let copydata = Service::start(env!("CARGO_BIN_EXE_copydata-service"), dir.path());
    let out = Command::new(&client)
        .args(["ticker", "copydata"])
        .env("LPC_RUNTIME_DIR", dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    for line in &lines[..2] {
        let event: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(event["event"], "tick", "{line}");
        assert!(event["args"]["counter"].is_u64(), "{line}");
        assert_eq!(event["missed"], 0, "{line}");
    }
    assert_eq!(lines[2], "posted copy_data");
    // The service ran the post after the client returned.
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        match copydata
            .2
            .recv_timeout(until.saturating_duration_since(Instant::now()))
        {
            Ok(line) if line == "copy_data kind 7: 6 bytes \"from C\"" => break,
            Ok(_) => {}
            Err(_) => panic!("the copy-data service never printed the post"),
        }
    }
}

#[test]
fn the_ticker_interface_file_is_the_rust_ticker_interface_and_its_events() {
    let text = std::fs::read_to_string(root().join("examples/c/ticker.interface.json")).unwrap();
    let methods = lpc::InterfaceInfo::from_describe_json(&text).unwrap();
    assert!(&methods == lpc_examples::ticker::TICKER_INTERFACE.info().unwrap());
    let events = lpc::InterfaceInfo::events_from_describe_json(&text)
        .unwrap()
        .unwrap();
    let traced = lpc_examples::ticker::TICKER_EVENTS_INTERFACE
        .info()
        .unwrap();
    assert_eq!(
        (&events.name, events.fingerprint, events.methods.len()),
        (&traced.name, traced.fingerprint, traced.methods.len()),
        "examples/c/ticker.interface.json is stale: rewrite it with `lpc describe --json ticker`"
    );
}

#[test]
fn a_service_in_c_emits_events_that_typed_rust_subscribers_receive() {
    use lpc_examples::ticker::TickerEventsEvent;
    let dir = tempfile::TempDir::new().unwrap();
    let program = build_c("ticker_service.c", dir.path());
    let json = root().join("examples/c/ticker.interface.json");
    let _service = Service::start_args(
        program.to_str().unwrap(),
        &[json.to_str().unwrap(), "cticker"],
        dir.path(),
    );
    let options = lpc::SubscribeOptions::new().runtime_dir(dir.path());
    let mut ticks = lpc::Subscription::<TickerEventsEvent>::open("cticker", options).unwrap();
    let mut last = 0;
    for _ in 0..3 {
        let received = ticks
            .recv_timeout(Duration::from_secs(10))
            .unwrap()
            .expect("a tick within 10 s");
        match received.event {
            TickerEventsEvent::Tick { counter, at_ns } => {
                assert!(counter > last, "{counter} after {last}");
                assert!(at_ns > 0);
                last = counter;
            }
            other => panic!("{other:?}"),
        }
    }
    let ticker = lpc_examples::ticker::TickerClient::connect_with(
        "cticker",
        &lpc::ClientOptions::new().runtime_dir(dir.path()),
    )
    .unwrap();
    assert_eq!(ticker.job(3).unwrap(), 1);
}
