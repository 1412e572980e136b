//! What every subcommand shares: the error type and exit codes, colours, connecting with
//! helpful errors, and reading and writing durations.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anstyle::{AnsiColor, Style};
use lpc::info::ServiceInfo;
use lpc::{Client, ClientOptions, InterfaceInfo, MethodInfo};

/// Exit code of a successful run.
pub const EXIT_OK: u8 = 0;
/// Exit code of an lpc error (service not found, disconnected, bad arguments, ...).
pub const EXIT_ERROR: u8 = 1;
/// Exit code when the call went through but the method returned an application error.
pub const EXIT_APP_ERROR: u8 = 3;
/// Exit code when the service did not answer within `--timeout` (a connection, a query or a
/// call); the message says where the call stood.
pub const EXIT_TIMEOUT: u8 = 4;

/// Styles. Written through `anstream`, which drops them when the stream is not a terminal.
pub const ERROR: Style = AnsiColor::Red.on_default().bold();
pub const HINT: Style = AnsiColor::Cyan.on_default().bold();
pub const HEADER: Style = Style::new().bold().underline();
pub const NAME: Style = AnsiColor::Green.on_default().bold();
pub const DIM: Style = Style::new().dimmed();
pub const WARN: Style = AnsiColor::Yellow.on_default().bold();

/// A failure of a subcommand: what went wrong, details, and what to do about it.
#[derive(Debug)]
pub struct CliError {
    /// The exit code.
    pub code: u8,
    /// One line: what went wrong.
    pub message: String,
    /// Further lines (usage, signature, the offending input).
    pub details: Vec<String>,
    /// What to do about it.
    pub hints: Vec<String>,
}

impl CliError {
    pub fn new(message: impl Into<String>) -> Self {
        CliError {
            code: EXIT_ERROR,
            message: message.into(),
            details: Vec::new(),
            hints: Vec::new(),
        }
    }

    pub fn detail(mut self, line: impl Into<String>) -> Self {
        self.details.push(line.into());
        self
    }

    pub fn hint(mut self, line: impl Into<String>) -> Self {
        self.hints.push(line.into());
        self
    }

    pub fn code(mut self, code: u8) -> Self {
        self.code = code;
        self
    }

    /// Prints the error on stderr. Each line is escaped ([`safe`]): messages quote what a
    /// service sent (its refusal, a handler's panic, its method names).
    pub fn print(&self) {
        anstream::eprintln!("{ERROR}error:{ERROR:#} {}", safe(&self.message));
        for line in &self.details {
            anstream::eprintln!("  {}", safe(line));
        }
        for line in &self.hints {
            anstream::eprintln!("{HINT}hint:{HINT:#} {}", safe(line));
        }
    }
}

impl From<Box<dyn std::error::Error>> for CliError {
    fn from(e: Box<dyn std::error::Error>) -> Self {
        CliError::new(e.to_string())
    }
}

pub type CliResult<T = ()> = Result<T, CliError>;

/// The global options: where services live and how long to wait for them.
pub struct Ctx {
    pub runtime_dir: PathBuf,
    /// `--timeout`: bounds each connection and query, `lpc call` whole (connection and call
    /// together), and each call of `lpc bench`.
    pub timeout: Duration,
    /// `--service-user`: the uid services must run as (ours when `None`).
    pub service_user: Option<u32>,
}

impl Ctx {
    pub fn options(&self) -> ClientOptions {
        // `lpc bench` may run more threads than a connection has call slots: they take turns.
        let options = ClientOptions::new()
            .runtime_dir(&self.runtime_dir)
            .connect_timeout(self.timeout)
            .queue_for_slot(Duration::from_secs(3600));
        match self.service_user {
            Some(uid) => options.service_uid(uid),
            None => options,
        }
    }

    /// The user services must run as: `--service-user`, else ours.
    pub fn service_user(&self) -> lpc::UserId {
        self.service_user
            .map_or_else(lpc::UserId::current, lpc::UserId::from_uid)
    }

