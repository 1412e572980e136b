//! The counter client: `counter-client [--name counter] [--times N]` adds 1 to the shared
//! total N times (default 1000) and prints its share and the total; `counter-client --total`
//! only prints the total.

use lpc_examples::counter::CounterClient;

fn main() -> std::process::ExitCode {
    lpc_examples::report(run())
}

fn run() -> Result<(), lpc::Error> {
    let counter = CounterClient::connect(&lpc_examples::name_arg("counter"))?;
    if std::env::args().any(|a| a == "--total") {
        println!("total = {}", counter.total()?);
        return Ok(());
    }
    let times = lpc_examples::number_arg("--times", 1000);
    let mut total = 0;
    for _ in 0..times {
        total = counter.increment(1)?;
    }
    println!(
        "incremented {times} times: my share {}, the total after my last call {total}",
        counter.mine()?
    );
    Ok(())
}
