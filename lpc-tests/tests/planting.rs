//! Another local user against lpc's naming and queries (issue 12, second round, items 5–7;
//! docs/security.md, "Threat model (local users)"):
//!
//! * a runtime directory another user planted (their own directory, a symlink, one others can
//!   write to) is refused, with an error that says what to do, and never has its mode changed;
//! * a client connects only to a service of the user it expects (its own, or the one it
//!   names): another user's service, in a planted directory, never answers its calls;
//! * peers in other PID namespaces, whose pid the kernel cannot give, work, shown as unknown;
//! * a query shows an admitted user only its own connections; the owner sees all.
//!
//! Tests that need another user or a PID namespace run as root (and say so when skipped).

// Unix: modes, owners and symlinks of the runtime directory.
#![cfg(unix)]

use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lpc::Error;
use lpc_tests::{client_options, ProbeClient, Process};
use tempfile::TempDir;

const SERVICE: &str = env!("CARGO_BIN_EXE_lpc-test-service");
const CLIENT: &str = env!("CARGO_BIN_EXE_lpc-test-client");

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A directory shared by all users, as `/tmp` is (mode 1777: anyone creates, nobody removes
/// what another created).
fn shared_tmp() -> TempDir {
    let dir = TempDir::new().unwrap();
    set_mode(dir.path(), 0o1777);
    dir
}

/// Runs `command` to its end (at most 20 s); its stdout, stderr and success.
fn run(command: &mut Command) -> (String, String, bool) {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command:?} still runs after 20 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let (mut out, mut err) = (String::new(), String::new());
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (out, err, status.success())
}

/// Starts the test service in runtime directory `dir`, which it must refuse: its error.
fn refused_by_the_service(dir: &Path) -> String {
    let (out, err, ok) = run(Command::new(SERVICE)
        .arg("probe")
        .env("LPC_RUNTIME_DIR", dir));
    assert!(
        !ok && !out.contains("ready"),
        "the service accepted {}: {out}{err}",
        dir.display()
    );
    err
}

/// Runs `program args` as `uid:gid`; its stdout, stderr and success.
fn run_as(uid: u32, gid: u32, program: &str, args: &[&str]) -> (String, String, bool) {
    run(lpc_tests::as_user(uid, gid, program).args(args))
}

#[test]
fn a_runtime_directory_that_could_be_planted_is_refused_and_never_changed() {
    let tmp = shared_tmp();

    // A symlink: never followed, even to a directory of our own; its target is left alone.
    let target = TempDir::new().unwrap();
    set_mode(target.path(), 0o755);
    let link = tmp.path().join("link");
    match lpc_tests::other_user() {
        // Planted by another user, as it would be in /tmp.
        Ok((uid, gid)) => {
            let target = target.path().to_str().unwrap();
            let link = link.to_str().unwrap();
            let (_, err, ok) = run_as(uid, gid, "ln", &["-s", target, link]);
            assert!(ok, "{err}");
        }
        Err(_) => std::os::unix::fs::symlink(target.path(), &link).unwrap(),
    }
    let err = refused_by_the_service(&link);
    assert!(
        err.contains("is a symbolic link")
            && err.contains("lpc never follows one for its runtime directory"),
        "{err}"
    );
    assert_eq!(mode(target.path()), 0o755);
    assert_eq!(std::fs::read_dir(target.path()).unwrap().count(), 0);

    // Ours, but others can write to it: refused, its mode left alone.
    let open = tmp.path().join("open");
    std::fs::create_dir(&open).unwrap();
    set_mode(&open, 0o777);
    let err = refused_by_the_service(&open);
    assert!(
        err.contains("can be written by other users (mode 0777)") && err.contains("chmod go-w"),
        "{err}"
    );
    assert_eq!(mode(&open), 0o777);
    assert_eq!(std::fs::read_dir(&open).unwrap().count(), 0);

    // In a parent others can write to without the sticky bit: they could swap it later.
    let loose = tmp.path().join("loose");
    std::fs::create_dir(&loose).unwrap();
    set_mode(&loose, 0o777);
    let err = refused_by_the_service(&loose.join("run"));
    assert!(err.contains("is not sticky"), "{err}");
    assert!(!loose.join("run").exists());

    // Another user's, created before ours (the default /tmp/lpc-UID, say).
    let Ok((uid, gid)) = lpc_tests::other_user() else {
        eprintln!("not root: a directory planted by another user is not tested");
        return;
    };
    let planted = tmp.path().join("planted");
    let (_, err, ok) = run_as(
        uid,
        gid,
        "mkdir",
        &["-m", "0755", planted.to_str().unwrap()],
    );
    assert!(ok, "{err}");
    let err = refused_by_the_service(&planted);
    assert!(
        err.contains(&format!("belongs to uid {uid}, not to this user (uid 0)"))
            && err.contains("another user may have planted it"),
        "{err}"
    );
    assert_eq!(mode(&planted), 0o755);
    assert_eq!(std::fs::metadata(&planted).unwrap().uid(), uid);

    // Still, a directory lpc creates in the shared one is fine, and ours alone.
    let fresh = tmp.path().join("fresh");
    let _service = Process::start(Path::new(SERVICE), &["probe"], &fresh, "ready");
    assert_eq!(mode(&fresh), 0o700);
    let probe = ProbeClient::connect_with("probe", &client_options(&fresh)).unwrap();
    assert_eq!(probe.add(2, 3).unwrap(), 5);
}

