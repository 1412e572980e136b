//! `lpc call`: one call of any method, with JSON arguments, through `Client::call_json`.

use std::time::{Duration, Instant};

use clap::Args;
use serde_json::Value;

use crate::common::{
    find_method, safe, signature, to_json, usage, CliError, CliResult, Ctx, EXIT_APP_ERROR,
    EXIT_OK, WARN,
};
use lpc::{Client, MethodInfo};

/// A method of a service and its arguments (shared by `call` and `bench`).
#[derive(Args, Debug)]
pub struct Target {
    /// The service name (see `lpc list`).
    pub service: String,
    /// The method name (see `lpc describe SERVICE`).
    pub method: String,
    /// The arguments in parameter order, each one JSON value: `1`, `2.5`, `'"text"'`,
    /// `'[1, 2]'`, `'{"red": 1.0}'`.
    #[arg(allow_negative_numbers = true, value_name = "ARGS")]
    pub args: Vec<String>,
    /// All arguments as one JSON array (in parameter order) or object (by parameter name),
    /// instead of positional ARGS.
    #[arg(long = "args", value_name = "JSON", conflicts_with = "args")]
    pub args_json: Option<String>,
}

/// A connected client, the method to call and its arguments, checked against the interface.
pub struct Prepared {
    pub client: Client,
    pub method: MethodInfo,
    pub args: Value,
}

impl Target {
    /// Connects, finds the method and builds its arguments, or says what is wrong.
    pub fn prepare(&self, ctx: &Ctx, command: &str) -> CliResult<Prepared> {
        let client = ctx.connect(&self.service)?;
        let method = find_method(&self.service, client.interface(), &self.method)?.clone();
        let args = self.build_args(command, &method)?;
        Ok(Prepared {
            client,
            method,
            args,
        })
    }

    fn build_args(&self, command: &str, method: &MethodInfo) -> CliResult<Value> {
        let usage = usage(command, &self.service, method);
        let expected = expected(method);
        let wrong_count = |got: usize| {
            CliError::new(format!("{expected}, got {got}"))
                .detail(format!("usage: {usage}"))
                .hint(format!(
                    "`lpc describe {}` shows every method's parameters",
                    self.service
                ))
        };
        if let Some(text) = &self.args_json {
            let value: Value = serde_json::from_str(text).map_err(|e| {
                bad_json("`--args`", text, &e)
                    .detail(format!("usage: {usage}"))
                    .hint(
                        "pass one JSON array or object in shell quotes, e.g. --args '{\"a\": 1, \"b\": 2}' \
                         or --args '[1, 2]'; strings inside it are JSON-quoted: '[\"text\"]'",
                    )
            })?;
            return match value {
                Value::Array(items) if items.len() == method.params.len() => {
                    Ok(Value::Array(items))
                }
                Value::Array(items) => Err(wrong_count(items.len())),
                Value::Object(map) => {
                    if let Some(missing) = method.params.iter().find(|p| !map.contains_key(&p.name))
                    {
                        return Err(CliError::new(format!(
                            "{expected}; `--args` has no `{}`",
                            missing.name
                        ))
                        .detail(format!("usage: {usage}")));
                    }
                    if let Some(unknown) = map
                        .keys()
                        .find(|k| !method.params.iter().any(|p| &p.name == *k))
                    {
                        return Err(CliError::new(format!(
                            "{expected}; there is no parameter `{unknown}`"
                        ))
                        .detail(format!("usage: {usage}")));
                    }
                    Ok(Value::Object(map))
                }
                Value::Null if method.params.is_empty() => Ok(Value::Array(Vec::new())),
                other => Err(CliError::new(format!(
                    "`--args` must be a JSON array (in parameter order) or object (by parameter name), not `{other}`"
                ))
                .detail(format!("usage: {usage}"))),
            };
        }
        if self.args.len() != method.params.len() {
            return Err(wrong_count(self.args.len()));
        }
        let mut values = Vec::with_capacity(self.args.len());
        for (i, (text, param)) in self.args.iter().zip(&method.params).enumerate() {
            let value = serde_json::from_str(text).map_err(|e| {
                bad_json(
                    &format!("argument {} `{}` ({})", i + 1, param.name, param.ty),
                    text,
                    &e,
                )
                .detail(format!("usage: {usage}"))
                .hint(
                    "each argument is one JSON value: numbers as they are (`1`, `2.5`), strings \
                     JSON-quoted inside shell quotes ('\"text\"'), arrays '[1, 2]', objects '{\"red\": 1.0}'",
                )
            })?;
            values.push(value);
        }
        Ok(Value::Array(values))
    }
}