    /// Connects to service `name` whatever its interface.
    pub fn connect(&self, name: &str) -> CliResult<Client> {
        Client::connect_dynamic(name, &self.options()).map_err(|e| self.lpc_error(e))
    }

    /// Asks service `name` about itself (no connection is left open).
    pub fn query(&self, name: &str) -> CliResult<ServiceInfo> {
        lpc::query(name, &self.options()).map_err(|e| self.lpc_error(e))
    }

    /// Turns an lpc error into a message that says what to do.
    pub fn lpc_error(&self, e: lpc::Error) -> CliError {
        let dir = self.runtime_dir.display();
        match e {
            lpc::Error::NotFound { service, path } if path.exists() => CliError::new(format!(
                "no live service `{service}` in {dir}: its socket is left over from a service that died"
            ))
            .hint("`lpc list --prune` removes stale sockets; `lpc list` shows the live services"),
            lpc::Error::NotFound { service, .. } => CliError::new(format!(
                "no service `{service}` in {dir}; `lpc list` shows the live ones"
            ))
            .hint("services of another user or session live elsewhere: see `--runtime-dir` and $LPC_RUNTIME_DIR"),
            e @ lpc::Error::Timeout { method: None, .. } => CliError::new(e.to_string())
                .code(EXIT_TIMEOUT)
                .hint(format!(
                    "the service did not answer within {}; it may be busy, hung or stopped: retry with a longer `--timeout`",
                    fmt_duration(self.timeout)
                )),
            lpc::Error::Timeout {
                service,
                method: Some(method),
                phase,
                ..
            } => {
                let mut err = CliError::new(format!(
                    "service `{service}` in method `{method}`: no reply within the `--timeout` of {}: {phase}",
                    fmt_duration(self.timeout)
                ))
                .code(EXIT_TIMEOUT)
                .hint("the service may be busy, hung or stopped; a slow method needs a longer `--timeout`");
                if phase == lpc::CallPhase::Executing {
                    err = err.hint("the method may have run, fully or in part: check before calling it again");
                }
                err
            }
            e @ lpc::Error::Disconnected { .. } => CliError::new(e.to_string())
                .hint("the service process may have exited or crashed; `lpc list` shows whether it is still there"),
            e @ lpc::Error::Busy { .. } => CliError::new(e.to_string())
                .hint("the service is at one of its limits; retry later, or with fewer threads"),
            lpc::Error::Denied { ref reason, .. }
                if reason.contains("this client did not connect") =>
            {
                CliError::new(e.to_string()).hint(
                    "if that user runs the service by design (a system service), name it: `lpc --service-user UID ...`; \
                     otherwise someone else holds the name: check who owns the runtime directory and its socket",
                )
            }
            e @ lpc::Error::Denied { .. } => CliError::new(e.to_string())
                .hint("the service decides who may connect; ask its owner, or run as a user it admits"),
            e @ lpc::Error::InvalidName { .. } => {
                CliError::new(e.to_string()).hint("`lpc list` shows the names of the live services")
            }
            e => CliError::new(e.to_string()),
        }
    }
}

