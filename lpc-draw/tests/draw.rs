//! The drawing service as a real process with a real window, under a private Xvfb: an lpc
//! client in this process draws through it and checks the pixels of `snapshot()`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use lpc_draw::testing::Xvfb;
use lpc_draw::{DrawClient, Snapshot};

const WAIT: Duration = Duration::from_secs(30);

/// The service process, killed when dropped; its stdout lines arrive on `lines` (which
/// disconnects when the process closes its stdout, i.e. exits).
struct Service {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_service(display: &str, dir: &std::path::Path, name: &str) -> Service {
    let mut child = Command::new(env!("CARGO_BIN_EXE_draw-service"))
        .args(["--name", name, "--until-stdin-closes"])
        .env("DISPLAY", display)
        .env_remove("WAYLAND_DISPLAY")
        .env("LPC_RUNTIME_DIR", dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let service = Service { child, lines };
    match service.lines.recv_timeout(WAIT) {
        Ok(line) => assert!(line.starts_with("ready"), "{line}"),
        Err(e) => panic!("the drawing service did not say `ready` within {WAIT:?}: {e}"),
    }
    service
}

fn connect(dir: &std::path::Path, name: &str) -> DrawClient {
    let options = lpc::ClientOptions::new()
        .runtime_dir(dir)
        .connect_timeout(WAIT);
    DrawClient::connect_with(name, &options)
        .unwrap()
        .with_timeout(WAIT)
}

const WHITE: [u8; 3] = [255, 255, 255];

fn count(snap: &Snapshot, color: [u8; 3]) -> usize {
    (0..snap.height)
        .flat_map(|y| (0..snap.width).map(move |x| (x, y)))
        .filter(|&(x, y)| snap.rgb(x, y) == Some(color))
        .count()
}

#[test]
fn a_rectangle_drawn_by_another_process_is_in_the_windows_pixels() {
    let xvfb = Xvfb::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut service = start_service(xvfb.display(), dir.path(), "draw-rect");
    let draw = connect(dir.path(), "draw-rect");

    let blank = draw.snapshot().unwrap();
    assert_eq!(
        (blank.width, blank.height),
        (lpc_draw::WIDTH, lpc_draw::HEIGHT)
    );
    assert_eq!(blank.rgba.len(), (blank.width * blank.height * 4) as usize);
    assert_eq!(count(&blank, WHITE), (blank.width * blank.height) as usize);

    // The paper's call, in the service's default colour (black).
    draw.draw_rectangle(10, 100, 210, 150).unwrap();
    let snap = draw.snapshot().unwrap();
    let black = [0, 0, 0];
    for (x, y) in [(10, 100), (209, 149), (110, 125), (10, 149), (209, 100)] {
        assert_eq!(snap.rgb(x, y), Some(black), "inside at {x}, {y}");
    }
    for (x, y) in [
        (9, 100),
        (10, 99),
        (210, 149),
        (209, 150),
        (0, 0),
        (300, 200),
    ] {
        assert_eq!(snap.rgb(x, y), Some(WHITE), "outside at {x}, {y}");
    }
    assert_eq!(
        count(&snap, black),
        200 * 50,
        "exactly the rectangle is painted"
    );

    // A red line, then clear.
    draw.set_color(255, 0, 0).unwrap();
    draw.draw_line(0, 200, 99, 200).unwrap();
    let snap = draw.snapshot().unwrap();
    assert_eq!(count(&snap, [255, 0, 0]), 100);
    assert_eq!(snap.rgb(0, 200), Some([255, 0, 0]));
    assert_eq!(snap.rgb(99, 200), Some([255, 0, 0]));
    assert_eq!(snap.rgb(100, 200), Some(WHITE));
    assert_eq!(snap.rgb(50, 201), Some(WHITE));
    assert_eq!(
        count(&snap, black),
        200 * 50,
        "the rectangle is still there"
    );

    draw.draw_text(10, 10, "lpc").unwrap();
    let snap = draw.snapshot().unwrap();
    let text = count(&snap, [255, 0, 0]) - 100;
    assert!(text > 0, "draw_text paints");
    assert!(
        (0..snap.width).all(|x| (0..10).all(|y| snap.rgb(x, y) == Some(WHITE))),
        "nothing above the text"
    );

    draw.clear().unwrap();
    let snap = draw.snapshot().unwrap();
    assert_eq!(count(&snap, WHITE), (snap.width * snap.height) as usize);

    // Closing its stdin stops the service, which removes its socket.
    drop(draw);
    drop(service.child.stdin.take());
    loop {
        match service.lines.recv_timeout(WAIT) {
            Ok(_) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("the service did not exit"),
        }
    }
    let status = service.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(!dir.path().join("draw-rect.sock").exists());
}

#[test]
fn two_clients_draw_on_one_window_and_see_each_others_pixels() {
    let xvfb = Xvfb::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let _service = start_service(xvfb.display(), dir.path(), "draw-two");
    let a = connect(dir.path(), "draw-two");
    let b = connect(dir.path(), "draw-two");
    a.set_color(0, 0, 255).unwrap();
    a.draw_rectangle(0, 0, 10, 10).unwrap();
    let snap = b.snapshot().unwrap();
    assert_eq!(snap.rgb(5, 5), Some([0, 0, 255]));
    assert_eq!(snap.rgb(10, 10), Some(WHITE));
    // The colour is the service's, shared by its clients.
    b.draw_rectangle(20, 20, 30, 30).unwrap();
    assert_eq!(a.snapshot().unwrap().rgb(25, 25), Some([0, 0, 255]));
}
