//! The script format of `lpc demo draw --script FILE`: one call a line, the method's name
//! followed by its arguments separated by spaces, as in
//!
//! ```text
//! # a red rectangle, with a caption
//! set_color 255 0 0
//! draw_rectangle 10 100 210 150
//! set_color 0 0 0
//! draw_line 10 160 210 160
//! draw_text 10 170 hello from B
//! pause 500
//! clear
//! ```
//!
//! `draw_text`'s text is the rest of the line. `pause MS` waits that many milliseconds (at
//! most 10 000) so that a person can watch; it is not a call. Blank lines and lines starting
//! with `#` are skipped.

use std::time::Duration;

use crate::DrawClient;

/// One call of the drawing interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    /// `draw_rectangle(x0, y0, x1, y1)`.
    Rectangle(i32, i32, i32, i32),
    /// `draw_line(x0, y0, x1, y1)`.
    Line(i32, i32, i32, i32),
    /// `draw_text(x, y, text)`.
    Text(i32, i32, String),
    /// `set_color(r, g, b)`.
    Color(u8, u8, u8),
    /// `clear()`.
    Clear,
}

impl Call {
    /// Makes the call through `client`.
    pub fn apply(&self, client: &DrawClient) -> Result<(), lpc::Error> {
        match self {
            Call::Rectangle(a, b, c, d) => client.draw_rectangle(*a, *b, *c, *d),
            Call::Line(a, b, c, d) => client.draw_line(*a, *b, *c, *d),
            Call::Text(x, y, text) => client.draw_text(*x, *y, text),
            Call::Color(r, g, b) => client.set_color(*r, *g, *b),
            Call::Clear => client.clear(),
        }
    }
}

impl std::fmt::Display for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Call::Rectangle(a, b, c, d) => write!(f, "draw_rectangle({a}, {b}, {c}, {d})"),
            Call::Line(a, b, c, d) => write!(f, "draw_line({a}, {b}, {c}, {d})"),
            Call::Text(x, y, text) => write!(f, "draw_text({x}, {y}, {text:?})"),
            Call::Color(r, g, b) => write!(f, "set_color({r}, {g}, {b})"),
            Call::Clear => write!(f, "clear()"),
        }
    }
}

/// One line of a script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// A call.
    Call(Call),
    /// A pause, for the watcher.
    Pause(Duration),
}

/// The longest `pause`.
pub const MAX_PAUSE: Duration = Duration::from_secs(10);

/// Parses a script; an error names the line (from 1) and what is wrong with it.
pub fn parse(source: &str) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    for (i, line) in source.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        steps.push(parse_line(line).map_err(|e| format!("line {}: {e}: `{line}`", i + 1))?);
    }
    Ok(steps)
}

/// The first word of `s` and the rest, trimmed at its start.
fn word(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    match s.find(char::is_whitespace) {
        Some(end) => (&s[..end], s[end..].trim_start()),
        None => (s, ""),
    }
}

fn number<T: std::str::FromStr>(rest: &mut &str, what: &str) -> Result<T, String> {
    let (w, tail) = word(rest);
    *rest = tail;
    if w.is_empty() {
        return Err(format!("missing {what}"));
    }
    w.parse()
        .map_err(|_| format!("{what} `{w}` is not a valid number here"))
}

fn parse_line(line: &str) -> Result<Step, String> {
    let (method, mut rest) = word(line);
    let r = &mut rest;
    let step = match method {
        "draw_rectangle" | "draw_line" => {
            let (x0, y0) = (number(r, "x0")?, number(r, "y0")?);
            let (x1, y1) = (number(r, "x1")?, number(r, "y1")?);
            Step::Call(if method == "draw_line" {
                Call::Line(x0, y0, x1, y1)
            } else {
                Call::Rectangle(x0, y0, x1, y1)
            })
        }
        "draw_text" => {
            let (x, y) = (number(r, "x")?, number(r, "y")?);
            let text = std::mem::take(r).to_owned();
            if text.is_empty() {
                return Err("missing the text".into());
            }
            Step::Call(Call::Text(x, y, text))
        }
        "set_color" => Step::Call(Call::Color(
            number(r, "r (0-255)")?,
            number(r, "g (0-255)")?,
            number(r, "b (0-255)")?,
        )),
        "clear" => Step::Call(Call::Clear),
        "pause" => {
            let ms: u64 = number(r, "milliseconds")?;
            let pause = Duration::from_millis(ms);
            if pause > MAX_PAUSE {
                return Err(format!("a pause is at most {} ms", MAX_PAUSE.as_millis()));
            }
            Step::Pause(pause)
        }
        other => {
            return Err(format!(
                "unknown command `{other}` (draw_rectangle, draw_line, draw_text, set_color, clear, pause)"
            ))
        }
    };
    if !rest.is_empty() {
        return Err(format!("unexpected `{rest}` at the end"));
    }
    Ok(step)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_command() {
        let steps = parse(
            "# comment\n\n  set_color 255 0 0\ndraw_rectangle 10 100 210 150\n\
             draw_line -5 0 20 30\ndraw_text 1 2   hello  world \nclear\npause 250\n",
        )
        .unwrap();
        assert_eq!(
            steps,
            vec![
                Step::Call(Call::Color(255, 0, 0)),
                Step::Call(Call::Rectangle(10, 100, 210, 150)),
                Step::Call(Call::Line(-5, 0, 20, 30)),
                Step::Call(Call::Text(1, 2, "hello  world".into())),
                Step::Call(Call::Clear),
                Step::Pause(Duration::from_millis(250)),
            ]
        );
        assert_eq!(
            Call::Rectangle(10, 100, 210, 150).to_string(),
            "draw_rectangle(10, 100, 210, 150)"
        );
    }

    #[test]
    fn errors_name_the_line_and_the_problem() {
        let e = parse("clear\ndraw_rectangle 1 2 3\n").unwrap_err();
        assert!(e.contains("line 2") && e.contains("missing y1"), "{e}");
        let e = parse("set_color 256 0 0").unwrap_err();
        assert!(e.contains("line 1") && e.contains("`256`"), "{e}");
        let e = parse("draw_circle 1 2 3").unwrap_err();
        assert!(e.contains("unknown command `draw_circle`"), "{e}");
        let e = parse("clear now").unwrap_err();
        assert!(e.contains("unexpected `now`"), "{e}");
        let e = parse("pause 60000").unwrap_err();
        assert!(e.contains("at most"), "{e}");
        let e = parse("draw_text 1 2").unwrap_err();
        assert!(e.contains("missing the text"), "{e}");
    }
}
