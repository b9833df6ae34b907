//! What happens to `stream-reader` (the server) and `stream-writer` (the client) when things go
//! wrong: a peer killed (SIGKILL) at each stage of a load run, over Unix sockets and TCP, files
//! another user put in the way, and a client running as another user. The survivor must say
//! what went wrong within its timeout, and the next run must work without cleaning up by hand.
//!
//! Test names start with what they exercise: `fault_` (a peer killed), `hostile_` (files and
//! users in the way); `scripts/reliability.sh` counts them by prefix.

use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::Command;

use ipc_testkit::other_user::{self, NOBODY};
use ipc_testkit::{Proc, Signal, temp_dir};
use stream::{CLIENT_UDS, SERVER_UDS};

const SERVER: &str = env!("CARGO_BIN_EXE_stream-reader");
const CLIENT: &str = env!("CARGO_BIN_EXE_stream-writer");

/// Messages in a run that is killed long before its end.
const ENDLESS: &str = "10000000";

/// `program ARGS`, waiting at most 5 s unless `args` say otherwise, without the caller's
/// `IPC_*` settings.
fn command(program: &str, args: &[&str]) -> Command {
    ipc_testkit::bounded(ipc_testkit::ours(program), args)
}

fn server(args: &[&str]) -> Proc {
    Proc::spawn("stream-reader", &mut command(SERVER, args))
}

fn client(args: &[&str]) -> Proc {
    Proc::spawn("stream-writer", &mut command(CLIENT, args))
}

/// A server that listens; returns it with the URL it really listens on.
fn listening(args: &[&str]) -> (Proc, String) {
    let mut proc = server(args);
    let url = proc.listening_url();
    (proc, url)
}

fn unix(path: &Path) -> String {
    format!("unix://{}", path.display())
}

fn line(text: &str) -> Vec<u8> {
    format!("{text}\n").into_bytes()
}

/// The blog's exchange through a fresh pair on `url`: the next run works.
fn a_fresh_pair_works(url: &str) {
    let (read, url) = listening(&[url]);
    client(&[&url])
        .finish()
        .assert_success()
        .assert_stdout(&line(SERVER_UDS));
    read.finish()
        .assert_success()
        .assert_stdout(&line(CLIENT_UDS));
}

#[test]
fn fault_server_killed_while_waiting_leaves_a_stale_socket_the_next_server_replaces() {
    let dir = temp_dir();
    let path = dir.path().join("s.sock");
    let url = unix(&path);
    let (killed, _) = listening(&[&url]);
    killed.signal(Signal::SIGKILL);
    killed.finish();
    assert!(path.exists(), "SIGKILL leaves the socket file");

    let mut write = client(&[&url]);
    write.wait_for_stderr("waiting for a server");
    let mut read = server(&[&url]);
    read.wait_for_stderr("removed stale socket");
    write
        .finish()
        .assert_success()
        .assert_stdout(&line(SERVER_UDS));
    read.finish()
        .assert_success()
        .assert_stdout(&line(CLIENT_UDS));
}

#[test]
fn fault_client_killed_mid_stream_the_server_reports_the_cut_stream() {
    let dir = temp_dir();
    for url in [unix(&dir.path().join("s.sock")), "tcp://127.0.0.1:0".into()] {
        let (mut read, url) = listening(&[&url, "--count", ENDLESS]);
        let write = client(&[&url, "--count", ENDLESS]);
        read.wait_for_stderr("first message arrived");
        write.signal(Signal::SIGKILL);
        write.finish();
        let read = read.finish();
        read.assert_failure(1, "lost, duplicated, reordered or cut messages");
        let summary = String::from_utf8_lossy(&read.stdout);
        assert!(
            summary.starts_with("received ") && !summary.contains(" 0 lost"),
            "{read:?}"
        );
        if url.starts_with("unix://") {
            a_fresh_pair_works(&url);
        }
    }
}

#[test]
fn fault_server_killed_mid_stream_the_client_says_the_server_went_away() {
    let dir = temp_dir();
    for url in [unix(&dir.path().join("s.sock")), "tcp://127.0.0.1:0".into()] {
        let (mut read, url) = listening(&[&url, "--count", ENDLESS]);
        let write = client(&[&url, "--count", ENDLESS]);
        read.wait_for_stderr("first message arrived");
        read.signal(Signal::SIGKILL);
        read.finish();
        write
            .finish()
            .assert_failure(1, &format!("the server on {url}: the peer went away"));
        if url.starts_with("unix://") {
            a_fresh_pair_works(&url);
        }
    }
}