#[test]
fn a_service_of_another_user_answers_only_a_client_that_names_that_user() {
    let Ok((uid, gid)) = lpc_tests::other_user() else {
        eprintln!("not root: a service of another user is not tested");
        return;
    };
    // Another user got to the name first: its directory, its socket, its service (which even
    // admits us, to lure our calls).
    let tmp = shared_tmp();
    let dir = tmp.path().join("planted");
    let (uid_s, gid_s) = (format!("--reuid={uid}"), format!("--regid={gid}"));
    let _impostor = Process::start(
        Path::new("setpriv"),
        &[
            &uid_s,
            &gid_s,
            "--clear-groups",
            SERVICE,
            "probe",
            "--allow-uid",
            "0",
        ],
        &dir,
        "ready",
    );
    assert_eq!(std::fs::metadata(&dir).unwrap().uid(), uid);

    // By default a client accepts only a service of its own user: refused before a byte is
    // sent, both users named.
    let expected =
        format!("is served by a process of user {uid}, not of user 0 (this client's own user)");
    let err = ProbeClient::connect_with("probe", &client_options(&dir)).unwrap_err();
    assert!(
        matches!(&err, Error::Denied { service, reason } if service == "probe" && reason.contains(&expected)),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("ClientOptions::service_user")
            && text.contains("another user may have taken the name"),
        "{text}"
    );
    // Queries and listings check the same.
    let err = lpc::query("probe", &client_options(&dir)).unwrap_err();
    assert!(
        matches!(&err, Error::Denied { reason, .. } if reason.contains(&expected)),
        "{err:?}"
    );
    let listed = lpc::registry::list(&dir, Duration::from_secs(5)).unwrap();
    assert!(
        matches!(&listed[..], [l] if matches!(&l.state, lpc::registry::ListingState::Unresponsive(why) if why.contains(&expected))),
        "{listed:?}"
    );
    // A reconnecting client is refused the same way.
    let err =
        ProbeClient::connect_with("probe", &client_options(&dir).reconnect(true)).unwrap_err();
    assert!(matches!(&err, Error::Denied { .. }), "{err:?}");

    // Naming the service's user (a system service, say) connects, and calls work.
    let options = client_options(&dir).service_uid(uid);
    let probe = ProbeClient::connect_with("probe", &options).unwrap();
    assert_eq!(probe.add(20, 22).unwrap(), 42);
    let (_, caller_uid, _) = probe.whoami().unwrap();
    assert_eq!(caller_uid, 0);
    let info = lpc::query("probe", &options).unwrap();
    assert_eq!(info.user, uid.to_string());
    let listed =
        lpc::registry::list_served_by(&dir, Duration::from_secs(5), &lpc::UserId::from_uid(uid))
            .unwrap();
    assert!(
        matches!(&listed[..], [l] if matches!(&l.state, lpc::registry::ListingState::Live(_))),
        "{listed:?}"
    );
    // Naming yet another user refuses it again, with both named.
    let err = ProbeClient::connect_with("probe", &client_options(&dir).service_uid(4_242_424))
        .unwrap_err();
    assert!(
        matches!(&err, Error::Denied { reason, .. }
            if reason.contains(&format!("user {uid}, not of user 4242424 (the user this client expects)"))),
        "{err:?}"
    );
}

/// `unshare`'s arguments that run a program in a new PID namespace (with its own /proc), killed
/// with `unshare` (so that killing the test's process kills it too).
const NEW_PID_NAMESPACE: [&str; 4] = ["--pid", "--fork", "--mount-proc", "--kill-child"];

