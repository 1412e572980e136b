//! `lpc gen c`: the typed C stubs of a running service's interface, compiled with the system's
//! C compiler (`-Werror`) against lpc's C ABI, and run as processes — a C client of the Rust
//! calc service, a C client of the compare service (an in/out struct), and the calc service
//! written in C on the generated skeleton, called by a typed Rust client and by `lpc call`.

// Unix: the stubs are compiled with the system's C compiler and linked against liblpc_c for Linux.
#![cfg(unix)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const LPC: &str = env!("CARGO_BIN_EXE_lpc");

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A process that printed `ready` on stdout; killed on drop.
struct Ready(Child);

impl Ready {
    fn start(mut command: Command) -> Ready {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
                Ok(line) if line.starts_with("ready") => return Ready(child),
                Ok(_) => {}
                Err(_) => panic!("{command:?} printed no `ready` within 30 s"),
            }
        }
    }
}

impl Drop for Ready {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs a command that must succeed without a word on stderr (a compiler's warnings).
fn quiet(command: &mut Command) -> String {
    let out = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "{command:?}: {stderr}"
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Compiles C `sources` (paths) into `dir/name`, linked with lpc-c's static library.
fn build(dir: &Path, name: &str, sources: &[PathBuf]) -> PathBuf {
    let lib = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .join("liblpc_c.a");
    let program = dir.join(name);
    let mut cc = Command::new("cc");
    cc.args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-I"])
        .arg(root().join("lpc-c/include"))
        .arg("-I")
        .arg(dir)
        .args(sources)
        .arg(lib)
        .args(["-lpthread", "-ldl", "-lm", "-o"])
        .arg(&program);
    quiet(&mut cc);
    program
}

fn run_in(runtime: &Path, program: &Path, args: &[&str]) -> String {
    quiet(
        Command::new(program)
            .args(args)
            .env("LPC_RUNTIME_DIR", runtime),
    )
}

#[test]
fn generated_c_stubs_call_rust_services_and_serve_rust_clients() {
    let dir = tempfile::TempDir::new().unwrap();
    let (runtime, out) = (dir.path().join("run"), dir.path().join("gen"));
    std::fs::create_dir_all(&runtime).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    let mut demo = Command::new(LPC);
    demo.args(["__demo-service", "t"])
        .env("LPC_RUNTIME_DIR", &runtime);
    let _demo = Ready::start(demo);

    for service in ["t-calc", "t-compare"] {
        let wrote = quiet(
            Command::new(LPC)
                .args(["gen", "c", service, "--out"])
                .arg(&out)
                .env("LPC_RUNTIME_DIR", &runtime),
        );
        assert_eq!(wrote.lines().count(), 3, "{wrote}");
    }
    // The headers compile as C++ too.
    for header in ["calc.h", "compare.h"] {
        quiet(
            Command::new("c++")
                .args([
                    "-std=c++11",
                    "-Wall",
                    "-Wextra",
                    "-Werror",
                    "-pedantic",
                    "-fsyntax-only",
                    "-x",
                    "c++",
                    "-I",
                ])
                .arg(root().join("lpc-c/include"))
                .arg(out.join(header)),
        );
    }
    let examples = root().join("examples/c");

    // A C client of the Rust calc service.
    let client = build(
        &out,
        "calc_stub_client",
        &[examples.join("calc_stub_client.c"), out.join("calc.c")],
    );
    assert_eq!(
        run_in(&runtime, &client, &["t-calc"]),
        "add(10, 20) = 30\n\
         checked_div(7, 2) = ok 3\n\
         checked_div(1, 0) = error DivisionByZero\n\
         sum = 1099511627772\n\
         sum of 64 = 70368744177664\n"
    );

    // A C client of the compare service: the struct the service writes into comes back.
    let compare = build(
        &out,
        "compare_client",
        &[examples.join("compare_client.c"), out.join("compare.c")],
    );
    assert_eq!(
        run_in(&runtime, &compare, &["t-compare"]),
        "verdict Similar; the service wrote red=2.00 blue=1.00\n"
    );

    // The calc service in C, on the generated skeleton.
    let service = build(
        &out,
        "calc_stub_service",
        &[
            examples.join("calc_stub_service.c"),
            out.join("calc.c"),
            out.join("calc_service.c"),
        ],
    );
    let mut command = Command::new(&service);
    command.arg("c-calc").env("LPC_RUNTIME_DIR", &runtime);
    let _c_service = Ready::start(command);
    let options = lpc::ClientOptions::new().runtime_dir(&runtime);
    let calc = lpc_examples::calc::CalcClient::connect_with("c-calc", &options).unwrap();
    assert_eq!(calc.add(i32::MAX, 1).unwrap(), i32::MIN);
    assert_eq!(
        calc.checked_div(1, 0).unwrap(),
        Err(lpc_examples::calc::CalcError::DivisionByZero)
    );
    assert_eq!(
        calc.checked_div(i32::MIN, -1).unwrap(),
        Err(lpc_examples::calc::CalcError::Overflow)
    );
    assert_eq!(calc.sum(&[5, -7, 1 << 40]).unwrap(), (1 << 40) - 2);
    // The C client through its stubs, and a JSON call, against the C service.
    assert!(run_in(&runtime, &client, &["c-calc"]).starts_with("add(10, 20) = 30\n"));
    let json = quiet(
        Command::new(LPC)
            .args(["call", "c-calc", "sum", "[1, 2, 3]"])
            .env("LPC_RUNTIME_DIR", &runtime),
    );
    assert_eq!(json.trim(), "6");
}

#[test]
fn a_method_with_a_type_c_cannot_carry_is_left_out_naming_it() {
    let dir = tempfile::TempDir::new().unwrap();
    let doc = dir.path().join("maps.json");
    let text = std::fs::read_to_string(root().join("examples/c/calc.interface.json"))
        .unwrap()
        .replacen(
            "\"shape\": \"i32\"",
            "\"shape\": {\"map\": {\"key\": \"str\", \"value\": \"i32\"}}",
            1,
        );
    std::fs::write(&doc, text).unwrap();
    let out = Command::new(LPC)
        .args(["gen", "c", "--from"])
        .arg(&doc)
        .arg("--out")
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let why = "method add: not supported in C: maps (parameter `a`)";
    assert!(stderr.contains(&format!("left out {why}")), "{stderr}");
    let header = std::fs::read_to_string(dir.path().join("calc.h")).unwrap();
    assert!(
        header.contains(&format!("/* Left out: {why}. */")),
        "{header}"
    );
    assert!(!header.contains("calc_add("), "{header}");
    assert!(header.contains("calc_sum("), "{header}");
    // What is generated still compiles without a warning.
    quiet(
        Command::new("cc")
            .args([
                "-std=c99",
                "-Wall",
                "-Wextra",
                "-Werror",
                "-pedantic",
                "-c",
                "-I",
            ])
            .arg(root().join("lpc-c/include"))
            .arg("-I")
            .arg(dir.path())
            .arg(dir.path().join("calc.c"))
            .arg("-o")
            .arg(dir.path().join("calc.o")),
    );
}

#[test]
fn a_c_client_drives_the_drawing_services_window_through_generated_stubs() {
    let xvfb = lpc_draw::testing::Xvfb::start().unwrap();
    let dir = tempfile::TempDir::new().unwrap();
    let (runtime, out) = (dir.path().join("run"), dir.path().join("gen"));
    std::fs::create_dir_all(&runtime).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    let mut service = Command::new(LPC);
    service
        .args(["__draw-service", "canvas"])
        .env("DISPLAY", xvfb.display())
        .env_remove("WAYLAND_DISPLAY")
        .env("LPC_RUNTIME_DIR", &runtime);
    let _service = Ready::start(service);
    quiet(
        Command::new(LPC)
            .args(["gen", "c", "canvas", "--out"])
            .arg(&out)
            .env("LPC_RUNTIME_DIR", &runtime),
    );
    let client = build(
        &out,
        "draw_client",
        &[root().join("examples/c/draw_client.c"), out.join("draw.c")],
    );
    assert_eq!(
        run_in(&runtime, &client, &["canvas"]),
        "snapshot 480x320: inside the rectangle red=200, outside red=255\n"
    );
    // The window itself, seen by a Rust client: the rectangle C drew, and only there.
    let options = lpc::ClientOptions::new().runtime_dir(&runtime);
    let draw = lpc_draw::DrawClient::connect_with("canvas", &options).unwrap();
    let shot = draw.snapshot().unwrap();
    assert_eq!(shot.rgb(10, 100), Some([200, 30, 30]));
    assert_eq!(shot.rgb(209, 149), Some([200, 30, 30]));
    assert_eq!(shot.rgb(210, 149), Some([255, 255, 255]));
    assert_eq!(shot.rgb(9, 120), Some([255, 255, 255]));
    assert_eq!(shot.rgb(100, 200), Some([20, 20, 160]));
}
