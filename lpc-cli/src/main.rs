//! `lpc`: the command-line tool of lpc.

mod bench;
mod call;
mod common;
mod demo;
mod describe;
mod draw;
mod gen;
mod list;
mod monitor;
mod shared;
mod watch;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand};

use crate::common::{parse_duration, CliError, Ctx, EXIT_OK};

const CALL_HELP: &str = "\
Example:
  lpc call calc add 10 20
  lpc call calc add --args '{\"a\": 10, \"b\": 20}'
  lpc call calc sum '[1, 2, 3]'
  lpc call compare compare_image '{\"red\": 3333.0, \"blue\": 20.01}'
  lpc call greeter greet '\"world\"'      (strings are JSON: quoted, inside shell quotes)

Output: the result as JSON on stdout, then `name = value` for each `&mut` parameter.
With --json, the service's whole reply: {\"result\": ..., \"out\": {...}} or {\"error\": ...}.

Exit codes:
  0  the call succeeded
  1  lpc or usage error: no such service or method, bad JSON, wrong arguments, disconnected, ...
  2  the command line did not parse (unknown option, missing SERVICE or METHOD)
  3  the call went through, but the method returned an application error (`Err` of its Result)
  4  no answer within --timeout, which bounds the whole call (connecting and calling); the
     message says where the call stood (not sent, not taken, or executing: it may have run)";

#[derive(Parser)]
#[command(
    name = "lpc",
    version,
    about = "Local procedure calls: call functions in another process",
    after_help = "Example:\n  lpc list\n  lpc describe calc\n  lpc call calc add 10 20\n\n\
                  Colour is used only on a terminal (NO_COLOR turns it off, CLICOLOR_FORCE=1 on)."
)]
struct Cli {
    /// The runtime directory where services put their sockets [default: $LPC_RUNTIME_DIR,
    /// else $XDG_RUNTIME_DIR/lpc, else /tmp/lpc-UID].
    #[arg(long, global = true, value_name = "DIR")]
    runtime_dir: Option<PathBuf>,

    /// How long to wait for a service (e.g. `500ms`, `5s`): to accept a connection, to answer
    /// a query (`list`, `monitor`), and to finish a call (`call`: connecting and calling
    /// together; `bench`: each call). Past it, lpc exits with code 4.
    #[arg(long, global = true, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    timeout: Duration,

