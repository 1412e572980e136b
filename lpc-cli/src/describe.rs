//! `lpc describe`: a service's interface, method by method.

use serde_json::json;

use crate::common::{signature, to_json, usage, CliResult, Ctx, DIM, NAME};

pub fn run(ctx: &Ctx, service: &str, json: bool) -> CliResult {
    let info = ctx.query(service)?;
    let interface = &info.interface;
    if json {
        let methods: Vec<_> = interface
            .methods
            .iter()
            .map(|m| {
                json!({
                    "name": m.name,
                    "id": m.id,
                    "signature": signature(m),
                    "params": m.params,
                    "output": m.output,
                    "returns_result": m.returns_result,
                })
            })
            .collect();
        let out = json!({
            "service": service,
            "pid": info.pid,
            "interface": interface.name,
            "fingerprint": format!("{:016x}", interface.fingerprint),
            "methods": methods,
        });
        anstream::println!("{}", to_json(&out, false));
        return Ok(());
    }
    let count = interface.methods.len();
    anstream::println!(
        "service {NAME}{service}{NAME:#} (pid {}): interface {NAME}{}{NAME:#}, fingerprint {:016x}, {count} method{}",
        info.pid,
        interface.name,
        interface.fingerprint,
        if count == 1 { "" } else { "s" }
    );
    for m in &interface.methods {
        anstream::println!();
        anstream::println!("  {}", signature(m));
        let outs: Vec<&str> = m
            .params
            .iter()
            .filter(|p| p.out)
            .map(|p| p.name.as_str())
            .collect();
        if !outs.is_empty() {
            anstream::println!(
                "    {DIM}in/out: the service's new value of {} comes back with the result{DIM:#}",
                outs.iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        if m.returns_result {
            anstream::println!(
                "    {DIM}an `Err` is an application error (`lpc call` exits with code 3){DIM:#}"
            );
        }
        anstream::println!("    {DIM}{}{DIM:#}", usage("call", service, m));
    }
    Ok(())
}