#[test]
fn a_service_in_another_pid_namespace_serves_clients_whose_pid_it_cannot_see() {
    lpc::testing::require_pid_namespaces();
    let dir = TempDir::new().unwrap();
    let mut args = NEW_PID_NAMESPACE.to_vec();
    args.extend([SERVICE, "probe"]);
    let mut service = Process::start(Path::new("unshare"), &args, dir.path(), "ready");
    let probe = ProbeClient::connect_with("probe", &client_options(dir.path())).unwrap();
    // Same user: admitted, and everything works.
    assert_eq!(probe.add(1, 2).unwrap(), 3);
    let big = vec![7u8; 100_000];
    assert_eq!(probe.echo(&big).unwrap(), big);
    // The service is pid 1 of its namespace; the kernel gives it no pid for us.
    assert_eq!(probe.pid().unwrap(), 1);
    let (pid, uid, _) = probe.whoami().unwrap();
    assert_eq!((pid, uid), (None, 0));

    // Asked from here, the service's pid is the kernel's (ours to use), not its claim of 1;
    // its clients' pids are unknown, and so are their process names.
    let info = lpc::query("probe", &client_options(dir.path())).unwrap();
    let pid = info
        .pid
        .expect("the service's namespace is inside ours: we see it");
    assert_ne!(pid, 1);
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_eq!(comm.trim(), "lpc-test-servic");
    assert_eq!(info.clients.len(), 1, "{:?}", info.clients);
    assert_eq!(info.clients[0].pid, None);
    assert_eq!(info.clients[0].process, "");
    assert_eq!(info.clients[0].user, "0");

    // A client that dies is still noticed (nothing waits for a pid).
    let mut client = Process::start(
        Path::new(CLIENT),
        &["probe", "wait-cancel"],
        dir.path(),
        "connected",
    );
    service.expect_line("waiting", Duration::from_secs(20));
    client.kill();
    service.expect_line("cancelled", Duration::from_secs(20));
}

#[test]
fn a_client_in_another_pid_namespace_calls_and_queries_a_service_outside() {
    lpc::testing::require_pid_namespaces();
    let dir = TempDir::new().unwrap();
    let service = Process::start(Path::new(SERVICE), &["probe"], dir.path(), "ready");
    let in_namespace = |command: &str| {
        let mut args = NEW_PID_NAMESPACE.to_vec();
        args.extend([CLIENT, "probe", command]);
        run(Command::new("unshare")
            .args(&args)
            .env("LPC_RUNTIME_DIR", dir.path()))
    };
    // The service sees the client (its namespace is inside the service's).
    let (out, err, ok) = in_namespace("whoami");
    assert!(ok, "{out}{err}");
    let fields: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(fields[0], "whoami", "{out}");
    assert_ne!(fields[1], "unknown", "{out}");
    assert_eq!(fields[2..], ["0", "0"], "{out}");
    // The client cannot see the service's pid: the kernel says 0, shown as unknown; the uid
    // check needs no pid.
    let (out, err, ok) = in_namespace("query");
    assert!(ok, "{out}{err}");
    assert!(out.starts_with("service unknown 0\n"), "{out}");
    assert!(out.ends_with("done\n"), "{out}");
    drop(service);
}

#[test]
fn a_query_shows_another_user_only_its_own_connections() {
    let Ok((uid, gid)) = lpc_tests::other_user() else {
        eprintln!("not root: queries from another user are not tested");
        return;
    };
    let dir = TempDir::new().unwrap();
    lpc_tests::let_others_through(dir.path());
    let service = Process::start(
        Path::new(SERVICE),
        &["probe", "--allow-uid", &uid.to_string()],
        dir.path(),
        "ready",
    );
    // The owner's client, and one of the other user's, which stays connected.
    let mine = ProbeClient::connect_with("probe", &client_options(dir.path())).unwrap();
    assert_eq!(mine.add(1, 1).unwrap(), 2);
    let (uid_s, gid_s) = (format!("--reuid={uid}"), format!("--regid={gid}"));
    let theirs = Process::start(
        Path::new("setpriv"),
        &[
            &uid_s,
            &gid_s,
            "--clear-groups",
            CLIENT,
            "probe",
            "--service-uid",
            "0",
        ],
        dir.path(),
        "connected",
    );

    // The other user sees its two connections (the one that stays, and the asking client's
    // own), never the owner's.
    let (out, err, ok) = run(lpc_tests::as_user(uid, gid, CLIENT)
        .args(["probe", "query", "--service-uid", "0"])
        .env("LPC_RUNTIME_DIR", dir.path()));
    assert!(ok, "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], format!("service {} 0", service.pid()), "{out}");
    assert_eq!(lines[1], "connections 2", "{out}");
    let clients: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("client "))
        .collect();
    assert_eq!(clients.len(), 2, "{out}");
    assert!(
        clients.iter().all(|l| l.ends_with(&format!(" {uid}"))),
        "{out}"
    );
    assert!(
        clients.contains(&format!("client {} {uid}", theirs.pid()).as_str()),
        "{out}"
    );
    assert!(
        !out.contains(&format!("client {} ", std::process::id())),
        "{out}"
    );

    // The owner sees every client (once the asking client's connection, now closed, is gone).
    let owner_query = || lpc::query("probe", &client_options(dir.path())).unwrap();
    assert!(lpc_tests::eventually(Duration::from_secs(10), || {
        owner_query().connections == 2
    }));
    let info = owner_query();
    let pids: Vec<Option<u32>> = info.clients.iter().map(|c| c.pid).collect();
    assert!(pids.contains(&Some(std::process::id())), "{pids:?}");
    assert!(pids.contains(&Some(theirs.pid())), "{pids:?}");
    // The statistics count every call, whoever asks (they name no process).
    let add = info.methods.iter().find(|m| m.name == "add").unwrap();
    assert!(add.calls >= 2, "{add:?}");
}