/// "`add` takes 2 arguments (a: i32, b: i32)".
fn expected(method: &MethodInfo) -> String {
    method.takes()
}

/// "argument 2 `b` (i32) is not valid JSON: ..." with the text and a caret under the error.
fn bad_json(what: &str, text: &str, e: &serde_json::Error) -> CliError {
    let mut err = CliError::new(format!("{what} is not valid JSON: {e}"));
    if text.is_empty() {
        return err.detail("it is empty");
    }
    let line = text.lines().nth(e.line().saturating_sub(1)).unwrap_or(text);
    err = err.detail(format!("got: {line}"));
    if e.column() > 0 {
        let col = line
            .char_indices()
            .take_while(|(i, _)| *i < e.column() - 1)
            .count();
        err = err.detail(format!("     {:col$}^", ""));
    }
    err
}

/// Calls the method, giving up after `timeout`, and turns an lpc error into a message with the
/// method's signature.
pub fn call_once(ctx: &Ctx, service: &str, p: &Prepared, timeout: Duration) -> CliResult<Value> {
    p.client
        .with_timeout(timeout)
        .call_json(&p.method.name, &p.args)
        .map_err(|e| call_error(ctx, service, &p.method, e))
}

pub fn call_error(ctx: &Ctx, service: &str, method: &MethodInfo, e: lpc::Error) -> CliError {
    match e {
        lpc::Error::BadArguments { ref message, .. }
            if message.contains("does not accept JSON") =>
        {
            CliError::new(e.to_string()).hint(
                "the service was built without JSON dispatch; rebuild it with this version of lpc",
            )
        }
        lpc::Error::BadArguments { .. } => CliError::new(e.to_string())
            .detail(format!("signature: {}", signature(method)))
            .detail(format!("usage: {}", usage("call", service, method)))
            .hint("the JSON of an argument must match its Rust type (see the signature)"),
        lpc::Error::Remote { .. } => {
            CliError::new(e.to_string()).detail(format!("signature: {}", signature(method)))
        }
        e => ctx.lpc_error(e),
    }
}

/// `lpc call`: `--timeout` bounds the whole of it, connecting and calling.
pub fn run(ctx: &Ctx, target: &Target, compact: bool, json: bool, oneway: bool) -> CliResult<u8> {
    let started = Instant::now();
    let prepared = target.prepare(ctx, "call")?;
    let left = ctx.timeout.saturating_sub(started.elapsed());
    if oneway && !prepared.method.oneway {
        return Err(CliError::new(format!(
            "`{}` of service `{}` is a two-way method: it cannot be posted",
            safe(&prepared.method.name),
            target.service
        ))
        .detail(format!("signature: {}", signature(&prepared.method)))
        .hint("call it without --oneway"));
    }
    if prepared.method.oneway {
        prepared
            .client
            .with_timeout(left)
            .post_json(&prepared.method.name, &prepared.args)
            .map_err(|e| call_error(ctx, &target.service, &prepared.method, e))?;
        if json {
            anstream::println!("{}", to_json(&serde_json::json!({"posted": true}), compact));
        } else {
            anstream::println!("posted");
        }
        return Ok(EXIT_OK);
    }
    let reply = call_once(ctx, &target.service, &prepared, left)?;
    let Some(obj) = reply.as_object() else {
        return Err(CliError::new(format!(
            "service `{}` sent a reply that is not a JSON object: {reply}",
            target.service
        )));
    };
    let is_error = obj.contains_key("error");
    if json {
        anstream::println!("{}", to_json(&reply, compact));
        return Ok(if is_error { EXIT_APP_ERROR } else { EXIT_OK });
    }
    if let Some(result) = obj.get("result") {
        anstream::println!("{}", to_json(result, compact));
    }
    if let Some(Value::Object(outs)) = obj.get("out") {
        for (name, value) in outs {
            anstream::println!("{} = {}", safe(name), to_json(value, compact));
        }
    }
    if let Some(error) = obj.get("error") {
        anstream::eprintln!(
            "{WARN}error:{WARN:#} `{}` returned an application error (the `Err` of `{}`):",
            safe(&prepared.method.name),
            safe(&prepared.method.output)
        );
        anstream::eprintln!("{}", to_json(error, compact));
        return Ok(EXIT_APP_ERROR);
    }
    if !obj.contains_key("result") {
        return Err(CliError::new(format!(
            "service `{}` sent a reply with neither `result` nor `error`: {reply}",
            target.service
        )));
    }
    Ok(EXIT_OK)
}
