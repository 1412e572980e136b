//! The calc client: `calc-client [--name calc]` calls `add(10, 20)` in the service.

use lpc_examples::calc::CalcClient;

fn main() -> std::process::ExitCode {
    lpc_examples::report(run())
}

fn run() -> Result<(), lpc::Error> {
    let calc = CalcClient::connect(&lpc_examples::name_arg("calc"))?;
    let sum = calc.add(10, 20)?;
    println!("add(10, 20) = {sum}");
    Ok(())
}