/// Whether `c` must not reach a terminal as it is: a control character (C0, DEL, C1: ESC
/// starts the sequences that move the cursor, recolour, retitle the window or, on some
/// terminals, write files; CR and LF fake lines), or a character that reorders or splits
/// what is shown (bidirectional overrides and isolates, line and paragraph separators).
fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// `text` as it may be written to a terminal: every character [`unsafe_char`] names is
/// written as an escape (`\n`, `\r`, `\t`, else `\u{1b}`), everything else as it is. The one
/// way the CLI shows what a peer sent — names, signatures, type names, users, process names,
/// error messages — so that a hostile service (or a client naming its process) can neither
/// drive the terminal nor fake lines of output. The table and error printers apply it to
/// every cell and line.
pub fn safe(text: &str) -> Cow<'_, str> {
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if unsafe_char(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// A pid as shown: the number, or `unknown` for a process in a PID namespace that the one
/// asking cannot see (the kernel gives no pid for it).
pub fn fmt_pid(pid: Option<u32>) -> String {
    pid.map_or_else(|| "unknown".to_owned(), |pid| pid.to_string())
}

/// Finds `method` in the interface of `service`, or says which methods exist.
pub fn find_method<'a>(
    service: &str,
    interface: &'a InterfaceInfo,
    method: &str,
) -> CliResult<&'a MethodInfo> {
    if let Some(m) = interface.method(method) {
        return Ok(m);
    }
    let names: Vec<&str> = interface.methods.iter().map(|m| m.name.as_str()).collect();
    let mut message = format!(
        "service `{service}` (interface `{}`) has no method `{method}`",
        interface.name
    );
    if let Some(close) = names
        .iter()
        .filter(|n| edit_distance(n, method) <= 1.max(method.len() / 3))
        .min_by_key(|n| edit_distance(n, method))
    {
        let _ = write!(message, "; did you mean `{close}`?");
    }
    let listed = if names.is_empty() {
        "it has no methods".to_owned()
    } else {
        format!("its methods: {}", names.join(", "))
    };
    Err(CliError::new(message)
        .detail(listed)
        .hint(format!("`lpc describe {service}` shows their signatures")))
}

/// Levenshtein distance, for "did you mean".
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// `lpc call SERVICE METHOD <a: i32> <b: i32>`.
pub fn usage(command: &str, service: &str, method: &MethodInfo) -> String {
    let mut s = format!("lpc {command} {service} {}", method.name);
    for p in &method.params {
        let _ = write!(s, " <{}: {}>", p.name, p.ty);
    }
    s
}

/// The Rust signature of `method`, rebuilt from its parts if the service sent none.
pub fn signature(method: &MethodInfo) -> String {
    if !method.signature.is_empty() {
        return method.signature.clone();
    }
    let params: Vec<String> = method
        .params
        .iter()
        .map(|p| format!(", {}: {}", p.name, p.ty))
        .collect();
    let ret = if method.output == "()" {
        String::new()
    } else {
        format!(" -> {}", method.output)
    };
    format!("fn {}(&self{}){ret}", method.name, params.concat())
}

