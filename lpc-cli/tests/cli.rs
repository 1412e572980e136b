//! The `lpc` command against real services: each test starts `lpc __demo-service NAME` (which
//! serves `NAME-calc` and `NAME-compare`) in its own runtime directory and runs `lpc` on it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command as StdCommand, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use assert_cmd::assert::Assert;
use assert_cmd::Command;
use predicates::str::contains;
use tempfile::TempDir;

const LPC: &str = env!("CARGO_BIN_EXE_lpc");

/// A `lpc __demo-service` child process in a fresh runtime directory; killed on drop.
struct Service {
    name: String,
    child: Child,
    /// The runtime directory (`dir` or a directory in it).
    runtime: std::path::PathBuf,
    _dir: TempDir,
}

impl Service {
    fn start(name: &str) -> Service {
        Self::start_with(name, &[], TempDir::new().unwrap(), None)
    }

    /// Starts the service through `launcher` (a program and its arguments, before `lpc`:
    /// `unshare ...`, `setpriv ...`), in runtime directory `dir`, or in `dir`'s `sub` if given.
    fn start_with(name: &str, launcher: &[&str], dir: TempDir, sub: Option<&str>) -> Service {
        let runtime = sub.map_or_else(|| dir.path().to_owned(), |s| dir.path().join(s));
        let mut command = match launcher.split_first() {
            Some((program, args)) => {
                let mut command = StdCommand::new(program);
                command.args(args).arg(LPC);
                command
            }
            None => StdCommand::new(LPC),
        };
        command
            .args(["__demo-service", name])
            .env("LPC_RUNTIME_DIR", &runtime)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        let mut child = retrying_wine(|| command.spawn());
        // Keeps draining the child's stdout (compare_image prints there) after `ready`.
        let rx = stdout_lines(&mut child);
        let service = Service {
            name: name.to_owned(),
            child,
            runtime,
            _dir: dir,
        };
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(line) if line == "ready" => service,
            other => panic!("the service process did not start: {other:?}"),
        }
    }

    fn calc(&self) -> String {
        format!("{}-calc", self.name)
    }

    fn compare(&self) -> String {
        format!("{}-compare", self.name)
    }

    fn dir(&self) -> &Path {
        &self.runtime
    }

    /// Runs `lpc --runtime-dir DIR ARGS...`.
    fn lpc(&self, args: &[&str]) -> Assert {
        lpc_in(self.dir(), args)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lpc_in(dir: &Path, args: &[&str]) -> Assert {
    let mut command = Command::new(LPC);
    command
        .arg("--runtime-dir")
        .arg(dir)
        .args(args)
        .env_remove("LPC_RUNTIME_DIR")
        .timeout(Duration::from_secs(60));
    Assert::new(output_retrying_wine(&mut command))
}

fn stdout(a: &Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stdout).into_owned()
}

fn stderr(a: &Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stderr).into_owned()
}

/// The whitespace-separated cells of the first line of `text` whose first cell is `first`.
fn row<'a>(text: &'a str, first: &str) -> Vec<&'a str> {
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cells| cells.first() == Some(&first))
        .unwrap_or_else(|| panic!("no row `{first}` in:\n{text}"))
}

#[test]
fn list_shows_live_services_then_stale_ones_and_prunes_them() {
    let mut svc = Service::start("ls");
    let out = svc.lpc(&["list"]).success();
    let text = stdout(&out);
    let calc = row(&text, "ls-calc");
    assert_eq!(calc[1], svc.pid().to_string(), "{text}");
    assert_eq!(calc[3], "Calc", "{text}");
    assert_eq!(calc[4].len(), 16, "fingerprint in hex: {text}");
    assert_eq!(calc[5], "3", "three methods: {text}");
    assert_eq!(calc[6], "0", "no clients: {text}");
    assert_eq!(row(&text, "ls-compare")[3], "Compare", "{text}");
    assert!(text.contains("NAME") && text.contains("UPTIME"), "{text}");
    // No colour when piped.
    assert!(!text.contains('\x1b'), "{text:?}");

    let json = stdout(&svc.lpc(&["list", "--json"]).success());
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["services"][0]["name"], "ls-calc");
    assert_eq!(v["services"][0]["pid"], svc.pid());

    // SIGKILL leaves the sockets behind.
    svc.child.kill().unwrap();
    svc.child.wait().unwrap();
    let text = stdout(&svc.lpc(&["list"]).success());
    assert!(row(&text, "ls-calc").join(" ").contains("stale"), "{text}");
    assert!(
        row(&text, "ls-compare").join(" ").contains("stale"),
        "{text}"
    );
    assert!(text.contains("`lpc list --prune` removes them"), "{text}");

    // Calling it says what to do.
    svc.lpc(&["call", "ls-calc", "add", "1", "2"])
        .code(1)
        .stderr(contains("left over from a service that died"))
        .stderr(contains("lpc list --prune"));

    let text = stdout(&svc.lpc(&["list", "--prune"]).success());
    assert!(
        text.contains("removed the stale socket of `ls-calc`"),
        "{text}"
    );
    assert!(
        text.contains("removed the stale socket of `ls-compare`"),
        "{text}"
    );
    assert!(text.contains("no services in"), "{text}");
    let sockets = std::fs::read_dir(svc.dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".sock"))
        .count();
    assert_eq!(sockets, 0);
}

