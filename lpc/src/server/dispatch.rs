//! The service side of an interface, as the runtime sees it: the [`Dispatch`] trait that the
//! generated `XxxServer<T>` implements, and the encoded arguments and reply it works on.
//!
//! The runtime never knows the user's trait: the connection thread hands each call's method id
//! and [`EncodedArgs`] to [`Dispatch::dispatch`], which decodes them, runs the handler and
//! encodes the result into an [`EncodedReply`] — straight into the caller's call slot.

use crate::channel::payload::PayloadWriter;
use crate::channel::Payload;
use crate::wire::codec;
use crate::wire::interface::InterfaceDescriptor;

/// Why a dispatcher could not run a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DispatchError {
    /// No method has this id.
    NoSuchMethod,
    /// The argument bytes do not decode as the method's parameters.
    BadArguments(String),
    /// The result could not be encoded.
    Encode(String),
}

/// The encoded arguments of one call, as the runtime hands them to [`Dispatch::dispatch`]:
/// copied out of the call slot, or, for a large payload, still in shared memory, where the
/// decoder copies each value out once (a byte buffer straight into the `Vec` the handler
/// gets). Build one from bytes to call a dispatcher directly, as tests and fuzzers do.
pub struct EncodedArgs<'a>(pub(crate) Payload<'a>);

impl<'a> EncodedArgs<'a> {
    /// Arguments already in private memory (decoded within the budget of their length alone:
    /// no payload limit applies).
    pub fn from_bytes(bytes: &'a [u8]) -> EncodedArgs<'a> {
        EncodedArgs(Payload::local(bytes, u64::MAX))
    }
}

impl<'a> EncodedArgs<'a> {
    /// The encoded arguments in private memory (copied out of shared memory if they were
    /// large): for dispatchers in other languages, which decode them themselves (the C ABI).
    #[doc(hidden)]
    pub fn into_bytes(self) -> std::io::Result<&'a [u8]> {
        self.0.into_local()
    }
}

impl<'a> From<&'a [u8]> for EncodedArgs<'a> {
    fn from(bytes: &'a [u8]) -> Self {
        EncodedArgs::from_bytes(bytes)
    }
}

impl<'a> From<&'a Vec<u8>> for EncodedArgs<'a> {
    fn from(bytes: &'a Vec<u8>) -> Self {
        EncodedArgs::from_bytes(bytes)
    }
}

/// Where [`Dispatch::dispatch`] writes the encoded result: the caller's call slot (the
/// runtime's case: a large result goes straight into shared memory), or a `Vec`.
pub struct EncodedReply<'a>(pub(crate) ReplyTarget<'a>);

pub(crate) enum ReplyTarget<'a> {
    Vec(&'a mut Vec<u8>),
    Slot(PayloadWriter<'a>),
}

impl<'a> EncodedReply<'a> {
    /// A reply appended to `out`.
    pub fn to_vec(out: &'a mut Vec<u8>) -> EncodedReply<'a> {
        EncodedReply(ReplyTarget::Vec(out))
    }
}

impl EncodedReply<'_> {
    /// Appends an already encoded result: for dispatchers in other languages, which encode
    /// it themselves (the C ABI). A failure to write (no memory for a spill buffer) is
    /// reported when the runtime finishes the reply.
    #[doc(hidden)]
    pub fn put_bytes(&mut self, bytes: &[u8]) {
        match &mut self.0 {
            ReplyTarget::Vec(vec) => vec.extend_from_slice(bytes),
            ReplyTarget::Slot(writer) => {
                let _ = crate::wire::codec::Sink::put_all(writer, bytes);
            }
        }
    }
}

impl<'a> From<&'a mut Vec<u8>> for EncodedReply<'a> {
    fn from(out: &'a mut Vec<u8>) -> Self {
        EncodedReply::to_vec(out)
    }
}

/// The service side of an interface: decodes arguments, runs the handler, encodes the result.
///
/// Implemented by the `XxxServer<T>` type that `#[lpc::service]` generates; the runtime calls
/// [`Dispatch::dispatch`] once per call, from the thread serving the caller's connection, inside
/// `catch_unwind`.
pub trait Dispatch: Send + Sync + 'static {
    /// The interface this dispatcher serves.
    fn interface(&self) -> &'static InterfaceDescriptor;

    /// Runs method `method_id` with the postcard-encoded `args` and writes the
    /// postcard-encoded result to `reply` (which is empty on entry).
    fn dispatch(
        &self,
        method_id: u32,
        args: EncodedArgs<'_>,
        reply: &mut EncodedReply<'_>,
    ) -> Result<(), DispatchError>;

    /// Runs method `method_id` with JSON `args` — an array of the arguments in order, or an
    /// object by parameter name — and appends the JSON reply to `reply`: `{"result": R}`, or
    /// `{"error": E}` when a method returning `Result<T, E>` fails, plus `"out": {name: value}`
    /// with the new values of the `&mut` parameters. This is how tools and other languages
    /// call a service without compiled stubs; the generated dispatchers implement it.
    fn dispatch_json(
        &self,
        method_id: u32,
        args: &[u8],
        reply: &mut Vec<u8>,
    ) -> Result<(), DispatchError> {
        let _ = (args, reply);
        match self.interface().method(method_id) {
            Some(_) => Err(DispatchError::BadArguments(
                "this service does not accept JSON calls".into(),
            )),
            None => Err(DispatchError::NoSuchMethod),
        }
    }
}

