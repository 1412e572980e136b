//! Access control by user SID on Windows: the credentials of a connection are the client's
//! pid and token user (a SID), and a service admits other users by SID. Under Wine there is
//! one user, so another user's refusal cannot be shown here (the Unix tests, tests/policy.rs,
//! use a second user); what is shown is the SID lpc reads and a service that admits another
//! SID (which widens its pipe's DACL) still serving.

#![cfg(windows)]

use lpc::{ServerOptions, UserId};
use lpc_tests::{client_options, ProbeClient, ProbeServer, ProbeService};
use tempfile::TempDir;

#[test]
fn a_connection_carries_the_clients_pid_and_token_sid() {
    let me = UserId::current();
    let sid = me.sid().expect("a Windows user is a SID").to_owned();
    assert!(sid.starts_with("S-1-"), "{sid}");
    let dir = TempDir::new().unwrap();
    let handle = lpc::Server::bind_with("probe", ServerOptions::new().runtime_dir(dir.path()))
        .unwrap()
        .spawn(ProbeServer::new(ProbeService))
        .unwrap();
    let probe = ProbeClient::connect_with("probe", &client_options(dir.path())).unwrap();
    assert_eq!(probe.add(1, 1).unwrap(), 2);
    let clients = handle.clients();
    assert_eq!(clients.len(), 1);
    assert_eq!(clients[0].pid(), Some(std::process::id()));
    assert_eq!(clients[0].user().sid(), Some(sid.as_str()));
    assert_eq!(clients[0].uid(), None);
}

#[test]
fn a_service_that_admits_another_sid_still_serves_its_own_user() {
    let dir = TempDir::new().unwrap();
    // BUILTIN\Users: admitting it widens the pipe's DACL (SetSecurityInfo on the waiting
    // instance, and every later one).
    let handle = lpc::Server::bind_with(
        "probe",
        ServerOptions::new()
            .runtime_dir(dir.path())
            .allow_user(UserId::from_sid("S-1-5-32-545")),
    )
    .unwrap()
    .spawn(ProbeServer::new(ProbeService))
    .unwrap();
    let probe = ProbeClient::connect_with("probe", &client_options(dir.path())).unwrap();
    assert_eq!(probe.add(2, 3).unwrap(), 5);
    let clients = handle.clients();
    assert_eq!(clients.len(), 1);
    assert_eq!(clients[0].user(), &UserId::current());
}
