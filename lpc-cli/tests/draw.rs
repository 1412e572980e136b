//! `lpc demo draw` as a user runs it, on a private X server: the service and client processes
//! with their windows, a script, and the screenshot of both windows.

// Unix: the windows open under Xvfb.
#![cfg(unix)]

use std::process::Command;

use lpc_draw::testing::Xvfb;

const LPC: &str = env!("CARGO_BIN_EXE_lpc");

/// The RGBA pixels of a PNG file, with its size.
fn read_png(path: &std::path::Path) -> (u32, u32, Vec<u8>) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgba);
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf)
}

/// The service shut down cleanly: no socket is left in the runtime directory (only the
/// marker lpc leaves in a directory it created).
fn assert_no_socket_left(runtime: &std::path::Path) {
    let left: Vec<_> = std::fs::read_dir(runtime)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|name| name != ".lpc-created")
        .collect();
    assert!(left.is_empty(), "left in the runtime directory: {left:?}");
}

#[test]
fn demo_draw_runs_a_script_in_the_client_and_the_service_window_shows_it() {
    let xvfb = Xvfb::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let runtime = dir.path().join("runtime");
    let script = dir.path().join("script.txt");
    std::fs::write(
        &script,
        "# blue rectangle, red line\nset_color 0 0 255\ndraw_rectangle 10 100 210 150\n\
         set_color 255 0 0\ndraw_line 0 200 99 200\n",
    )
    .unwrap();
    let png = dir.path().join("both.png");
    let out = Command::new(LPC)
        .arg("demo")
        .arg("draw")
        .arg("--script")
        .arg(&script)
        .arg("--screenshot")
        .arg(&png)
        .env("DISPLAY", xvfb.display())
        .env_remove("WAYLAND_DISPLAY")
        .env("LPC_RUNTIME_DIR", &runtime)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("process A (pid"), "{stdout}");
    assert!(
        stdout.contains("B (client): called draw_rectangle(10, 100, 210, 150)"),
        "{stdout}"
    );
    assert!(stdout.contains("both processes have exited"), "{stdout}");
    // Both processes shut down cleanly: the service's socket is gone.
    assert_no_socket_left(&runtime);

    // The screenshot: the client's window (240 wide) at x 12, the service's at x 264; both
    // under a 20-pixel title bar at y 12.
    let (w, h, rgba) = read_png(&png);
    assert_eq!((w, h), (12 + 240 + 12 + 480 + 12, 12 + 20 + 320 + 12));
    let at = |x: u32, y: u32| {
        let (x, y) = (264 + x, 32 + y);
        let i = ((y * w + x) * 4) as usize;
        [rgba[i], rgba[i + 1], rgba[i + 2]]
    };
    for (x, y) in [(10, 100), (209, 149), (110, 125)] {
        assert_eq!(at(x, y), [0, 0, 255], "inside the rectangle at {x}, {y}");
    }
    for (x, y) in [(9, 100), (210, 150), (110, 99), (300, 50)] {
        assert_eq!(
            at(x, y),
            [255, 255, 255],
            "outside the rectangle at {x}, {y}"
        );
    }
    assert_eq!(at(50, 200), [255, 0, 0], "the line");
    assert_eq!(at(50, 201), [255, 255, 255], "below the line");
}

#[test]
fn demo_draw_without_a_display_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(LPC)
        .args(["demo", "draw"])
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .env("LPC_RUNTIME_DIR", dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no display"), "{stderr}");
    assert!(stderr.contains("Xvfb"), "{stderr}");
}

