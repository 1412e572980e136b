//! A window that shows a [`Canvas`]: winit opens it, softbuffer gives its CPU pixel buffer,
//! into which the canvas is copied on every redraw.

use std::error::Error;
use std::num::NonZeroU32;
use std::rc::Rc;

use winit::dpi::PhysicalSize;
use winit::event_loop::ActiveEventLoop;
use winit::window::Window;

use crate::canvas::{Canvas, WHITE};

/// An open window and its pixel surface.
pub(crate) struct View {
    pub(crate) window: Rc<Window>,
    surface: softbuffer::Surface<Rc<Window>, Rc<Window>>,
}

impl View {
    /// Opens a fixed-size window of `width` × `height` pixels titled `title`.
    pub(crate) fn open(
        event_loop: &ActiveEventLoop,
        title: &str,
        width: u32,
        height: u32,
    ) -> Result<View, Box<dyn Error>> {
        let attributes = Window::default_attributes()
            .with_title(title)
            .with_inner_size(PhysicalSize::new(width, height))
            .with_resizable(false);
        let window = Rc::new(event_loop.create_window(attributes)?);
        let context = softbuffer::Context::new(window.clone())?;
        let surface = softbuffer::Surface::new(&context, window.clone())?;
        Ok(View { window, surface })
    }

    /// Copies `canvas` into the window's buffer and shows it. A window of another size (a
    /// window manager may impose one) shows the canvas from its top left corner, on white.
    pub(crate) fn present(&mut self, canvas: &Canvas) -> Result<(), Box<dyn Error>> {
        let size = self.window.inner_size();
        let (Some(w), Some(h)) = (NonZeroU32::new(size.width), NonZeroU32::new(size.height)) else {
            return Ok(()); // minimised: nothing to draw
        };
        self.surface.resize(w, h)?;
        let mut buffer = self.surface.buffer_mut()?;
        let (w, h) = (size.width as usize, size.height as usize);
        let (cw, ch) = (canvas.width() as usize, canvas.height() as usize);
        let pixels = canvas.pixels();
        for row in 0..h {
            let line = &mut buffer[row * w..(row + 1) * w];
            if row < ch {
                let n = w.min(cw);
                line[..n].copy_from_slice(&pixels[row * cw..row * cw + n]);
                line[n..].fill(WHITE);
            } else {
                line.fill(WHITE);
            }
        }
        buffer.present()?;
        Ok(())
    }
}
