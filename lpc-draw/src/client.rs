//! The drawing client, process B: a window of buttons, each of which calls the drawing
//! service in process A, and a log of the calls made. With a script it also makes the
//! script's calls (from a thread of its own, so that the window stays live), and with a
//! screenshot path it then writes a PNG of both windows — its own pixels beside the
//! service's `snapshot()` — and exits.

use std::error::Error;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use winit::application::ApplicationHandler;
use winit::event::{ElementState, MouseButton, WindowEvent};
use winit::event_loop::{ActiveEventLoop, EventLoop, EventLoopProxy};
use winit::window::WindowId;

use crate::canvas::{rgb, Canvas, Color, WHITE};
use crate::script::{Call, Step};
use crate::window::View;
use crate::DrawClient;

/// The size of the client's window.
pub const WIDTH: u32 = 240;
/// See [`WIDTH`].
pub const HEIGHT: u32 = crate::HEIGHT;

/// How to run the client.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The drawing service's name.
    pub name: String,
    /// The runtime directory [default: lpc's].
    pub runtime_dir: Option<PathBuf>,
    /// A script to run (see [`crate::script`]).
    pub script: Option<PathBuf>,
    /// After the script, write a PNG of both windows here and exit.
    pub screenshot: Option<PathBuf>,
    /// Exit when standard input closes.
    pub until_stdin_closes: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Button {
    Rectangle,
    Line,
    Text,
    Color(u8, u8, u8),
    Clear,
}

const BUTTONS: [(Button, &str); 8] = [
    (Button::Rectangle, "draw_rectangle"),
    (Button::Line, "draw_line"),
    (Button::Text, "draw_text"),
    (Button::Color(220, 30, 30), "red"),
    (Button::Color(30, 160, 60), "green"),
    (Button::Color(40, 80, 220), "blue"),
    (Button::Color(0, 0, 0), "black"),
    (Button::Clear, "clear"),
];

const BUTTON_X: i32 = 12;
const BUTTON_W: i32 = 216;
const BUTTON_H: i32 = 22;
const BUTTON_TOP: i32 = 40;
const BUTTON_STEP: i32 = 27;

/// The top left corner of button `i`.
fn button_origin(i: usize) -> (i32, i32) {
    (BUTTON_X, BUTTON_TOP + i as i32 * BUTTON_STEP)
}

/// The button under `x, y`, if any.
fn button_at(x: f64, y: f64) -> Option<Button> {
    BUTTONS.iter().enumerate().find_map(|(i, (button, _))| {
        let (bx, by) = button_origin(i);
        let inside = x >= f64::from(bx)
            && x < f64::from(bx + BUTTON_W)
            && y >= f64::from(by)
            && y < f64::from(by + BUTTON_H);
        inside.then_some(*button)
    })
}

/// The call a button makes on its `n`th press (from 0): the first rectangle is the one of
/// lpc's design, `draw_rectangle(10, 100, 210, 150)`; later ones move down and right.
fn call_of(button: Button, n: u32) -> Call {
    let k = (n % 8) as i32;
    match button {
        Button::Rectangle => Call::Rectangle(10 + 30 * k, 100 + 20 * k, 210 + 30 * k, 150 + 20 * k),
        Button::Line => Call::Line(10, 20 + 30 * k, 470, 300 - 30 * k),
        Button::Text => Call::Text(20 + 10 * k, 20 + 36 * k, "hello from B".into()),
        Button::Color(r, g, b) => Call::Color(r, g, b),
        Button::Clear => Call::Clear,
    }
}

/// Draws the client's window: a title, the buttons and the last calls.
fn render(log: &[String], pressed: Option<usize>) -> Canvas {
    let mut c = Canvas::new(WIDTH, HEIGHT);
    c.clear(rgb(236, 236, 240));
    let ink: Color = rgb(20, 20, 30);
    c.text(12, 10, "process B: calls A", 1, ink);
    c.text(
        12,
        22,
        &format!("pid {}", std::process::id()),
        1,
        rgb(90, 90, 100),
    );
    for (i, (button, label)) in BUTTONS.iter().enumerate() {
        let (x, y) = button_origin(i);
        let face = if pressed == Some(i) {
            rgb(180, 190, 210)
        } else {
            WHITE
        };
        c.fill_rect(x, y, x + BUTTON_W, y + BUTTON_H, rgb(120, 120, 130));
        c.fill_rect(x + 1, y + 1, x + BUTTON_W - 1, y + BUTTON_H - 1, face);
        if let Button::Color(r, g, b) = button {
            c.fill_rect(x + 6, y + 5, x + 18, y + BUTTON_H - 5, rgb(*r, *g, *b));
        }
        c.text(x + 26, y + 7, label, 1, ink);
    }
    let top = BUTTON_TOP + BUTTONS.len() as i32 * BUTTON_STEP + 4;
    c.line(12, top, WIDTH as i32 - 12, top, rgb(160, 160, 170));
    // As many of the last calls as fit below the buttons, 12 pixels a line.
    let fit_lines = ((HEIGHT as i32 - top - 8) / 12).max(0) as usize;
    for (i, line) in log.iter().rev().take(fit_lines).rev().enumerate() {
        // 8 pixels a character: cut what does not fit.
        let fit: String = line.chars().take((WIDTH as usize - 16) / 8).collect();
        c.text(8, top + 8 + i as i32 * 12, &fit, 1, ink);
    }
    c
}

