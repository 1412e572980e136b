//! The copy-data client: `copydata-client [--name copydata] [--text TEXT] [--bytes N]` posts
//! TEXT as kind 1 and N bytes (default 20000) as kind 2, one-way, then asks the service what
//! it received: a call made after posts runs after them, so both are counted.

use lpc_examples::copydata::CopyDataClient;

fn main() -> std::process::ExitCode {
    lpc_examples::report(run())
}

fn run() -> Result<(), lpc::Error> {
    let service = CopyDataClient::connect(&lpc_examples::name_arg("copydata"))?;
    let text = lpc_examples::string_arg("--text").unwrap_or_else(|| "hello from a client".into());
    let len = lpc_examples::number_arg("--bytes", 20_000) as usize;
    service.copy_data(1, text.clone().into_bytes())?;
    service.copy_data(2, vec![0xAB; len])?;
    println!(
        "posted kind 1 ({} bytes) and kind 2 ({len} bytes)",
        text.len()
    );
    for (kind, messages, bytes) in service.received()? {
        println!("the service has received kind {kind}: {messages} message(s), {bytes} bytes");
    }
    Ok(())
}
