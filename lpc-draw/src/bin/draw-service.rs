//! The drawing service: `draw-service [--name draw] [--until-stdin-closes]`. Opens its window
//! and prints `ready: …` once clients can connect and watch.

fn main() -> std::process::ExitCode {
    let options = lpc_draw::service::Options {
        name: arg("--name").unwrap_or_else(|| "draw".into()),
        runtime_dir: None,
        until_stdin_closes: std::env::args().any(|a| a == "--until-stdin-closes"),
    };
    match lpc_draw::service::run(&options) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn arg(flag: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1).cloned())
}