/// Both windows side by side, each under a title bar, as one image: client (B) on the left,
/// service (A) on the right.
pub fn compose(client: &Canvas, service: &Canvas) -> Canvas {
    const M: i32 = 12; // margin
    const BAR: i32 = 20; // title bar
    let width = M + client.width() as i32 + M + service.width() as i32 + M;
    let height = M + BAR + client.height().max(service.height()) as i32 + M;
    let mut out = Canvas::new(width as u32, height as u32);
    out.clear(rgb(70, 74, 82));
    let bar = rgb(40, 44, 52);
    let title = rgb(235, 235, 240);
    let bx = M + client.width() as i32 + M;
    out.fill_rect(M, M, M + client.width() as i32, M + BAR, bar);
    out.text(M + 6, M + 6, "B: lpc client", 1, title);
    out.blit(client, M, M + BAR);
    out.fill_rect(bx, M, bx + service.width() as i32, M + BAR, bar);
    out.text(bx + 6, M + 6, "A: lpc drawing service", 1, title);
    out.blit(service, bx, M + BAR);
    out
}

enum Event {
    Called(String),
    ScriptDone(Result<(), String>),
    Quit,
}

struct App {
    client: DrawClient,
    view: Option<View>,
    log: Vec<String>,
    presses: [u32; BUTTONS.len()],
    pressed: Option<usize>,
    cursor: (f64, f64),
    script: Option<Vec<Step>>,
    script_client: Option<DrawClient>,
    proxy: EventLoopProxy<Event>,
    screenshot: Option<PathBuf>,
    error: Option<Box<dyn Error>>,
}

impl App {
    fn fail(&mut self, event_loop: &ActiveEventLoop, e: Box<dyn Error>) {
        self.error.get_or_insert(e);
        event_loop.exit();
    }

    fn redraw(&mut self) -> Result<(), Box<dyn Error>> {
        let canvas = render(&self.log, self.pressed);
        if let Some(view) = &mut self.view {
            view.present(&canvas)?;
        }
        Ok(())
    }

    fn changed(&self) {
        if let Some(view) = &self.view {
            view.window.request_redraw();
        }
    }

    fn press(&mut self, event_loop: &ActiveEventLoop, button: Button) {
        let i = BUTTONS.iter().position(|(b, _)| *b == button).unwrap_or(0);
        let call = call_of(button, self.presses[i]);
        self.presses[i] += 1;
        match call.apply(&self.client) {
            Ok(()) => {
                println!("called {call} (button {})", BUTTONS[i].1);
                self.log.push(call.to_string());
            }
            Err(e) => self.fail(event_loop, format!("{call}: {e}").into()),
        }
        self.changed();
    }

    fn screenshot(&self, path: &std::path::Path) -> Result<(), Box<dyn Error>> {
        let own = render(&self.log, None);
        let snap = self.client.snapshot()?;
        let service = Canvas::from_rgba(snap.width, snap.height, &snap.rgba)
            .ok_or("the service's snapshot has the wrong number of bytes")?;
        let both = compose(&own, &service);
        crate::write_png(path, both.width(), both.height(), &both.to_rgba())?;
        println!("screenshot: {}", path.display());
        Ok(())
    }
}

impl ApplicationHandler<Event> for App {
    fn resumed(&mut self, event_loop: &ActiveEventLoop) {
        if self.view.is_some() {
            return;
        }
        match View::open(event_loop, "B: lpc drawing client", WIDTH, HEIGHT) {
            Ok(view) => self.view = Some(view),
            Err(e) => return self.fail(event_loop, e),
        }
        if let Err(e) = self.redraw() {
            return self.fail(event_loop, e);
        }
        println!("ready: client window open");
        if let (Some(steps), Some(client)) = (self.script.take(), self.script_client.take()) {
            let proxy = self.proxy.clone();
            std::thread::spawn(move || {
                let result = run_script(&steps, &client, &proxy);
                let _ = proxy.send_event(Event::ScriptDone(result));
            });
        }
    }

