//! The drawing service, process A: it serves [`Draw`](crate::Draw) and shows its canvas in a
//! window, redrawn after every call that changes it.
//!
//! lpc serves calls on its own threads; each call draws on the canvas (behind a mutex) and then
//! wakes the window's event loop, which presents the canvas. `snapshot()` returns the canvas —
//! the very pixels the window is given to show.

use std::error::Error;
use std::io::Read;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use winit::application::ApplicationHandler;
use winit::event::WindowEvent;
use winit::event_loop::{ActiveEventLoop, EventLoop, EventLoopProxy};
use winit::window::WindowId;

use crate::canvas::{rgb, Canvas, Color, BLACK, WHITE};
use crate::window::View;
use crate::{Draw, DrawServer, Snapshot, HEIGHT, WIDTH};

/// What the drawing functions act on: the canvas and the current colour.
struct State {
    canvas: Canvas,
    color: Color,
}

/// The implementation of [`Draw`]: draws on a canvas, then calls `on_change` (which wakes the
/// window). Without a window ([`Painter::headless`]) it is the same service, unseen.
pub struct Painter {
    state: Arc<Mutex<State>>,
    on_change: Box<dyn Fn() + Send + Sync>,
}

impl Painter {
    /// A painter whose canvas nobody shows (for tests of the interface in one process).
    pub fn headless() -> Painter {
        Painter::new(|| {}).0
    }

    fn new(on_change: impl Fn() + Send + Sync + 'static) -> (Painter, Arc<Mutex<State>>) {
        let state = Arc::new(Mutex::new(State {
            canvas: Canvas::new(WIDTH, HEIGHT),
            color: BLACK,
        }));
        let painter = Painter {
            state: state.clone(),
            on_change: Box::new(on_change),
        };
        (painter, state)
    }

    fn draw(&self, f: impl FnOnce(&mut Canvas, Color)) {
        {
            let mut state = lock(&self.state);
            let color = state.color;
            f(&mut state.canvas, color);
        }
        (self.on_change)();
    }
}

/// The state, even if a handler panicked while holding it (the canvas is always valid).
fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

impl Draw for Painter {
    fn draw_rectangle(&self, x0: i32, y0: i32, x1: i32, y1: i32) {
        self.draw(|c, color| c.fill_rect(x0, y0, x1, y1, color));
    }

    fn draw_line(&self, x0: i32, y0: i32, x1: i32, y1: i32) {
        self.draw(|c, color| c.line(x0, y0, x1, y1, color));
    }

    fn draw_text(&self, x: i32, y: i32, text: &str) {
        self.draw(|c, color| c.text(x, y, text, 2, color));
    }

    fn set_color(&self, r: u8, g: u8, b: u8) {
        lock(&self.state).color = rgb(r, g, b);
    }

    fn clear(&self) {
        self.draw(|c, _| c.clear(WHITE));
    }

    fn snapshot(&self) -> Snapshot {
        let state = lock(&self.state);
        Snapshot {
            width: state.canvas.width(),
            height: state.canvas.height(),
            rgba: state.canvas.to_rgba(),
        }
    }
}

/// How to run the service.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The service name.
    pub name: String,
    /// The runtime directory [default: lpc's].
    pub runtime_dir: Option<PathBuf>,
    /// Exit when standard input closes (the parent that started us is gone or asks us to stop).
    pub until_stdin_closes: bool,
}

enum Event {
    Changed,
    Quit,
}

struct App {
    title: String,
    state: Arc<Mutex<State>>,
    view: Option<View>,
    ready: Option<String>,
    error: Option<Box<dyn Error>>,
}

impl App {
    fn fail(&mut self, event_loop: &ActiveEventLoop, e: Box<dyn Error>) {
        self.error.get_or_insert(e);
        event_loop.exit();
    }

    fn redraw(&mut self) -> Result<(), Box<dyn Error>> {
        if let Some(view) = &mut self.view {
            // Copy out of the lock so that calls are not held up by the presentation.
            let canvas = lock(&self.state).canvas.clone();
            view.present(&canvas)?;
        }
        Ok(())
    }
}

impl ApplicationHandler<Event> for App {
    fn resumed(&mut self, event_loop: &ActiveEventLoop) {
        if self.view.is_some() {
            return;
        }
        match View::open(event_loop, &self.title, WIDTH, HEIGHT) {
            Ok(view) => self.view = Some(view),
            Err(e) => return self.fail(event_loop, e),
        }
        if let Err(e) = self.redraw() {
            return self.fail(event_loop, e);
        }
        // The window exists and the service is bound: clients may call and watch.
        if let Some(line) = self.ready.take() {
            println!("{line}");
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
            _ => {}
        }
    }

    fn user_event(&mut self, event_loop: &ActiveEventLoop, event: Event) {
        match event {
            Event::Changed => {
                if let Some(view) = &self.view {
                    view.window.request_redraw();
                }
            }
            Event::Quit => event_loop.exit(),
        }
    }
}

/// Runs the service: binds `options.name`, opens the window, prints `ready: …` on stdout once
/// both are up, and serves until the window is closed (or stdin closes, if asked).
pub fn run(options: &Options) -> Result<(), Box<dyn Error>> {
    let event_loop = EventLoop::<Event>::with_user_event().build()?;
    let proxy: Mutex<EventLoopProxy<Event>> = Mutex::new(event_loop.create_proxy());
    let (painter, state) = Painter::new(move || {
        let _ = proxy
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send_event(Event::Changed);
    });
    let mut server_options = lpc::ServerOptions::new();
    if let Some(dir) = &options.runtime_dir {
        server_options = server_options.runtime_dir(dir);
    }
    let server = lpc::Server::bind_with(&options.name, server_options)?;
    let ready = format!(
        "ready: service `{}` at {}",
        options.name,
        server.path().display()
    );
    let service = server.spawn(DrawServer::new(painter))?;
    if options.until_stdin_closes {
        let quit = event_loop.create_proxy();
        std::thread::spawn(move || {
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
            let _ = quit.send_event(Event::Quit);
        });
    }
    let mut app = App {
        title: format!(
            "A: lpc drawing service `{}` (pid {})",
            options.name,
            std::process::id()
        ),
        state,
        view: None,
        ready: Some(ready),
        error: None,
    };
    let ran = event_loop.run_app(&mut app);
    service.shutdown()?;
    ran?;
    app.error.map_or(Ok(()), Err)
}