/// Decodes a call's arguments (a tuple) in the service: what generated dispatchers call.
#[inline]
pub fn decode_args<'a, T: serde::Deserialize<'a>>(
    args: EncodedArgs<'a>,
) -> Result<T, DispatchError> {
    args.0.decode().map_err(|why| {
        DispatchError::BadArguments(format!(
            "the arguments do not decode as the method's parameters: {why}"
        ))
    })
}

/// Encodes a call's result in the service: what generated dispatchers call.
#[inline]
pub fn encode_reply<T: serde::Serialize + ?Sized>(
    value: &T,
    out: &mut EncodedReply<'_>,
) -> Result<(), DispatchError> {
    let encoded = match &mut out.0 {
        ReplyTarget::Vec(vec) => codec::encode_into(value, *vec),
        ReplyTarget::Slot(writer) => codec::encode_into(value, writer),
    };
    encoded.map_err(DispatchError::Encode)
}

/// `Dispatch::dispatch_json` for a dispatcher that knows only the binary encoding (a service
/// written in another language): converts the JSON arguments to postcard through the
/// method's parameter shapes, runs `call` on them, and converts its postcard result back,
/// as `{"result": …}` (or `{"error": …}` for a method returning `Result` that failed).
/// Methods with `&mut` parameters are refused.
#[doc(hidden)]
pub fn json_by_shapes(
    info: &crate::wire::interface::InterfaceInfo,
    method_id: u32,
    args: &[u8],
    reply: &mut Vec<u8>,
    call: impl FnOnce(&[u8]) -> Result<Vec<u8>, DispatchError>,
) -> Result<(), DispatchError> {
    use crate::wire::dynamic::decode_json;
    use crate::wire::shape::Shape;
    let method = info
        .methods
        .iter()
        .find(|m| m.id == method_id)
        .ok_or(DispatchError::NoSuchMethod)?;
    let bad = |why: String| DispatchError::BadArguments(why);
    if method.params.iter().any(|p| p.out) {
        return Err(bad(format!(
            "{} has `&mut` parameters: JSON calls of it are not supported by this service",
            method.name
        )));
    }
    let encoded = encode_json_args(&method.name, &method.params, &info.types, args).map_err(bad)?;
    let result = call(&encoded)?;
    let decode = |bytes: &[u8], shape: &Shape| {
        decode_json(bytes, shape, &info.types).map_err(|why| {
            DispatchError::Encode(format!("the result does not match its shape: {why}"))
        })
    };
    let json = match (&method.error, result.split_first()) {
        (Some(error), Some((&1, rest))) => serde_json::json!({ "error": decode(rest, error)? }),
        (Some(_), Some((&0, rest))) => {
            serde_json::json!({ "result": decode(rest, &method.result)? })
        }
        (Some(_), _) => {
            return Err(DispatchError::Encode(
                "the result is not a Result's encoding".into(),
            ))
        }
        (None, _) => serde_json::json!({ "result": decode(&result, &method.result)? }),
    };
    serde_json::to_writer(reply, &json).map_err(|e| DispatchError::Encode(e.to_string()))
}

/// The postcard encoding of JSON arguments — an array in parameter order, or an object by
/// parameter name — through the parameters' shapes: for bindings that take JSON (the C
/// ABI's events, `json_by_shapes`).
#[doc(hidden)]
pub fn encode_json_args(
    what: &str,
    params: &[crate::wire::interface::ParamInfo],
    types: &crate::wire::shape::TypeTable,
    args: &[u8],
) -> Result<Vec<u8>, String> {
    use crate::wire::dynamic::encode_json;
    let args: serde_json::Value =
        serde_json::from_slice(args).map_err(|e| format!("the arguments are not JSON: {e}"))?;
    let values: Vec<&serde_json::Value> = match &args {
        serde_json::Value::Array(items) if items.len() == params.len() => items.iter().collect(),
        serde_json::Value::Object(fields) if fields.len() == params.len() => params
            .iter()
            .map(|p| {
                fields
                    .get(&p.name)
                    .ok_or_else(|| format!("no argument named `{}`", p.name))
            })
            .collect::<Result<_, _>>()?,
        _ => {
            return Err(format!(
                "{what} takes {} arguments: give an array in order or an object by name",
                params.len()
            ))
        }
    };
    let mut encoded = Vec::new();
    for (param, value) in params.iter().zip(values) {
        let bytes = encode_json(value, &param.shape, types)
            .map_err(|why| format!("argument `{}`: {why}", param.name))?;
        encoded.extend_from_slice(&bytes);
    }
    Ok(encoded)
}