/// Parses `5s`, `500ms`, `250us`, `2m`, `1h`, `1.5s`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration; write e.g. `5s`, `500ms` or `2m`"))?;
    let scale = match unit.trim() {
        "" | "s" | "sec" | "secs" => 1.0,
        "ms" => 1e-3,
        "us" | "µs" => 1e-6,
        "ns" => 1e-9,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{text}`; use ns, us, ms, s, m or h"
            ))
        }
    };
    Duration::try_from_secs_f64(value * scale).map_err(|e| format!("`{text}`: {e}"))
}

/// A short human form of a latency or elapsed time: `850ns`, `5.1µs`, `1.23ms`, `2.50s`.
pub fn fmt_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    let (value, unit) = if ns < 1_000 {
        return format!("{ns}ns");
    } else if ns < 1_000_000 {
        (ns as f64 / 1e3, "µs")
    } else if ns < 1_000_000_000 {
        (ns as f64 / 1e6, "ms")
    } else {
        (d.as_secs_f64(), "s")
    };
    // Three significant digits.
    let decimals = if value < 10.0 {
        2
    } else if value < 100.0 {
        1
    } else {
        0
    };
    format!("{value:.decimals$}{unit}")
}

/// A rate: `0.5`, `12.3`, `27129`.
pub fn fmt_rate(per_sec: f64) -> String {
    if per_sec >= 100.0 {
        format!("{per_sec:.0}")
    } else {
        format!("{per_sec:.1}")
    }
}

/// A short human form of an uptime: `42s`, `3m 05s`, `2h 07m`, `4d 03h`.
pub fn fmt_uptime(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {:02}h", s / 86400, s % 86400 / 3600),
    }
}

/// Pretty (or, with `compact`, one-line) JSON, safe for a terminal (see [`json_safe`]).
pub fn to_json(value: &serde_json::Value, compact: bool) -> String {
    json_safe(if compact {
        value.to_string()
    } else {
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    })
}

/// JSON text with the characters serde_json leaves as they are but a terminal must not see
/// raw (DEL, C1 controls, bidirectional overrides: [`unsafe_char`]) written as `\uXXXX`
/// escapes. They can only stand inside strings, where the escape means the same character:
/// the JSON is unchanged for a parser. (serde_json escapes C0 controls inside strings itself;
/// outside them, the newlines and indentation of pretty JSON stay as they are.)
pub fn json_safe(text: String) -> String {
    let escape = |c: char| c >= ' ' && unsafe_char(c);
    if !text.chars().any(escape) {
        return text;
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if escape(c) {
            // Every such character is in the Basic Multilingual Plane: one \uXXXX.
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

/// Renders rows as columns, left-aligned, two spaces apart; the header is underlined.
/// Each cell is `(text, style)`; styles do not affect the widths. Every cell is shown
/// escaped ([`safe`]): cells hold what services sent.
pub fn table(header: &[&str], rows: &[Vec<(String, Style)>]) -> String {
    let rows: Vec<Vec<(String, Style)>> = rows
        .iter()
        .map(|row| {
            row.iter()
                .map(|(cell, style)| (safe(cell).into_owned(), *style))
                .collect()
        })
        .collect();
    let rows = &rows;
    let cols = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        // A row's last cell may run past the columns it does not have.
        for (i, (cell, _)) in row
            .iter()
            .enumerate()
            .take(cols)
            .take(row.len().saturating_sub(1))
        {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: Vec<(String, Style)>| {
        let n = cells.len();
        for (i, (cell, style)) in cells.into_iter().enumerate() {
            let pad = if i + 1 == n {
                0
            } else {
                widths[i].saturating_sub(cell.chars().count()) + 2
            };
            let _ = write!(out, "{style}{cell}{style:#}{:pad$}", "");
        }
        out.push('\n');
    };
    line(
        &mut out,
        header
            .iter()
            .map(|h| ((*h).to_owned(), HEADER))
            .collect::<Vec<_>>(),
    );
    for row in rows {
        line(&mut out, row.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert_eq!(fmt_duration(Duration::from_nanos(850)), "850ns");
        assert_eq!(fmt_duration(Duration::from_nanos(5_100)), "5.10µs");
        assert_eq!(fmt_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(fmt_duration(Duration::from_nanos(32_768)), "32.8µs");
        assert_eq!(fmt_uptime(Duration::from_secs(185)), "3m 05s");
    }

    #[test]
    fn what_a_peer_sent_is_escaped_for_the_terminal() {
        assert!(matches!(safe("add"), Cow::Borrowed("add")));
        assert_eq!(safe("ünïcode → fine"), "ünïcode → fine");
        assert_eq!(
            safe("a\x1b[2Jb\nFAKE\r\t\x07\x7f\u{9b}\u{202e}z"),
            "a\\u{1b}[2Jb\\nFAKE\\r\\t\\u{7}\\u{7f}\\u{9b}\\u{202e}z"
        );
        let value = serde_json::json!({"k\u{1b}": "\u{7f}\u{9b}\u{202e}\n"});
        let text = to_json(&value, true);
        assert_eq!(text, r#"{"k\u001b":"\u007f\u009b\u202e\n"}"#);
        assert!(!text.chars().any(unsafe_char));
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&text).unwrap(),
            value
        );
        let pretty = to_json(&value, false);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&pretty).unwrap(),
            value
        );
        assert!(
            pretty.contains('\n') && !pretty.contains('\u{9b}'),
            "{pretty}"
        );
        assert_eq!(fmt_pid(None), "unknown");
        assert_eq!(fmt_pid(Some(7)), "7");
    }

    #[test]
    fn suggestions() {
        assert_eq!(edit_distance("add", "ad"), 1);
        assert_eq!(edit_distance("sum", "add"), 3);
    }
}