#[test]
fn describe_shows_types_as_rust_shapes_and_example_calls() {
    let svc = Service::start("ds");
    let text = stdout(&svc.lpc(&["describe", &svc.calc()]).success());
    assert!(text.contains("interface Calc"), "{text}");
    assert!(
        text.contains("fn add(&self, a: i32, b: i32) -> i32"),
        "{text}"
    );
    assert!(
        text.contains("fn checked_div(&self, a: i32, b: i32) -> Result<i32, CalcError>"),
        "{text}"
    );
    assert!(
        text.contains("fn sum(&self, values: &[i64]) -> i64"),
        "{text}"
    );
    // The types, as Rust, before the methods.
    let types = text.find("\ntypes\n").expect("a types section");
    let methods = text.find("\nmethods\n").expect("a methods section");
    assert!(types < methods, "{text}");
    assert!(
        text.contains("\n  enum CalcError { DivisionByZero, Overflow }\n"),
        "{text}"
    );
    // What crosses: `&[i64]` is a sequence; the error of a `Result` method is shown.
    assert!(text.contains("params  values: Vec<i64>"), "{text}");
    assert!(text.contains("error   CalcError"), "{text}");
    assert!(
        text.contains(r#"lpc call ds-calc add --args '{"a": 0, "b": 0}'"#),
        "{text}"
    );
    assert!(!text.contains('\x1b'), "no colour when piped: {text:?}");

    let text = stdout(&svc.lpc(&["describe", &svc.compare()]).success());
    assert!(
        text.contains("\n  struct MyInfo { red: f64, blue: f64 }\n"),
        "{text}"
    );
    assert!(
        text.contains("\n  enum Verdict { Similar, Different }\n"),
        "{text}"
    );
    // First use: MyInfo (the parameter) before Verdict (the result).
    assert!(
        text.find("struct MyInfo").unwrap() < text.find("enum Verdict").unwrap(),
        "{text}"
    );
    assert!(
        text.contains("fn compare_image(&self, info: &mut MyInfo) -> Verdict"),
        "{text}"
    );
    assert!(text.contains("params  info: MyInfo"), "{text}");
    assert!(text.contains("in/out  `info`"), "{text}");
    assert!(text.contains("result  Verdict"), "{text}");
    assert!(
        text.contains(
            r#"lpc call ds-compare compare_image --args '{"info": {"red": 0.0, "blue": 0.0}}'"#
        ),
        "{text}"
    );
}

/// Every `lpc call` line `lpc describe` prints, run as a user would: by the shell, with `lpc`
/// on the PATH.
// Unix: the examples are run by sh, with its quoting.
#[cfg(unix)]
#[test]
fn describe_example_calls_run() {
    let svc = Service::start("dx");
    let bin_dir = Path::new(LPC).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut ran = Vec::new();
    for service in [svc.calc(), svc.compare()] {
        let text = stdout(&svc.lpc(&["describe", &service]).success());
        for line in text
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("lpc call "))
        {
            let out = StdCommand::new("sh")
                .arg("-c")
                .arg(line)
                .env("PATH", &path)
                .env("LPC_RUNTIME_DIR", svc.dir())
                .output()
                .unwrap();
            let (o, e) = (
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
            );
            let method = line.split_whitespace().nth(3).unwrap();
            match method {
                // The example divides 0 by 0: the call goes through, the answer is an `Err`.
                "checked_div" => {
                    assert_eq!(out.status.code(), Some(3), "{line}\n{o}\n{e}");
                    assert!(e.contains("\"DivisionByZero\""), "{line}\n{e}");
                }
                _ => assert!(out.status.success(), "{line}\n{o}\n{e}"),
            }
            if method == "compare_image" {
                // The struct went in, the `&mut` value came back.
                assert!(o.starts_with("\"Different\"\n"), "{line}\n{o}");
                assert!(o.contains("info = {"), "{line}\n{o}");
                assert!(o.contains("\"red\": 2.0"), "{line}\n{o}");
            }
            if method == "add" {
                assert_eq!(o, "0\n", "{line}");
            }
            ran.push(method.to_owned());
        }
    }
    assert_eq!(ran, ["add", "checked_div", "sum", "compare_image"]);
}