#[test]
fn fault_client_killed_while_waiting_for_a_server_leaves_nothing() {
    let dir = temp_dir();
    let url = unix(&dir.path().join("s.sock"));
    let mut write = client(&[&url]);
    write.wait_for_stderr("waiting for a server");
    write.signal(Signal::SIGKILL);
    write.finish();
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    a_fresh_pair_works(&url);
}

#[test]
fn hostile_a_symlink_to_a_live_socket_is_not_followed() {
    let dir = temp_dir();
    let real = dir.path().join("real.sock");
    let link = dir.path().join("link.sock");
    let _listener = UnixListener::bind(&real).unwrap();
    std::os::unix::fs::symlink(&real, &link).unwrap();
    client(&[&unix(&link)])
        .finish()
        .assert_failure(1, "the path is a symlink; refusing to follow it");
    server(&[&unix(&link)])
        .finish()
        .assert_failure(1, "holds a symlink, not a socket");
    assert!(link.symlink_metadata().unwrap().file_type().is_symlink());
}

#[test]
fn hostile_another_users_socket_is_neither_used_nor_removed() {
    if !other_user::available() {
        return;
    }
    let dir = temp_dir();
    let path = dir.path().join("s.sock");
    let url = unix(&path);
    // A listener at our path, as if nobody had bound it there first.
    let squatter = UnixListener::bind(&path).unwrap();
    other_user::give_to_nobody(&path);
    client(&[&url])
        .finish()
        .assert_failure(1, &format!("belongs to uid {NOBODY}"));

    drop(squatter);
    server(&[&url])
        .finish()
        .assert_failure(1, "refusing to use it and leaving it untouched");
    assert!(path.exists());
    let (read, url) = listening(&[&url, "--trust-uid", "nobody"]);
    client(&[&url]).finish().assert_success();
    read.finish()
        .assert_success()
        .assert_stdout(&line(CLIENT_UDS));
}

#[test]
fn hostile_a_server_running_as_another_user_is_refused_even_behind_a_trusted_file() {
    if !other_user::available() {
        return;
    }
    let dir = temp_dir();
    let theirs = other_user::nobodys_dir(dir.path());
    let path = theirs.join("s.sock");
    let url = unix(&path);
    let mut command = other_user::as_nobody(SERVER);
    command.args([&url, "--mode", "0666", "--timeout", "5"]);
    let mut read = Proc::spawn("stream-reader as nobody", &mut command);
    read.wait_for_stderr("listening on");
    // The file now looks like ours; the listener behind it still runs as nobody.
    std::os::unix::fs::lchown(&path, Some(0), Some(0)).unwrap();
    client(&[&url])
        .finish()
        .assert_failure(1, &format!("listening there runs as uid {NOBODY}"));
    client(&[&url, "--trust-uid", "nobody"])
        .finish()
        .assert_success()
        .assert_stdout(&line(SERVER_UDS));
    read.finish()
        .assert_success()
        .assert_stdout(&line(CLIENT_UDS));
}

#[test]
fn hostile_another_user_is_refused_by_default_and_admitted_with_the_mode() {
    if !other_user::available() {
        return;
    }
    let dir = temp_dir();
    other_user::open_dir(dir.path());
    let url = unix(&dir.path().join("s.sock"));
    let as_nobody = || {
        let mut command = other_user::as_nobody(CLIENT);
        command.args([&url, "--timeout", "5"]);
        ipc_testkit::run("stream-writer as nobody", &mut command, None)
    };

    let (read, _) = listening(&[&url, "--timeout", "2"]);
    as_nobody().assert_failure(1, "Permission denied");
    read.finish().assert_failure(124, "waiting for a client");

    let (read, _) = listening(&[&url, "--mode", "0666"]);
    as_nobody()
        .assert_success()
        .assert_stdout(&line(SERVER_UDS));
    read.finish()
        .assert_success()
        .assert_stdout(&line(CLIENT_UDS));
}
