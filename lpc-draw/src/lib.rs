//! The drawing demo of lpc: process A (the service) owns a window and offers drawing
//! functions; process B (the client) calls them, so that A's window shows what B asked for.
//!
//! - [`Draw`]: the interface — `draw_rectangle`, `draw_line`, `draw_text`, `set_color`,
//!   `clear` and `snapshot` (the window's pixels).
//! - [`canvas`]: the pixel buffer and the pure drawing functions, unit-tested without a window.
//! - [`service`]: the service process: a window (winit) presenting the canvas (softbuffer).
//! - [`client`]: the client process: a window of buttons that call the service, or a script.
//! - [`script`]: the script format of `lpc demo draw --script FILE`.
//! - [`testing`]: a private X server (Xvfb) for tests and screenshots.
//!
//! `lpc demo draw` runs both processes; see docs/guide.md, "The drawing demo".

pub mod canvas;
pub mod client;
pub mod script;
pub mod service;
pub mod testing;
mod window;

use serde::{Deserialize, Serialize};

/// The size of the service's window (and canvas), in pixels.
pub const WIDTH: u32 = 480;
/// See [`WIDTH`].
pub const HEIGHT: u32 = 320;

/// The window's pixels, as `snapshot()` returns them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `width * height` pixels, row by row from the top left, 4 bytes each: R, G, B, A (255).
    #[serde(with = "serde_bytes")]
    pub rgba: Vec<u8>,
}

impl Snapshot {
    /// The colour at `x, y` as `[r, g, b]`, or `None` outside the image.
    pub fn rgb(&self, x: u32, y: u32) -> Option<[u8; 3]> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let i = (y as usize * self.width as usize + x as usize) * 4;
        self.rgba.get(i..i + 3).map(|p| [p[0], p[1], p[2]])
    }
}

/// The drawing service's interface: what process B calls in process A.
#[lpc::service]
pub trait Draw {
    /// Fills the rectangle from corner `x0, y0` (included) to `x1, y1` (excluded) with the
    /// current colour.
    fn draw_rectangle(&self, x0: i32, y0: i32, x1: i32, y1: i32);
    /// Draws a one-pixel line from `x0, y0` to `x1, y1` (both included) in the current colour.
    fn draw_line(&self, x0: i32, y0: i32, x1: i32, y1: i32);
    /// Writes `text` with its top left corner at `x, y`, in the built-in 8×8 font at twice its
    /// size (16 pixels a character), in the current colour.
    fn draw_text(&self, x: i32, y: i32, text: &str);
    /// Sets the colour of the drawing functions that follow (black at start).
    fn set_color(&self, r: u8, g: u8, b: u8);
    /// Paints the whole window white.
    fn clear(&self);
    /// The window's pixels.
    fn snapshot(&self) -> Snapshot;
}

/// Writes `rgba` (`width * height` RGBA pixels) to `path` as a PNG.
pub fn write_png(
    path: &std::path::Path,
    width: u32,
    height: u32,
    rgba: &[u8],
) -> std::io::Result<()> {
    let file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut encoder = png::Encoder::new(file, width, height);
    encoder.set_color(png::ColorType::Rgba);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(std::io::Error::other)?;
    writer
        .write_image_data(rgba)
        .map_err(std::io::Error::other)?;
    writer.finish().map_err(std::io::Error::other)
}