#[test]
fn describe_json_has_the_format_shapes_and_type_table() {
    let svc = Service::start("dj");
    let json = stdout(&svc.lpc(&["describe", &svc.compare(), "--json"]).success());
    // Fields in a stable order: the format first.
    assert!(
        json.trim_start()
            .starts_with("{\n  \"format\": \"lpc-interface/1\","),
        "{json}"
    );
    let keys: Vec<usize> = [
        "\"format\"",
        "\"service\"",
        "\"pid\"",
        "\"interface\"",
        "\"fingerprint\"",
        "\"methods\"",
        "\"types\"",
    ]
    .iter()
    .map(|k| json.find(k).unwrap_or_else(|| panic!("no {k} in {json}")))
    .collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "{json}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["format"], "lpc-interface/1");
    assert_eq!(v["service"], svc.compare());
    assert_eq!(v["interface"], "Compare");
    let fingerprint = v["fingerprint"].as_str().unwrap();
    assert_eq!(fingerprint.len(), 16, "{json}");
    assert!(
        u64::from_str_radix(fingerprint, 16).is_ok(),
        "hex: {fingerprint}"
    );
    let text = stdout(&svc.lpc(&["describe", &svc.compare()]).success());
    assert!(
        text.contains(&format!("fingerprint {fingerprint}")),
        "{text}"
    );

    let m = &v["methods"][0];
    assert_eq!(m["name"], "compare_image");
    assert_eq!(
        m["signature"],
        "fn compare_image(&self, info: &mut MyInfo) -> Verdict"
    );
    assert_eq!(m["params"][0]["name"], "info");
    assert_eq!(m["params"][0]["ty"], "&mut MyInfo");
    assert_eq!(m["params"][0]["out"], true);
    assert_eq!(
        m["params"][0]["shape"],
        serde_json::json!({"named": "MyInfo"})
    );
    assert_eq!(m["output"], "Verdict");
    assert_eq!(m["returns_result"], false);
    assert_eq!(m["result"], serde_json::json!({"named": "Verdict"}));
    assert!(m["error"].is_null(), "{json}");
    assert_eq!(m["fingerprint"].as_str().unwrap().len(), 16, "{json}");

    // The type table: fields and variants in declaration order.
    assert_eq!(
        v["types"]["MyInfo"],
        serde_json::json!({"struct": [
            {"name": "red", "shape": "f64"},
            {"name": "blue", "shape": "f64"},
        ]})
    );
    assert_eq!(
        v["types"]["Verdict"],
        serde_json::json!({"enum": [
            {"name": "Similar", "fields": "unit"},
            {"name": "Different", "fields": "unit"},
        ]})
    );

    let json = stdout(&svc.lpc(&["describe", &svc.calc(), "--json"]).success());
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let names: Vec<&str> = v["methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["add", "checked_div", "sum"]);
    let params: Vec<&str> = v["methods"][0]["params"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(params, ["a", "b"]);
    let div = &v["methods"][1];
    assert_eq!(div["returns_result"], true);
    assert_eq!(div["result"], "i32");
    assert_eq!(div["error"], serde_json::json!({"named": "CalcError"}));
    assert_eq!(
        v["methods"][2]["params"][0]["shape"],
        serde_json::json!({"seq": "i64"})
    );
    assert_eq!(v["types"]["CalcError"]["enum"][0]["name"], "DivisionByZero");
}

#[test]
fn call_prints_results_out_values_and_application_errors() {
    let svc = Service::start("cl");
    let calc = svc.calc();
    svc.lpc(&["call", &calc, "add", "10", "20"])
        .success()
        .stdout("30\n");
    svc.lpc(&["call", &calc, "add", "--args", r#"{"a":10,"b":20}"#])
        .success()
        .stdout("30\n");
    svc.lpc(&["call", &calc, "add", "--args", "[10, 20]"])
        .success()
        .stdout("30\n");
    svc.lpc(&["call", &calc, "add", "-5", "-7"])
        .success()
        .stdout("-12\n");
    svc.lpc(&["call", &calc, "sum", "[1, 2, 3, 40]"])
        .success()
        .stdout("46\n");

    // `&mut`: the service's new value comes back.
    let out = svc
        .lpc(&[
            "call",
            &svc.compare(),
            "compare_image",
            r#"{"red": 3333.0, "blue": 20.01}"#,
        ])
        .success();
    let text = stdout(&out);
    assert!(text.starts_with("\"Different\"\n"), "{text}");
    assert!(text.contains("info = {"), "{text}");
    assert!(text.contains("\"red\": 2.0"), "{text}");
    assert!(text.contains("\"blue\": 1.0"), "{text}");
    let out = svc
        .lpc(&[
            "call",
            &svc.compare(),
            "compare_image",
            "--json",
            "--compact",
            r#"{"red": 2.1, "blue": 1.1}"#,
        ])
        .success();
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["result"], "Similar");
    assert_eq!(v["out"]["info"]["red"], 2.0);
    assert_eq!(v["out"]["info"]["blue"], 1.0);

    // An application error: exit code 3.
    let out = svc.lpc(&["call", &calc, "checked_div", "1", "0"]).code(3);
    let err = stderr(&out);
    assert!(err.contains("returned an application error"), "{err}");
    assert!(err.contains("\"DivisionByZero\""), "{err}");
    assert!(err.contains("Result<i32, CalcError>"), "{err}");
    let out = svc
        .lpc(&["call", &calc, "checked_div", "1", "0", "--json"])
        .code(3);
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["error"], "DivisionByZero");
    svc.lpc(&["call", &calc, "checked_div", "7", "2"])
        .success()
        .stdout("3\n");
}

#[test]
fn call_errors_say_what_to_do() {
    let svc = Service::start("er");
    let calc = svc.calc();
    let dir = svc.dir().display().to_string();

    // Unknown service.
    let out = svc.lpc(&["call", "nope", "add", "1", "2"]).code(1);
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "no service `nope` in {dir}; `lpc list` shows the live ones"
        )),
        "{err}"
    );
    svc.lpc(&["describe", "nope"])
        .code(1)
        .stderr(contains("no service `nope`"));

    // Unknown method.
    let out = svc.lpc(&["call", &calc, "ad", "1", "2"]).code(1);
    let err = stderr(&out);
    assert!(err.contains("has no method `ad`"), "{err}");
    assert!(err.contains("did you mean `add`?"), "{err}");
    assert!(err.contains("its methods: add, checked_div, sum"), "{err}");
    assert!(err.contains("`lpc describe er-calc`"), "{err}");

    // Bad JSON: which argument, what was wrong, how to quote.
    let out = svc.lpc(&["call", &calc, "add", "1", "hello"]).code(1);
    let err = stderr(&out);
    assert!(
        err.contains("argument 2 `b` (i32) is not valid JSON"),
        "{err}"
    );
    assert!(err.contains("got: hello"), "{err}");
    assert!(err.contains(r#"'"text"'"#), "{err}");
    let out = svc
        .lpc(&["call", &calc, "add", "--args", "{a: 1, b: 2}"])
        .code(1);
    let err = stderr(&out);
    assert!(err.contains("`--args` is not valid JSON"), "{err}");

    // Wrong number of arguments: checked before calling, with the usage.
    let out = svc.lpc(&["call", &calc, "add", "1"]).code(1);
    let err = stderr(&out);
    assert!(
        err.contains("`add` takes 2 arguments (a: i32, b: i32), got 1"),
        "{err}"
    );
    assert!(
        err.contains("usage: lpc call er-calc add <a: i32> <b: i32>"),
        "{err}"
    );
    let out = svc
        .lpc(&["call", &calc, "add", "--args", r#"{"a": 1}"#])
        .code(1);
    assert!(stderr(&out).contains("has no `b`"), "{}", stderr(&out));

    // Wrong types: the service's message names the argument; we add the signature.
    let out = svc.lpc(&["call", &calc, "add", "1", r#""two""#]).code(1);
    let err = stderr(&out);
    assert!(
        err.contains("argument `b` (i32): invalid type: string"),
        "{err}"
    );
    assert!(
        err.contains("signature: fn add(&self, a: i32, b: i32) -> i32"),
        "{err}"
    );
    let out = svc.lpc(&["call", &calc, "sum", r#"[1, "x"]"#]).code(1);
    let err = stderr(&out);
    assert!(err.contains("argument `values` (&[i64])"), "{err}");

    // A command line clap cannot parse: exit code 2.
    svc.lpc(&["call", &calc]).code(2);
    svc.lpc(&["frobnicate"]).code(2);
    // Errors are not coloured when piped.
    assert!(!err.contains('\x1b'), "{err:?}");
}

#[test]
fn monitor_once_shows_calls_and_clients() {
    let svc = Service::start("mo");
    let options = lpc::ClientOptions::new().runtime_dir(svc.dir());
    let client = lpc::Client::connect_dynamic(&svc.calc(), &options).unwrap();
    for i in 0..5 {
        let reply = client.call_json("add", &serde_json::json!([i, 1])).unwrap();
        assert_eq!(reply["result"], i + 1);
    }
    let out = svc
        .lpc(&["monitor", &svc.calc(), "--once", "--interval", "100ms"])
        .success();
    let text = stdout(&out);
    assert!(
        !text.contains('\x1b'),
        "no screen control when piped: {text:?}"
    );
    assert!(text.contains(&format!("pid {}", svc.pid())), "{text}");
    let add = row(&text, "add");
    assert_eq!(add[1], "5", "five calls of add: {text}");
    assert_eq!(add[2], "0.0", "none during the interval: {text}");
    assert_eq!(add[3], "0", "no errors: {text}");
    assert!(add[4].starts_with('≤'), "a p50: {text}");
    assert_eq!(row(&text, "sum")[1], "0", "{text}");
    // This test process is the connected client.
    let me = std::process::id().to_string();
    let client_row = row(&text, &me);
    #[cfg(unix)]
    let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
    // The image's file name without `.exe`.
    #[cfg(windows)]
    let comm = std::env::current_exe()
        .unwrap()
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert_eq!(client_row[3], comm.trim(), "{text}");
    assert_eq!(client_row[5], "5", "its calls: {text}");
    drop(client);
}

#[test]
fn bench_prints_percentiles_and_rate() {
    let svc = Service::start("be");
    let out = svc
        .lpc(&[
            "bench",
            &svc.calc(),
            "add",
            "1",
            "2",
            "--calls",
            "2000",
            "--concurrency",
            "2",
        ])
        .success();
    let text = stdout(&out);
    assert!(text.contains("2 threads sharing one client"), "{text}");
    assert!(text.contains("JSON calls"), "{text}");
    assert!(text.contains("2000 calls in "), "{text}");
    assert!(text.contains("calls/s"), "{text}");
    for label in ["p50", "p90", "p99", "p99.9", "max"] {
        row(&text, label);
    }
    assert!(text.contains("histogram"), "{text}");
    // The service counted them (and the first, checking call).
    let text = stdout(
        &svc.lpc(&["monitor", &svc.calc(), "--once", "--interval", "10ms"])
            .success(),
    );
    assert_eq!(row(&text, "add")[1], "2001", "{text}");

    // A wrong argument is reported once, like `lpc call`, before the load starts.
    svc.lpc(&["bench", &svc.calc(), "add", "1", "x", "--calls", "10"])
        .code(1)
        .stderr(contains("argument 2 `b` (i32) is not valid JSON"));
}

#[test]
fn completions_and_help() {
    let dir = TempDir::new().unwrap();
    let out = lpc_in(dir.path(), &["completions", "bash"]).success();
    let script = stdout(&out);
    assert!(script.contains("lpc"), "{script}");
    assert!(script.len() > 100);
    lpc_in(dir.path(), &["completions", "zsh"])
        .success()
        .stdout(contains("#compdef lpc"));
    for cmd in [
        "list",
        "describe",
        "call",
        "monitor",
        "bench",
        "completions",
        "demo",
    ] {
        lpc_in(dir.path(), &[cmd, "--help"])
            .success()
            .stdout(contains("Example:"));
    }
    let help = stdout(&lpc_in(dir.path(), &["call", "--help"]).success());
    assert!(help.contains("Exit codes"), "{help}");
    assert!(help.contains("3  the call went through"), "{help}");
    let help = stdout(&lpc_in(dir.path(), &["--help"]).success());
    assert!(help.contains("--runtime-dir"), "{help}");
    assert!(help.contains("--timeout"), "{help}");
    // An empty runtime directory lists nothing.
    lpc_in(dir.path(), &["list"])
        .success()
        .stdout(contains("no services in"));
}

/// A service whose one method sleeps, served from this test process.
#[lpc::service]
pub trait Slow {
    /// Sleeps `ms` milliseconds; returns `ms`.
    fn wait(&self, ms: u64) -> u64;
}

struct Sleeper;

impl Slow for Sleeper {
    fn wait(&self, ms: u64) -> u64 {
        std::thread::sleep(Duration::from_millis(ms));
        ms
    }
}

#[test]
fn call_timeout_bounds_the_whole_call_and_names_the_phase() {
    let dir = TempDir::new().unwrap();
    let _service = lpc::Server::bind_with(
        "slow",
        lpc::ServerOptions::new()
            .runtime_dir(dir.path())
            .grace_period(Duration::from_millis(100)),
    )
    .unwrap()
    .spawn(SlowServer::new(Sleeper))
    .unwrap();
    let started = Instant::now();
    let out = lpc_in(
        dir.path(),
        &["call", "slow", "wait", "30000", "--timeout", "1s"],
    )
    .code(4);
    let took = started.elapsed();
    let err = stderr(&out);
    assert!(
        err.contains("service `slow` in method `wait`: no reply within the `--timeout` of 1.00s"),
        "{err}"
    );
    assert!(
        err.contains("the service was executing the call (it may have run)"),
        "{err}"
    );
    assert!(err.contains("hint: the method may have run"), "{err}");
    assert!(
        (Duration::from_secs(1)..Duration::from_secs(10)).contains(&took),
        "`lpc call --timeout 1s` took {took:?}"
    );
    // A call that fits in the bound goes through.
    lpc_in(
        dir.path(),
        &["call", "slow", "wait", "10", "--timeout", "5s"],
    )
    .success()
    .stdout(contains("10"));
}

/// `lpc ARGS...` started in the background, its stdout lines sent to the receiver.
#[cfg_attr(not(unix), allow(dead_code))] // used by Unix-only tests
fn spawn_lpc(dir: &Path, args: &[&str]) -> (Child, mpsc::Receiver<String>) {
    let mut child = StdCommand::new(LPC)
        .arg("--runtime-dir")
        .arg(dir)
        .args(args)
        .env_remove("LPC_RUNTIME_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let rx = stdout_lines(&mut child);
    (child, rx)
}

/// The lines `child` prints, sent to the receiver as they come (the child's stdout is drained
/// to its end, so it never blocks on a full pipe).
fn stdout_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    rx
}

/// Waits (at most 20 s) for a line containing `text`.
#[cfg_attr(not(unix), allow(dead_code))] // used by Unix-only tests
fn wait_for_line(lines: &mpsc::Receiver<String>, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.contains(text) => return,
            Ok(_) => {}
            Err(e) => panic!("no line with {text:?}: {e}"),
        }
    }
}

/// Waits (at most `within`) for `child` to exit; its exit code and stderr.
#[cfg_attr(not(unix), allow(dead_code))] // used by Unix-only tests
fn finish(mut child: Child, within: Duration) -> (Option<i32>, String) {
    let deadline = Instant::now() + within;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`lpc` still running after {within:?}: it hangs");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    (status.code(), err)
}

#[cfg(unix)]
fn signal(pid: u32, signal: rustix::process::Signal) {
    let pid = rustix::process::Pid::from_raw(pid as i32).unwrap();
    rustix::process::kill_process(pid, signal).unwrap();
}

// Unix: SIGSTOP makes the service stop answering.
#[cfg(unix)]
#[test]
fn a_service_that_stops_answering_ends_monitor_bench_and_call() {
    use rustix::process::Signal;
    let svc = Service::start("st");
    let calc = svc.calc();
    let (monitor, monitor_out) = spawn_lpc(
        svc.dir(),
        &["--timeout", "1s", "monitor", &calc, "--interval", "100ms"],
    );
    wait_for_line(&monitor_out, &format!("pid {}", svc.pid()));
    let (bench, bench_out) = spawn_lpc(
        svc.dir(),
        &[
            "--timeout",
            "1s",
            "bench",
            &calc,
            "add",
            "1",
            "2",
            "--duration",
            "120s",
            "--concurrency",
            "2",
        ],
    );
    // Printed once the first call went through: the load is running.
    wait_for_line(&bench_out, "lpc bench:");

    // The service process stops (SIGSTOP): it holds its sockets but answers nothing.
    signal(svc.pid(), Signal::STOP);
    let (code, err) = finish(bench, Duration::from_secs(20));
    assert_eq!(code, Some(4), "{err}");
    assert!(
        err.contains(&format!(
            "service `{calc}` in method `add`: no reply within the `--timeout` of 1.00s"
        )),
        "{err}"
    );
    assert!(err.contains("calls had completed"), "{err}");
    let (code, err) = finish(monitor, Duration::from_secs(20));
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("timed out after 1s"), "{err}");
    assert!(
        err.contains(&format!(
            "service `{calc}` (pid {}) stopped answering",
            svc.pid()
        )),
        "{err}"
    );
    let out = svc
        .lpc(&["call", &calc, "add", "1", "2", "--timeout", "500ms"])
        .code(4);
    let err = stderr(&out);
    assert!(err.contains("timed out after 500ms"), "{err}");
    assert!(err.contains("it may be busy, hung or stopped"), "{err}");

    // Resumed, it answers again.
    signal(svc.pid(), Signal::CONT);
    svc.lpc(&["call", &calc, "add", "1", "2"])
        .success()
        .stdout(contains("3"));
}

/// What a hostile service puts in everything the CLI shows of it: sequences that clear the
/// screen, retitle the window (OSC, ended by a bell) and recolour through a C1 CSI, a carriage
/// return and a backspace, a right-to-left override, DEL, and a newline that starts a fake
/// line of output.
const EVIL: &str = "\x1b[2J\x1b]0;pwned\x07\u{9b}31m\r\x08\u{202e}\x7f\nFAKE line";

/// The hostile service's interface, statistics and clients: `EVIL` in every string.
fn hostile_answers(reply: lpc::testing::RawReply) -> lpc::testing::RawAnswers {
    use lpc::info::{ClientInfo, LatencyHistogram, MethodStats, ServiceInfo, LATENCY_BUCKETS};
    use lpc::shape::{Field, Shape, TypeDef, Variant, VariantFields};
    use lpc::{InterfaceInfo, MethodInfo, ParamInfo};
    let evil = |prefix: &str| format!("{prefix}{EVIL}");
    let mut types = lpc::shape::TypeTable::new();
    types.insert(
        evil("Evil"),
        TypeDef::Struct(vec![Field {
            name: evil("field"),
            shape: Shape::Named(evil("Kind")),
        }]),
    );
    types.insert(
        evil("Kind"),
        TypeDef::Enum(vec![Variant {
            name: evil("Variant"),
            fields: VariantFields::Unit,
        }]),
    );
    let interface = InterfaceInfo {
        name: evil("Iface"),
        fingerprint: 1,
        methods: vec![MethodInfo {
            name: evil("run"),
            id: 7,
            signature: evil("fn run(&self) -> "),
            params: vec![ParamInfo {
                name: evil("arg"),
                ty: evil("&mut Evil"),
                out: true,
                shape: Shape::Named(evil("Evil")),
            }],
            output: evil("Result<u32, "),
            returns_result: true,
            oneway: false,
            result: Shape::U32,
            error: Some(Shape::Named(evil("Kind"))),
            fingerprint: 2,
        }],
        types,
    };
    let info = ServiceInfo {
        service: evil("svc"),
        pid: Some(1),
        user: evil("user"),
        uptime: Duration::from_secs(5),
        interface: interface.clone(),
        connections: 1,
        clients: vec![ClientInfo {
            pid: Some(2),
            user: evil("user"),
            gid: Some(0),
            process: evil("proc"),
            connected_for: Duration::from_secs(1),
            calls: 3,
        }],
        methods: vec![MethodStats {
            name: evil("run"),
            calls: 3,
            errors: 1,
            latency: LatencyHistogram {
                buckets: vec![1; LATENCY_BUCKETS],
            },
        }],
        unknown_calls: 0,
        events: None,
        subscribers: Vec::new(),
    };
    lpc::testing::RawAnswers {
        info,
        interface,
        refusal: None,
        reply,
    }
}

/// Runs `lpc ARGS` in `dir`, with colour forced or not; its stdout and stderr together.
fn run_lpc(dir: &Path, args: &[&str], colour: bool) -> String {
    let mut command = Command::new(LPC);
    command
        .arg("--runtime-dir")
        .arg(dir)
        .args(args)
        .env_remove("LPC_RUNTIME_DIR")
        .env_remove("NO_COLOR")
        .timeout(Duration::from_secs(60));
    if colour {
        command.env("CLICOLOR_FORCE", "1");
    } else {
        command.env_remove("CLICOLOR_FORCE");
    }
    let out = output_retrying_wine(&mut command);
    let mut text = String::from_utf8(out.stdout).expect("UTF-8 on stdout");
    text.push_str(&String::from_utf8(out.stderr).expect("UTF-8 on stderr"));
    text
}

/// `command.output()`, tried again when process creation itself fails with
/// `ERROR_INTERNAL_ERROR` (1359): Wine's `CreateProcess` returns it now and then when many
/// processes start at once (seen twice in CI: in the hostile-bytes test, and in `lpc list`
/// through `lpc_in`). The child never ran, so trying again hides nothing of lpc's; any other
/// error fails the test. Every spawn of `lpc` that runs under Wine goes through here.
fn output_retrying_wine(command: &mut Command) -> std::process::Output {
    retrying_wine(|| command.output())
}

/// Runs `start` (which creates a process) until it succeeds, at most 3 more times on
/// `ERROR_INTERNAL_ERROR` under Wine (see [`output_retrying_wine`]).
fn retrying_wine<T>(mut start: impl FnMut() -> std::io::Result<T>) -> T {
    const WINE_CREATE_PROCESS_INTERNAL_ERROR: i32 = 1359;
    let mut tries = 0;
    loop {
        match start() {
            Ok(out) => return out,
            Err(e)
                if cfg!(windows)
                    && e.raw_os_error() == Some(WINE_CREATE_PROCESS_INTERNAL_ERROR)
                    && tries < 3 =>
            {
                tries += 1;
                eprintln!("process creation failed ({e}), trying again ({tries}/3)");
            }
            Err(e) => panic!("cannot start a process: {e}"),
        }
    }
}

/// Checks that `text` (the output of `what`) carries no byte of `EVIL` raw: without colour no
/// control character but newlines, and no bidirectional override; with colour, every ESC
/// starts a colour sequence of lpc's own (`ESC [ digits;… m`). No line is the fake one.
fn assert_nothing_raw(text: &str, what: &str, colour: bool) {
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let sgr = colour && c == '\x1b' && {
            let rest: String = chars[i + 1..].iter().take(16).collect();
            let body = rest.strip_prefix('[').unwrap_or("");
            let end = body.find(|c: char| !(c.is_ascii_digit() || c == ';'));
            end.is_some_and(|e| body[e..].starts_with('m'))
        };
        let bad = (c.is_control() && c != '\n' && !sgr) || ('\u{202a}'..='\u{202e}').contains(&c);
        assert!(!bad, "`{what}` printed {c:?} raw at {i}:\n{text}");
    }
    assert!(
        !text.lines().any(|l| l.trim_start().starts_with("FAKE")),
        "`{what}` let the service start a line:\n{text}"
    );
}

#[test]
fn a_hostile_services_bytes_never_reach_the_terminal_raw() {
    use lpc::testing::{RawReply, ScriptedService};
    let dir = TempDir::new().unwrap();
    let _panics = ScriptedService::start(
        dir.path(),
        "evil",
        hostile_answers(RawReply::Panicked(format!("the handler panicked: {EVIL}"))),
    )
    .unwrap();
    let reply = serde_json::json!({
        "result": format!("ok{EVIL}"),
        "out": {format!("arg{EVIL}"): format!("new{EVIL}")},
    });
    let _replies = ScriptedService::start(
        dir.path(),
        "evil-ok",
        hostile_answers(RawReply::Result(serde_json::to_vec(&reply).unwrap())),
    )
    .unwrap();
    let mut refusing = hostile_answers(RawReply::Result(Vec::new()));
    refusing.refusal = Some(format!("go away{EVIL}"));
    let _refuses = ScriptedService::start(dir.path(), "evil-no", refusing).unwrap();

    let method = format!("run{EVIL}");
    let runs: Vec<Vec<&str>> = vec![
        vec!["list"],
        vec!["list", "--json"],
        vec!["describe", "evil"],
        vec!["describe", "evil", "--json"],
        vec!["monitor", "evil", "--once", "--interval", "10ms"],
        vec!["call", "evil", &method, "{}"],
        vec!["call", "evil", "nothing"],
        vec!["call", "evil-ok", &method, "{}"],
        vec!["call", "evil-ok", &method, "{}", "--json"],
        vec!["call", "evil-ok", &method, "{}", "--json", "--compact"],
        vec!["call", "evil-no", &method, "{}"],
    ];
    for args in &runs {
        let what = format!("lpc {}", args.join(" "));
        for colour in [false, true] {
            let text = run_lpc(dir.path(), args, colour);
            assert_nothing_raw(&text, &what, colour);
            // What the service sent is shown, escaped, not dropped.
            assert!(
                text.contains(r"\u{1b}[2J") || text.contains(r"\u001b[2J"),
                "`{what}` does not show the service's text escaped:\n{text}"
            );
        }
    }

    // The JSON outputs stay JSON, with the service's strings intact for a parser.
    let listed = run_lpc(dir.path(), &["list", "--json"], false);
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed["services"][0]["interface"], format!("Iface{EVIL}"));
    let out = output_retrying_wine(
        Command::new(LPC)
            .arg("--runtime-dir")
            .arg(dir.path())
            .args(["call", "evil-ok", &method, "{}", "--json"])
            .timeout(Duration::from_secs(60)),
    );
    let back: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(back, reply);
}

/// `unshare`'s arguments that run a program in a new PID namespace with its own /proc, killed
/// with `unshare`.
#[cfg(unix)]
const IN_NEW_PID_NAMESPACE: [&str; 5] =
    ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"];

// Unix: PID namespaces (unshare) and another uid.
#[cfg(unix)]
#[test]
fn pids_from_another_pid_namespace_show_as_unknown() {
    lpc::testing::require_pid_namespaces();
    // A service in a namespace of its own: it cannot see its clients' pids.
    let svc = Service::start_with("ns", &IN_NEW_PID_NAMESPACE, TempDir::new().unwrap(), None);
    let calc = svc.calc();
    let options = lpc::ClientOptions::new().runtime_dir(svc.dir());
    let client = lpc::Client::connect_dynamic(&calc, &options).unwrap();
    let sum = client.call_json("add", &serde_json::json!([1, 2])).unwrap();
    assert_eq!(sum["result"], 3);
    let text = stdout(
        &svc.lpc(&["monitor", &calc, "--once", "--interval", "10ms"])
            .success(),
    );
    let me = row(&text, "unknown");
    assert_eq!(me[1], "0", "{text}");
    assert_eq!(me[3], "?", "no pid, no process name: {text}");
    // Seen from here, the service's pid is the kernel's (it calls itself 1).
    let text = stdout(&svc.lpc(&["list"]).success());
    let pid: u32 = row(&text, &calc)[1].parse().unwrap();
    assert_ne!(pid, 1, "{text}");
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_eq!(comm.trim(), "lpc", "{text}");

    // The CLI in a namespace of its own: it cannot see the service's pid.
    let outside = Service::start("out");
    let in_namespace = |args: &[&str]| {
        Command::new(IN_NEW_PID_NAMESPACE[0])
            .args(&IN_NEW_PID_NAMESPACE[1..])
            .arg(LPC)
            .arg("--runtime-dir")
            .arg(outside.dir())
            .args(args)
            .env_remove("LPC_RUNTIME_DIR")
            .timeout(Duration::from_secs(60))
            .assert()
    };
    let text = stdout(&in_namespace(&["list"]).success());
    assert_eq!(row(&text, &outside.calc())[1], "unknown", "{text}");
    in_namespace(&["call", &outside.calc(), "add", "2", "3"])
        .success()
        .stdout("5\n");
    let text = stdout(&in_namespace(&["describe", &outside.calc()]).success());
    assert!(text.contains("(pid unknown)"), "{text}");
}

// Unix: PID namespaces (unshare) and another uid.
#[cfg(unix)]
#[test]
fn a_service_of_another_user_is_refused_unless_named() {
    lpc::testing::require_pid_namespaces();
    // Uid 4242 took the name first, in a directory of its own in a shared /tmp-like place.
    let tmp = TempDir::new().unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    }
    let setpriv = ["setpriv", "--reuid=4242", "--regid=4242", "--clear-groups"];
    let imp = Service::start_with("imp", &setpriv, tmp, Some("planted"));
    let calc = imp.calc();

    let failed = imp.lpc(&["call", &calc, "add", "1", "2"]).failure().code(1);
    let err = stderr(&failed);
    assert!(
        err.contains(&format!("service `{calc}` denied access"))
            && err.contains("is served by a process of user 4242, not of user 0")
            && err.contains("`lpc --service-user UID ...`"),
        "{err}"
    );
    assert!(stdout(&failed).is_empty());
    let text = stdout(&imp.lpc(&["list"]).success());
    assert!(
        text.contains("unresponsive:") && text.contains("user 4242, not of user 0"),
        "{text}"
    );
    let err = stderr(&imp.lpc(&["monitor", &calc, "--once"]).failure());
    assert!(err.contains("user 4242, not of user 0"), "{err}");

    // Named, it is reached, and its own policy decides (the demo service admits only its
    // own user, so it refuses us in turn).
    let text = stdout(&imp.lpc(&["--service-user", "4242", "list"]).success());
    assert!(
        text.contains("is not admitted by service") && !text.contains("not of user 0"),
        "{text}"
    );
    let err = stderr(
        &imp.lpc(&["--service-user", "4242", "call", &calc, "add", "1", "2"])
            .failure(),
    );
    assert!(err.contains("is not admitted by service"), "{err}");
}

/// `lpc describe` (which shows an example argument of each parameter) and `lpc monitor`
/// against a service whose answer to a query lies: a parameter that is an array of 2^60
/// elements, types that each hold a thousand of the next, eight deep, and statistics that
/// overflow when summed. Run with the address space limited to 512 MiB (`prlimit`): before the
/// example was bounded, the first was a `vec![_; 2^60]`.
// Unix: the lpc command runs under prlimit(1)'s memory limit.
#[cfg(unix)]
#[test]
fn describe_and_monitor_survive_a_service_whose_query_answer_lies() {
    use lpc::info::{LatencyHistogram, MethodStats, ServiceInfo};
    use lpc::shape::{Shape, TypeDef};
    use lpc::testing::{RawAnswers, RawReply, ScriptedService};
    use lpc::{InterfaceInfo, MethodInfo, ParamInfo};

    let dir = TempDir::new().unwrap();
    let param = |name: &str, shape: Shape| ParamInfo {
        name: name.into(),
        ty: "T".into(),
        out: false,
        shape,
    };
    let huge = Shape::Array {
        item: Box::new(Shape::U8),
        len: 1 << 60,
    };
    let mut types = lpc::shape::TypeTable::new();
    for level in 0..8 {
        let next = Shape::Named(format!("T{}", level + 1));
        types.insert(format!("T{level}"), TypeDef::Tuple(vec![next; 1000]));
    }
    let method = MethodInfo {
        name: "m".into(),
        id: lpc::method_id("m"),
        signature: "fn m(&self, a: [u8; 1152921504606846976], b: T0)".into(),
        params: vec![param("a", huge), param("b", Shape::Named("T0".into()))],
        output: "()".into(),
        returns_result: false,
        oneway: false,
        result: Shape::Unit,
        error: None,
        fingerprint: 0,
    };
    let info = ServiceInfo {
        service: "liar".into(),
        pid: Some(1),
        user: "0".into(),
        uptime: Duration::from_secs(1),
        interface: InterfaceInfo {
            name: "Liar".into(),
            fingerprint: 0,
            methods: vec![method],
            types,
        },
        connections: 0,
        clients: Vec::new(),
        methods: vec![
            MethodStats {
                name: "m".into(),
                calls: u64::MAX,
                errors: u64::MAX,
                latency: LatencyHistogram {
                    buckets: vec![u64::MAX; 40],
                },
            };
            2
        ],
        unknown_calls: 0,
        events: None,
        subscribers: Vec::new(),
    };
    let runs: [&[&str]; 3] = [
        &["describe", "liar"],
        &["describe", "liar", "--json"],
        &["monitor", "liar", "--once"],
    ];
    let answers = RawAnswers {
        interface: info.interface.clone(),
        info,
        refusal: None,
        reply: RawReply::Result(Vec::new()),
    };
    let _service = ScriptedService::start(dir.path(), "liar", answers).unwrap();
    for args in runs {
        let out = Command::new("prlimit")
            .arg(format!("--as={}", 512u64 << 20))
            .arg(LPC)
            .arg("--runtime-dir")
            .arg(dir.path())
            .args(args)
            .env_remove("LPC_RUNTIME_DIR")
            .timeout(Duration::from_secs(60))
            .assert()
            .success();
        let text = stdout(&out);
        assert!(text.len() < 1 << 20, "{args:?}: {} bytes", text.len());
        assert!(text.contains('m'), "{args:?}: {text}");
    }
}

#[test]
fn call_posts_a_one_way_method_and_describe_and_monitor_mark_it() {
    let svc = Service::start("ow");
    let name = format!("{}-copydata", svc.name);
    svc.lpc(&["call", &name, "copy_data", "7", "[1, 2, 3]"])
        .success()
        .stdout("posted\n");
    svc.lpc(&["call", "--oneway", "--json", &name, "copy_data", "7", "[4]"])
        .success()
        .stdout(contains("\"posted\": true"));
    // A call after the posts sees both handled.
    let out = stdout(&svc.lpc(&["call", "--compact", &name, "received"]).success());
    assert_eq!(out, "[[7,2,4]]\n");
    svc.lpc(&["call", "--oneway", &name, "received"])
        .code(1)
        .stderr(contains("is a two-way method: it cannot be posted"));
    let text = stdout(&svc.lpc(&["describe", &name]).success());
    assert!(
        text.contains("#[lpc(oneway)] fn copy_data(&self, kind: u32, bytes: Vec<u8>)")
            && text.contains("one-way"),
        "{text}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&svc.lpc(&["describe", "--json", &name]).success())).unwrap();
    assert_eq!(json["methods"][0]["oneway"], true);
    assert_eq!(json["methods"][1]["oneway"], false);
    let text = stdout(&svc.lpc(&["monitor", "--once", &name]).success());
    let row = row(&text, "copy_data");
    assert_eq!(row[1], "(one-way)", "{text}");
    assert_eq!(row[2], "2", "two messages handled: {text}");
}
