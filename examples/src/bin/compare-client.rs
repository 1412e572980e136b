//! The compare client: `compare-client [--name compare]` sends a reading and prints what the
//! service wrote back into it.

use lpc_examples::compare::{CompareClient, MyInfo};

fn main() -> std::process::ExitCode {
    lpc_examples::report(run())
}

fn run() -> Result<(), lpc::Error> {
    let compare = CompareClient::connect(&lpc_examples::name_arg("compare"))?;
    let mut info = MyInfo {
        red: 3333.0,
        blue: 20.01,
    };
    println!("client: sending red={:.2}, blue={:.2}", info.red, info.blue);
    let verdict = compare.compare_image(&mut info)?;
    println!(
        "client: verdict {verdict:?}; service wrote red={:.2}, blue={:.2}",
        info.red, info.blue
    );
    Ok(())
}
