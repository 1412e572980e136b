//! Calls that pass handles (files, descriptors, segments): their arguments are encoded and
//! their result decoded where the connection's socket can carry descriptors. Only the
//! methods that pass handles take this path; every other call pays nothing for it.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::Client;
use crate::channel::scope;
use crate::error::Result;
use crate::wire::interface::MethodDescriptor;

impl Client {
    /// Like [`Client::call`], for methods that pass files, descriptors or segments (as
    /// arguments or in the result): the descriptors travel on the connection's socket, each
    /// announced before the frame that names it (see `docs/architecture.md`). Generated
    /// clients use it for such methods (decided from the types' paths, see `lpc-macros`).
    pub fn call_handles<A, R>(&self, method: &'static MethodDescriptor, args: &A) -> Result<R>
    where
        A: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        let conn = self.live(method.name)?;
        crate::channel::handles::begin_call();
        scope::calling(&conn.channel, || self.call_inner(method, args, true))
    }
}