    /// Talk only to services run by this user (a numeric uid), e.g. a system service run by
    /// root [default: your own user]. A service of any other user is refused, naming both:
    /// a socket another user planted never answers.
    #[arg(long, global = true, value_name = "UID")]
    service_user: Option<u32>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the services of the runtime directory: name, pid, uid, interface, methods,
    /// clients, uptime; sockets left by dead services show as stale. Then its shared values
    /// and segments: name, kind, size, type, holders.
    #[command(
        after_help = "Example:\n  lpc list\n  lpc list --prune\n  lpc --runtime-dir /tmp/my-lpc list --json"
    )]
    List {
        /// Remove the sockets left by services that died.
        #[arg(long)]
        prune: bool,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },

    /// Show a service's interface: its types written as Rust, and every method's signature,
    /// the shapes of its parameters and result, and an `lpc call` line that works.
    #[command(
        after_help = "Example:\n  lpc describe calc\n  lpc describe calc --json\n\n\
                      The --json format (\"lpc-interface/1\") is documented in docs/shapes.md."
    )]
    Describe {
        /// The service name (see `lpc list`).
        service: String,
        /// Print the interface as JSON, with the shape of every parameter, result, error and
        /// type (format `lpc-interface/1`, see docs/shapes.md).
        #[arg(long)]
        json: bool,
    },

    /// Call a method with JSON arguments and print its JSON result.
    ///
    /// Each positional argument is one JSON value (strict: strings must be quoted JSON);
    /// or give them all with `--args` as an array or an object by parameter name.
    #[command(after_help = CALL_HELP)]
    Call {
        #[command(flatten)]
        target: call::Target,
        /// Print JSON on one line.
        #[arg(long)]
        compact: bool,
        /// Print the service's whole JSON reply (result, error and `&mut` values).
        #[arg(long)]
        json: bool,
        /// Post a one-way method (`#[lpc(oneway)]`): return once the message is in the
        /// service's queue, before it runs. One-way methods are always posted; with this
        /// flag a two-way method is an error instead of a call.
        #[arg(long)]
        oneway: bool,
    },

    /// Generate typed stubs of a service's interface for another language: `lpc gen c NAME`
    /// writes NAME's interface as `<interface>.h` and `<interface>.c` (client functions, C
    /// types, a service skeleton; the binary encoding Rust clients use). See docs/c.md.
    Gen {
        /// The language: `c`.
        #[arg(value_parser = ["c"])]
        language: String,
        /// The service name, or with --from the path of an `lpc describe --json` document.
        source: String,
        /// Read the interface from a file written by `lpc describe --json`.
        #[arg(long)]
        from: bool,
        /// Where to write the files (default: the current directory).
        #[arg(long, value_name = "DIR", default_value = ".")]
        out: PathBuf,
    },
    /// Print a service's events as JSON lines (`{"event", "args", "missed"}`) until
    /// interrupted, `--count` events, or the service is gone.
    Watch {
        /// The service name (see `lpc list`).
        service: String,
        /// Only these events (all by default).
        events: Vec<String>,
        /// Exit after this many events.
        #[arg(long)]
        count: Option<u64>,
    },

    /// Watch a service: per-method calls, rates, latency percentiles, errors, and its clients.
    #[command(
        after_help = "Example:\n  lpc monitor calc\n  lpc monitor calc --interval 500ms\n  lpc monitor calc --once\n\n\
                      Each poll gives up after --timeout: a service that stops answering ends the\n\
                      monitor with exit code 4."
    )]
    Monitor {
        /// The service name (see `lpc list`).
        service: String,
        /// How often to refresh (rates are over this interval).
        #[arg(long, default_value = "1s", value_parser = parse_duration)]
        interval: Duration,
        /// Print one frame (rates over one interval) and exit.
        #[arg(long)]
        once: bool,
    },

    /// Load a method with JSON calls from threads sharing one client; print calls/s and a
    /// latency histogram with percentiles.
    #[command(
        after_help = "Example:\n  lpc bench calc add 1 2 --calls 100000 --concurrency 4\n  lpc bench calc sum '[1, 2, 3]' --duration 5s\n\n\
                      Each call gives up after --timeout (default 5s): a service that stops answering\n\
                      ends the run with exit code 4."
    )]
    Bench {
        #[command(flatten)]
        target: call::Target,
        /// How many calls to make [default: 10000].
        #[arg(long, conflicts_with = "duration")]
        calls: Option<u64>,
        /// Call for this long instead (e.g. `5s`, `1m`).
        #[arg(long, value_parser = parse_duration)]
        duration: Option<Duration>,
        /// Threads calling at once, sharing one client.
        #[arg(long, default_value_t = 1)]
        concurrency: usize,
    },

    /// Print a shared value as JSON, decoded by the type its memory records.
    #[command(after_help = "Example:\n  lpc get counter\n  lpc get config --compact")]
    Get {
        /// The shared value's name (see `lpc list`).
        name: String,
        /// Print JSON on one line.
        #[arg(long)]
        compact: bool,
    },

    /// Write a shared value from JSON, checked against the type its memory records.
    #[command(
        after_help = "Example:\n  lpc set counter 16\n  lpc set config '{\"level\": 3, \"name\": \"fast\"}'"
    )]
    Set {
        /// The shared value's name (see `lpc list`).
        name: String,
        /// The new value, one JSON value (strings quoted: '"text"').
        #[arg(allow_negative_numbers = true)]
        value: String,
    },

    /// Print a shell completion script.
    #[command(
        after_help = "Example:\n  lpc completions bash > ~/.local/share/bash-completion/completions/lpc\n  lpc completions zsh > ~/.zfunc/_lpc\n  lpc completions fish > ~/.config/fish/completions/lpc.fish"
    )]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },

    /// Start an embedded calc service in a child process, call it, and show the latency
    /// (`lpc demo draw`: the drawing demo, two processes with a window each).
    ///
    /// Example: `lpc demo --calls 100000`
    #[command(after_help = "Example:\n  lpc demo --calls 100000")]
    Demo {
        /// How many `add` calls to time.
        #[arg(long, default_value_t = 100_000)]
        calls: u32,
        #[command(subcommand)]
        demo: Option<DemoKind>,
    },

    /// The drawing demo's service process (started by `lpc demo draw`).
    #[command(hide = true, name = "__draw-service")]
    DrawService {
        /// The service name.
        name: String,
    },

    /// The drawing demo's client process (started by `lpc demo draw`).
    #[command(hide = true, name = "__draw-client")]
    DrawClient {
        /// The drawing service's name.
        name: String,
        #[arg(long)]
        script: Option<PathBuf>,
        #[arg(long)]
        screenshot: Option<PathBuf>,
    },

    /// The demo's service process (started by `lpc demo`).
    #[command(hide = true, name = "__demo-service")]
    DemoService {
        /// Prefix of the service names.
        name: String,
    },
}

