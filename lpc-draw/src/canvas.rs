//! The canvas: a pixel buffer and the pure functions that draw on it. No window here, so that
//! every drawing function is unit-tested on its own (the window only presents these pixels).

/// A colour, 0RGB in a `u32` (`0x00RRGGBB`): the format of a softbuffer surface.
pub type Color = u32;

/// White, the colour of a cleared canvas.
pub const WHITE: Color = 0x00ff_ffff;
/// Black, the drawing colour a service starts with.
pub const BLACK: Color = 0x0000_0000;

/// The colour `r, g, b` as 0RGB.
pub const fn rgb(r: u8, g: u8, b: u8) -> Color {
    ((r as u32) << 16) | ((g as u32) << 8) | b as u32
}

/// A width × height image of 0RGB pixels, row by row from the top left.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Canvas {
    width: u32,
    height: u32,
    pixels: Vec<Color>,
}

impl Canvas {
    /// A white canvas.
    pub fn new(width: u32, height: u32) -> Canvas {
        Canvas {
            width,
            height,
            pixels: vec![WHITE; width as usize * height as usize],
        }
    }

    /// Its width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Its height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// The pixels, row by row (0RGB).
    pub fn pixels(&self) -> &[Color] {
        &self.pixels
    }

    /// The pixel at `x, y`, or `None` outside the canvas.
    pub fn pixel(&self, x: i32, y: i32) -> Option<Color> {
        self.index(x, y).map(|i| self.pixels[i])
    }

    fn index(&self, x: i32, y: i32) -> Option<usize> {
        let (x, y) = (u32::try_from(x).ok()?, u32::try_from(y).ok()?);
        (x < self.width && y < self.height).then(|| y as usize * self.width as usize + x as usize)
    }

    /// Sets one pixel; outside the canvas it does nothing.
    pub fn put(&mut self, x: i32, y: i32, color: Color) {
        if let Some(i) = self.index(x, y) {
            self.pixels[i] = color;
        }
    }

    /// Fills the whole canvas with `color`.
    pub fn clear(&mut self, color: Color) {
        self.pixels.fill(color);
    }

    /// Fills the rectangle from corner `x0, y0` (included) to corner `x1, y1` (excluded), as
    /// Windows' `Rectangle` does; the corners may come in either order, and what falls outside
    /// the canvas is clipped.
    pub fn fill_rect(&mut self, x0: i32, y0: i32, x1: i32, y1: i32, color: Color) {
        let (left, right) = (x0.min(x1), x0.max(x1));
        let (top, bottom) = (y0.min(y1), y0.max(y1));
        let clip = |v: i32, max: u32| v.clamp(0, max as i32) as usize;
        let (left, right) = (clip(left, self.width), clip(right, self.width));
        let (top, bottom) = (clip(top, self.height), clip(bottom, self.height));
        let w = self.width as usize;
        for row in top..bottom {
            self.pixels[row * w + left..row * w + right].fill(color);
        }
    }

    /// Draws a one-pixel line from `x0, y0` to `x1, y1`, both ends included (Bresenham).
    pub fn line(&mut self, x0: i32, y0: i32, x1: i32, y1: i32, color: Color) {
        // i64 so that no coordinate overflows, however far off the canvas.
        let (mut x, mut y) = (i64::from(x0), i64::from(y0));
        let (x1, y1) = (i64::from(x1), i64::from(y1));
        let dx = (x1 - x).abs();
        let dy = -(y1 - y).abs();
        let sx = if x < x1 { 1 } else { -1 };
        let sy = if y < y1 { 1 } else { -1 };
        let mut err = dx + dy;
        // A line far off the canvas would take long to walk pixel by pixel: bound it to the
        // first 2^20 steps (a million pixels; any line that starts and ends near the canvas).
        for _ in 0..=(dx - dy).min(1 << 20) {
            if let (Ok(px), Ok(py)) = (i32::try_from(x), i32::try_from(y)) {
                self.put(px, py, color);
            }
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    /// Draws `text` with its top left corner at `x, y`, in the built-in 8×8 font scaled by
    /// `scale` (each glyph 8·scale pixels square). Characters outside ASCII draw as `?`.
    pub fn text(&mut self, x: i32, y: i32, text: &str, scale: u32, color: Color) {
        let scale = scale.max(1) as i32;
        let mut left = x;
        for ch in text.chars() {
            let glyph = glyph(ch);
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..8 {
                    if bits & (1 << col) != 0 {
                        let px = left.saturating_add(col * scale);
                        let py = y.saturating_add(row as i32 * scale);
                        self.fill_rect(
                            px,
                            py,
                            px.saturating_add(scale),
                            py.saturating_add(scale),
                            color,
                        );
                    }
                }
            }
            left = left.saturating_add(8 * scale);
        }
    }

    /// Copies `other` onto this canvas with its top left corner at `x, y`, clipped.
    pub fn blit(&mut self, other: &Canvas, x: i32, y: i32) {
        for row in 0..other.height as i32 {
            for col in 0..other.width as i32 {
                if let Some(c) = other.pixel(col, row) {
                    self.put(x + col, y + row, c);
                }
            }
        }
    }

    /// The pixels as RGBA bytes (alpha 255), row by row: what `snapshot()` sends and a PNG
    /// holds.
    pub fn to_rgba(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.pixels.len() * 4);
        for &p in &self.pixels {
            out.extend_from_slice(&[(p >> 16) as u8, (p >> 8) as u8, p as u8, 255]);
        }
        out
    }

