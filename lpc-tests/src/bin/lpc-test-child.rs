//! `lpc-test-child`: a child service, started by `lpc::Client::spawn` (`ChildProbeClient::spawn`):
//! serves `ChildProbe` on the connection it inherited, until that connection ends. Prints the
//! error and exits with status 1 when it inherited none (or a bad one).

use lpc_tests::child::{ChildProbeServer, ChildService};

fn main() -> Result<(), lpc::Error> {
    lpc::Server::inherited()?.serve(ChildProbeServer::new(ChildService))
}