#[test]
fn demo_draw_reports_a_bad_script_line_and_stops_both_processes() {
    let xvfb = Xvfb::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let runtime = dir.path().join("runtime");
    let script = dir.path().join("bad.txt");
    std::fs::write(&script, "clear\ndraw_circle 1 2 3\n").unwrap();
    let out = Command::new(LPC)
        .arg("demo")
        .arg("draw")
        .arg("--script")
        .arg(&script)
        .env("DISPLAY", xvfb.display())
        .env_remove("WAYLAND_DISPLAY")
        .env("LPC_RUNTIME_DIR", &runtime)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("line 2: unknown command `draw_circle`"),
        "{stderr}"
    );
    assert!(stderr.contains("the client process failed"), "{stderr}");
    assert_no_socket_left(&runtime);
}

/// Sends each line of `from` on a channel; the channel disconnects at end of file, that is
/// once every process holding the pipe's other end has exited.
fn lines_of(from: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(from).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    rx
}

/// Reads `lines` until one contains `wanted` (at most 30 s); panics with what came before.
fn line_with(lines: &std::sync::mpsc::Receiver<String>, wanted: &str) -> String {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut seen = Vec::new();
    loop {
        let left = until.saturating_duration_since(std::time::Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.contains(wanted) => return line,
            Ok(line) => seen.push(line),
            Err(e) => panic!("no line with {wanted:?} ({e}); got {seen:?}"),
        }
    }
}

/// A person's click: xdotool moves the pointer over B's `draw_rectangle` button and clicks
/// (X's XTEST input, as from a mouse); A's window then holds the rectangle. Then the demo is
/// killed, and both children exit by themselves.
#[test]
fn a_click_on_the_clients_button_draws_in_the_services_window() {
    let xvfb = Xvfb::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let runtime = dir.path().join("runtime");
    let mut demo = std::process::Command::new(LPC)
        .args(["demo", "draw"])
        .env("DISPLAY", xvfb.display())
        .env_remove("WAYLAND_DISPLAY")
        .env("LPC_RUNTIME_DIR", &runtime)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = lines_of(demo.stdout.take().unwrap());
    // The children inherit the demo's stderr: it ends only when all three have exited.
    let err = lines_of(demo.stderr.take().unwrap());
    let a = line_with(&out, "process A (pid");
    let name = a.split('`').nth(1).expect("the service's name").to_owned();
    line_with(&out, "B (client): ready: client window open");

    // The button's centre, in the client window's coordinates (x 12..228, y 40..62).
    let xdotool = |args: &[&str]| {
        let o = std::process::Command::new("xdotool")
            .args(args)
            .env("DISPLAY", xvfb.display())
            .output()
            .expect("xdotool (scripts/setup.sh installs it)");
        assert!(o.status.success(), "xdotool {args:?}: {o:?}");
        String::from_utf8_lossy(&o.stdout).trim().to_owned()
    };
    let window = xdotool(&["search", "--name", "B: lpc drawing client"]);
    let window = window
        .lines()
        .next()
        .expect("the client's window")
        .to_owned();
    xdotool(&["mousemove", "--window", &window, "100", "51", "click", "1"]);
    line_with(
        &out,
        "B (client): called draw_rectangle(10, 100, 210, 150) (button draw_rectangle)",
    );

    let options = lpc::ClientOptions::new().runtime_dir(&runtime);
    let draw = lpc_draw::DrawClient::connect_with(&name, &options).unwrap();
    let snap = draw.snapshot().unwrap();
    assert_eq!(snap.rgb(10, 100), Some([0, 0, 0]));
    assert_eq!(snap.rgb(209, 149), Some([0, 0, 0]));
    assert_eq!(snap.rgb(210, 149), Some([255, 255, 255]));
    assert_eq!(snap.rgb(10, 99), Some([255, 255, 255]));
    drop(draw);

    // Killed, the demo cannot stop its children: they see their stdin close and exit.
    let pid = rustix::process::Pid::from_raw(demo.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let _ = demo.wait();
    loop {
        match err.recv_timeout(std::time::Duration::from_secs(30)) {
            Ok(_) => continue,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(e) => panic!("the demo's children did not exit: {e}"),
        }
    }
    assert_no_socket_left(&runtime);
}
