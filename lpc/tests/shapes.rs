//! A type whose shape cannot be traced stops the service at start and the client at connect,
//! with an error that names the type and says what to do — never a failure of every call.

use std::num::NonZeroU32;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ticket {
    /// `NonZeroU32` refuses the tracer's sample value, zero.
    pub number: NonZeroU32,
}

#[lpc::service]
pub trait Tickets {
    fn issue(&self, ticket: Ticket) -> u32;
}

struct Office;

impl Tickets for Office {
    fn issue(&self, ticket: Ticket) -> u32 {
        ticket.number.get()
    }
}

fn runtime_dir(test: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("lpc-shapes-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn a_service_whose_types_cannot_be_described_does_not_start() {
    let dir = runtime_dir("service");
    let server =
        lpc::Server::bind_with("tickets", lpc::ServerOptions::new().runtime_dir(&dir)).unwrap();
    let socket = server.path().to_owned();
    let err = server.spawn(TicketsServer::new(Office)).unwrap_err();
    // Nothing is left behind for clients to find.
    assert!(!socket.exists());
    let lpc::Error::Shape { service, detail } = &err else {
        panic!("expected Error::Shape, got {err:?}");
    };
    assert_eq!(service, "tickets");
    assert!(
        detail.contains("parameter `ticket: Ticket` of method `issue`"),
        "{detail}"
    );
    assert!(detail.contains("inside `Ticket`"), "{detail}");
    assert!(detail.contains("must accept them"), "{detail}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_descriptor_reports_the_same_error_every_time() {
    let first = TICKETS_INTERFACE.info().unwrap_err();
    let again = TICKETS_INTERFACE.info().unwrap_err();
    assert_eq!(first, again);
}
