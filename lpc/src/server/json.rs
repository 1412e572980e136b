//! Support for the generated `dispatch_json`: JSON arguments checked against the method's
//! parameters, each decoded with an error that names it, and the JSON reply.

use serde_json::Value;

use super::dispatch::DispatchError;
use crate::channel::scope;
use crate::wire::budget::{self, Budget};
use crate::wire::interface::{InterfaceDescriptor, MethodDescriptor, MethodInfo};
use crate::wire::shape::{check_json, TypeTable};

/// The arguments of a JSON call, one value per parameter, in order.
pub struct Args {
    values: Vec<Option<Value>>,
    method: &'static MethodDescriptor,
    /// The method's shapes and the interface's types, to check each argument strictly.
    shapes: Option<(&'static MethodInfo, &'static TypeTable)>,
    /// What parsing the arguments and decoding them may allocate, together.
    budget: Budget,
}

impl Args {
    /// Parses `bytes` (an array in parameter order, or an object by parameter name)
    /// and checks it has exactly the parameters of method `index` of `interface`.
    pub fn parse(
        bytes: &[u8],
        interface: &'static InterfaceDescriptor,
        index: usize,
    ) -> Result<Args, DispatchError> {
        let method = &interface.methods[index];
        // Traced when the service started (it cannot start otherwise).
        let shapes = interface
            .info()
            .ok()
            .and_then(|info| Some((info.methods.get(index)?, &info.types)));
        let bad = |m: String| DispatchError::BadArguments(m);
        let expected = || method.takes();
        // The connection's payload limit, when called by the runtime (tests and fuzzers call
        // dispatchers directly: then the budget of the length alone).
        let limit = scope::served(|channel| channel.receive_limit()).unwrap_or(u64::MAX);
        let budget = Budget::for_payload(bytes.len(), limit);
        let value: Value = budget::json_value(bytes, &budget).map_err(|e| {
            bad(match budget.refusal() {
                Some(why) => format!("the arguments are too large to decode: {why}"),
                None => format!("the arguments are not valid JSON: {e}"),
            })
        })?;
        let values = match value {
            Value::Array(items) => {
                if items.len() != method.params.len() {
                    return Err(bad(format!("{}, got {}", expected(), items.len())));
                }
                items.into_iter().map(Some).collect()
            }
            Value::Object(mut map) => {
                let values = method
                    .params
                    .iter()
                    .map(|p| map.remove(p.name))
                    .collect::<Vec<_>>();
                if let Some(missing) = method.params.iter().zip(&values).find(|(_, v)| v.is_none())
                {
                    return Err(bad(format!(
                        "{}; `{}` is missing",
                        expected(),
                        missing.0.name
                    )));
                }
                if let Some(unknown) = map.keys().next() {
                    return Err(bad(format!(
                        "{}; there is no parameter `{unknown}`",
                        expected()
                    )));
                }
                values
            }
            Value::Null if method.params.is_empty() => Vec::new(),
            other => {
                return Err(bad(format!(
                    "{}; send an array or an object, not {other}",
                    expected()
                )))
            }
        };
        Ok(Args {
            values,
            method,
            shapes,
            budget,
        })
    }

    /// Decodes argument `index` as `T`.
    pub fn take<T: serde::de::DeserializeOwned>(
        &mut self,
        index: usize,
    ) -> Result<T, DispatchError> {
        let value = self.values[index].take().unwrap_or(Value::Null);
        self.check(&value, index)?;
        self.budget
            .deserialize(value)
            .map_err(|e| self.bad(index, e))
    }

    /// Decodes argument `index`, already taken as a `Value` (with [`Args::take`]), as a `T`
    /// that borrows from it (`&str`, `&[u8]`).
    pub fn decode_borrowed<'v, T: serde::Deserialize<'v>>(
        &self,
        value: &'v Value,
        index: usize,
    ) -> Result<T, DispatchError> {
        self.budget
            .deserialize(value)
            .map_err(|e| self.bad(index, e))
    }

    /// Checks argument `index` strictly: serde's derived decoders ignore unknown fields; a
    /// caller who misspells one should hear of it, not have it silently dropped.
    fn check(&self, value: &Value, index: usize) -> Result<(), DispatchError> {
        let param = &self.method.params[index];
        if let Some((shape, types)) = self
            .shapes
            .and_then(|(m, types)| Some((&m.params.get(index)?.shape, types)))
        {
            check_json(value, shape, types).map_err(|e| {
                DispatchError::BadArguments(format!(
                    "argument `{}` ({}): {e}",
                    param.name, param.ty
                ))
            })?;
        }
        Ok(())
    }

    /// The error of argument `index` that did not decode.
    fn bad(&self, index: usize, e: serde_json::Error) -> DispatchError {
        let param = &self.method.params[index];
        DispatchError::BadArguments(format!("argument `{}` ({}): {e}", param.name, param.ty))
    }
}

/// Converts one `&mut` parameter's new value for [`reply`].
pub fn out<T: serde::Serialize + ?Sized>(
    name: &'static str,
    value: &T,
) -> Result<(&'static str, Value), DispatchError> {
    serde_json::to_value(value)
        .map(|v| (name, v))
        .map_err(|e| DispatchError::Encode(e.to_string()))
}

/// Writes `{"result": value, "out": {...}}` (or `"error"` when `is_error`) to `reply`.
pub fn reply<T: serde::Serialize + ?Sized>(
    reply: &mut Vec<u8>,
    is_error: bool,
    value: &T,
    outs: Vec<(&'static str, Value)>,
) -> Result<(), DispatchError> {
    let mut map = serde_json::Map::new();
    let value = serde_json::to_value(value).map_err(|e| DispatchError::Encode(e.to_string()))?;
    map.insert(if is_error { "error" } else { "result" }.to_owned(), value);
    if !outs.is_empty() {
        map.insert(
            "out".to_owned(),
            Value::Object(outs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()),
        );
    }
    serde_json::to_writer(reply, &Value::Object(map))
        .map_err(|e| DispatchError::Encode(e.to_string()))
}