    fn window_event(&mut self, event_loop: &ActiveEventLoop, _: WindowId, event: WindowEvent) {
        match event {
            WindowEvent::CloseRequested => event_loop.exit(),
            WindowEvent::RedrawRequested => {
                if let Err(e) = self.redraw() {
                    self.fail(event_loop, e);
                }
            }
            WindowEvent::CursorMoved { position, .. } => self.cursor = (position.x, position.y),
            WindowEvent::MouseInput {
                state,
                button: MouseButton::Left,
                ..
            } => {
                let under = button_at(self.cursor.0, self.cursor.1);
                match state {
                    ElementState::Pressed => {
                        self.pressed =
                            under.and_then(|b| BUTTONS.iter().position(|(x, _)| *x == b));
                        self.changed();
                    }
                    ElementState::Released => {
                        self.pressed = None;
                        if let Some(button) = under {
                            self.press(event_loop, button);
                        }
                        self.changed();
                    }
                }
            }
            _ => {}
        }
    }

    fn user_event(&mut self, event_loop: &ActiveEventLoop, event: Event) {
        match event {
            Event::Called(line) => {
                self.log.push(line);
                self.changed();
            }
            Event::ScriptDone(Err(e)) => self.fail(event_loop, e.into()),
            Event::ScriptDone(Ok(())) => {
                println!("script done");
                if let Some(path) = self.screenshot.take() {
                    if let Err(e) = self.screenshot(&path) {
                        return self.fail(event_loop, e);
                    }
                    event_loop.exit();
                }
            }
            Event::Quit => event_loop.exit(),
        }
    }
}

/// Makes the script's calls in order, logging each to the window.
fn run_script(
    steps: &[Step],
    client: &DrawClient,
    proxy: &EventLoopProxy<Event>,
) -> Result<(), String> {
    for step in steps {
        match step {
            Step::Pause(d) => std::thread::sleep(*d),
            Step::Call(call) => {
                call.apply(client).map_err(|e| format!("{call}: {e}"))?;
                println!("called {call}");
                let _ = proxy.send_event(Event::Called(call.to_string()));
            }
        }
    }
    Ok(())
}

/// Runs the client: connects to the drawing service, opens the window (prints `ready: …`),
/// runs the script if any, and serves the buttons until the window is closed.
pub fn run(options: &Options) -> Result<(), Box<dyn Error>> {
    let script = match &options.script {
        Some(path) => {
            let source = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read the script {}: {e}", path.display()))?;
            Some(crate::script::parse(&source).map_err(|e| format!("{}: {e}", path.display()))?)
        }
        None => None,
    };
    let mut client_options = lpc::ClientOptions::new().connect_timeout(Duration::from_secs(10));
    if let Some(dir) = &options.runtime_dir {
        client_options = client_options.runtime_dir(dir);
    }
    let connect = || -> Result<DrawClient, lpc::Error> {
        Ok(DrawClient::connect_with(&options.name, &client_options)?
            .with_timeout(Duration::from_secs(10)))
    };
    let client = connect()?;
    let script_client = script.as_ref().map(|_| connect()).transpose()?;
    let event_loop = EventLoop::<Event>::with_user_event().build()?;
    if options.until_stdin_closes {
        let quit = Mutex::new(event_loop.create_proxy());
        std::thread::spawn(move || {
            let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new());
            let _ = quit.lock().map(|q| q.send_event(Event::Quit));
        });
    }
    let mut app = App {
        client,
        view: None,
        log: Vec::new(),
        presses: [0; BUTTONS.len()],
        pressed: None,
        cursor: (-1.0, -1.0),
        script,
        script_client,
        proxy: event_loop.create_proxy(),
        screenshot: options.screenshot.clone(),
        error: None,
    };
    event_loop.run_app(&mut app)?;
    app.error.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_button_is_found_where_it_is_drawn() {
        for (i, (button, _)) in BUTTONS.iter().enumerate() {
            let (x, y) = button_origin(i);
            assert_eq!(button_at(f64::from(x + 5), f64::from(y + 5)), Some(*button));
        }
        assert_eq!(button_at(1.0, 1.0), None);
        assert_eq!(
            call_of(Button::Rectangle, 0),
            Call::Rectangle(10, 100, 210, 150)
        );
    }

    #[test]
    fn compose_puts_both_windows_side_by_side() {
        let mut a = Canvas::new(20, 10);
        a.clear(rgb(1, 1, 1));
        let mut b = Canvas::new(30, 15);
        b.clear(rgb(2, 2, 2));
        let both = compose(&a, &b);
        assert_eq!(
            (both.width(), both.height()),
            (12 + 20 + 12 + 30 + 12, 12 + 20 + 15 + 12)
        );
        assert_eq!(both.pixel(12, 32), Some(rgb(1, 1, 1)));
        assert_eq!(both.pixel(44, 32), Some(rgb(2, 2, 2)));
    }
}