#[derive(Subcommand)]
enum DemoKind {
    /// The drawing demo: process A owns a window and serves drawing functions
    /// (`draw_rectangle`, `draw_line`, `draw_text`, `set_color`, `clear`, `snapshot`); process
    /// B's buttons (or a script) call them, and A's window shows the result.
    #[command(
        after_help = "Example:\n  lpc demo draw\n  lpc demo draw --script drawing.txt\n  \
                      xvfb-run -a lpc demo draw --script drawing.txt --screenshot both.png\n\n\
                      Script lines: draw_rectangle X0 Y0 X1 Y1 | draw_line X0 Y0 X1 Y1 |\n\
                      draw_text X Y TEXT | set_color R G B | clear | pause MS | # comment\n\
                      (docs/guide.md, \"The drawing demo\")."
    )]
    Draw {
        /// Make the calls of this script (one a line; see below), then keep the windows open.
        #[arg(long, value_name = "FILE")]
        script: Option<PathBuf>,
        /// After the script, write a PNG of both windows here and exit.
        #[arg(long, value_name = "PNG")]
        screenshot: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let ctx = Ctx {
        runtime_dir: cli
            .runtime_dir
            .unwrap_or_else(lpc::registry::default_runtime_dir),
        timeout: cli.timeout,
        service_user: cli.service_user,
    };
    let result: Result<u8, CliError> = match cli.command {
        Command::List { prune, json } => list::run(&ctx, prune, json).map(|()| EXIT_OK),
        Command::Describe { service, json } => {
            describe::run(&ctx, &service, json).map(|()| EXIT_OK)
        }
        Command::Call {
            target,
            compact,
            json,
            oneway,
        } => call::run(&ctx, &target, compact, json, oneway),
        Command::Gen {
            language: _,
            source,
            from,
            out,
        } => gen::run(&ctx, &source, from, &out).map(|()| EXIT_OK),
        Command::Watch {
            service,
            events,
            count,
        } => watch::run(&ctx, &service, &events, count).map(|()| EXIT_OK),
        Command::Monitor {
            service,
            interval,
            once,
        } => monitor::run(&ctx, &service, interval, once).map(|()| EXIT_OK),
        Command::Bench {
            target,
            calls,
            duration,
            concurrency,
        } => {
            let load = match (calls, duration) {
                (_, Some(d)) => bench::Load::Duration(d),
                (n, None) => bench::Load::Calls(n.unwrap_or(10_000)),
            };
            bench::run(&ctx, &target, load, concurrency).map(|()| EXIT_OK)
        }
        Command::Get { name, compact } => shared::get(&ctx, &name, compact).map(|()| EXIT_OK),
        Command::Set { name, value } => shared::set(&ctx, &name, &value).map(|()| EXIT_OK),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "lpc", &mut std::io::stdout());
            Ok(EXIT_OK)
        }
        Command::Demo {
            calls: _,
            demo: Some(DemoKind::Draw { script, screenshot }),
        } => draw::run(&ctx.runtime_dir, script.as_deref(), screenshot.as_deref())
            .map(|()| EXIT_OK)
            .map_err(CliError::from),
        Command::Demo { calls, demo: None } => {
            demo::run(calls).map(|()| EXIT_OK).map_err(CliError::from)
        }
        Command::DrawService { name } => draw::service(ctx.runtime_dir.clone(), &name)
            .map(|()| EXIT_OK)
            .map_err(CliError::from),
        Command::DrawClient {
            name,
            script,
            screenshot,
        } => draw::client(ctx.runtime_dir.clone(), &name, script, screenshot)
            .map(|()| EXIT_OK)
            .map_err(CliError::from),
        Command::DemoService { name } => demo::service(&name)
            .map(|()| EXIT_OK)
            .map_err(CliError::from),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            e.print();
            ExitCode::from(e.code)
        }
    }
}