    /// A canvas from RGBA bytes (`width * height * 4` of them), or `None` if the length is
    /// wrong. Alpha is ignored.
    pub fn from_rgba(width: u32, height: u32, rgba: &[u8]) -> Option<Canvas> {
        if rgba.len() != width as usize * height as usize * 4 {
            return None;
        }
        let pixels = rgba
            .chunks_exact(4)
            .map(|p| rgb(p[0], p[1], p[2]))
            .collect();
        Some(Canvas {
            width,
            height,
            pixels,
        })
    }
}

/// The 8×8 glyph of `ch`: eight rows, bit 0 the leftmost pixel (font8x8's basic set).
fn glyph(ch: char) -> [u8; 8] {
    let code = if ch.is_ascii() {
        ch as usize
    } else {
        '?' as usize
    };
    font8x8::legacy::BASIC_LEGACY[code]
}

#[cfg(test)]
mod tests {
    use super::*;

    const RED: Color = rgb(255, 0, 0);

    fn painted(c: &Canvas) -> usize {
        c.pixels().iter().filter(|&&p| p != WHITE).count()
    }

    #[test]
    fn a_rectangle_fills_its_inside_and_nothing_else() {
        let mut c = Canvas::new(300, 200);
        c.fill_rect(10, 100, 210, 150, RED);
        assert_eq!(c.pixel(10, 100), Some(RED));
        assert_eq!(c.pixel(209, 149), Some(RED));
        assert_eq!(c.pixel(110, 125), Some(RED));
        assert_eq!(c.pixel(9, 100), Some(WHITE));
        assert_eq!(c.pixel(10, 99), Some(WHITE));
        assert_eq!(c.pixel(210, 149), Some(WHITE));
        assert_eq!(c.pixel(209, 150), Some(WHITE));
        assert_eq!(painted(&c), 200 * 50);
    }

    #[test]
    fn a_rectangle_takes_its_corners_in_any_order_and_is_clipped() {
        let mut a = Canvas::new(50, 50);
        let mut b = Canvas::new(50, 50);
        a.fill_rect(40, 30, 10, 5, RED);
        b.fill_rect(10, 5, 40, 30, RED);
        assert_eq!(a, b);
        let mut c = Canvas::new(50, 50);
        c.fill_rect(-100, -100, 10, i32::MAX, RED);
        assert_eq!(painted(&c), 10 * 50);
        c.fill_rect(60, 60, 70, 70, BLACK);
        assert_eq!(painted(&c), 10 * 50);
    }

    #[test]
    fn a_line_includes_both_ends_and_is_one_pixel_wide() {
        let mut c = Canvas::new(100, 100);
        c.line(5, 5, 50, 5, RED);
        assert_eq!(painted(&c), 46);
        assert_eq!(c.pixel(5, 5), Some(RED));
        assert_eq!(c.pixel(50, 5), Some(RED));
        assert_eq!(c.pixel(51, 5), Some(WHITE));
        let mut d = Canvas::new(100, 100);
        d.line(0, 0, 99, 99, RED);
        assert_eq!(painted(&d), 100);
        assert!((0..100).all(|i| d.pixel(i, i) == Some(RED)));
        let mut e = Canvas::new(100, 100);
        e.line(99, 99, 0, 0, RED);
        assert_eq!(d, e);
    }

    #[test]
    fn a_line_far_off_the_canvas_is_clipped_and_finishes() {
        let mut c = Canvas::new(10, 10);
        c.line(i32::MIN, i32::MIN, i32::MAX, i32::MAX, RED);
        c.line(-5, 3, 20, 3, RED);
        assert_eq!(c.pixel(0, 3), Some(RED));
        assert_eq!(c.pixel(9, 3), Some(RED));
    }

    #[test]
    fn text_draws_glyphs_of_the_built_in_font() {
        let mut c = Canvas::new(64, 16);
        c.text(0, 0, "H", 1, RED);
        // font8x8's `H`: two columns joined by a bar on row 3.
        assert_eq!(c.pixel(0, 0), Some(RED));
        assert_eq!(c.pixel(2, 0), Some(WHITE));
        assert_eq!(c.pixel(2, 3), Some(RED));
        let mut big = Canvas::new(64, 16);
        big.text(0, 0, "H", 2, RED);
        assert_eq!(painted(&big), 4 * painted(&c));
        let mut space = Canvas::new(64, 16);
        space.text(0, 0, "  ", 2, RED);
        assert_eq!(painted(&space), 0);
        let mut far = Canvas::new(8, 8);
        far.text(i32::MAX - 3, i32::MAX - 3, "éx", 3, RED);
        assert_eq!(painted(&far), 0);
    }

    #[test]
    fn clear_and_rgba_round_trip() {
        let mut c = Canvas::new(4, 3);
        c.fill_rect(1, 1, 3, 2, rgb(1, 2, 3));
        let rgba = c.to_rgba();
        assert_eq!(rgba.len(), 4 * 3 * 4);
        assert_eq!(&rgba[(4 + 1) * 4..(4 + 1) * 4 + 4], &[1, 2, 3, 255]);
        assert_eq!(Canvas::from_rgba(4, 3, &rgba), Some(c.clone()));
        assert_eq!(Canvas::from_rgba(4, 4, &rgba), None);
        c.clear(WHITE);
        assert_eq!(painted(&c), 0);
    }

    #[test]
    fn blit_copies_and_clips() {
        let mut small = Canvas::new(3, 3);
        small.clear(RED);
        let mut c = Canvas::new(5, 5);
        c.blit(&small, 3, 3);
        assert_eq!(painted(&c), 4);
        assert_eq!(c.pixel(4, 4), Some(RED));
    }
}
