//! What happens to `dgram-reader` and `dgram-writer` when things go wrong: a peer killed
//! (SIGKILL) while it waits, files another user put in the way, and a peer running as another
//! user (peers killed mid-run and readers that stop reading: crates/load/tests/dgram.rs). The survivor must say what went wrong within its timeout,
//! and the next run must work without anyone cleaning up by hand.
//!
//! Test names start with what they exercise: `fault_` (a peer killed), `hostile_` (files and
//! users in the way); `scripts/reliability.sh` counts them by prefix.

use std::os::unix::net::UnixDatagram;

use dgram::UDS_MESSAGE;
use ipc_testkit::other_user::{self, NOBODY};
use ipc_testkit::scenarios::{self, SocketPair, line};
use ipc_testkit::{Proc, Signal, attack, temp_dir};

const DGRAM: SocketPair = SocketPair {
    reader: env!("CARGO_BIN_EXE_dgram-reader"),
    writer: env!("CARGO_BIN_EXE_dgram-writer"),
    name: "dgram",
    scheme: "udg",
};

/// The blog's message goes through a fresh pair on `url`: the next run works.
fn a_fresh_pair_works(url: &str) {
    let (read, _) = DGRAM.listening(&[url]);
    DGRAM.writer(&[url]).finish().assert_success();
    read.finish()
        .assert_success()
        .assert_stdout(&line(UDS_MESSAGE));
}

#[test]
fn fault_reader_killed_while_waiting_leaves_a_stale_socket_the_next_reader_replaces() {
    let dir = temp_dir();
    let path = dir.path().join("s.sock");
    let url = DGRAM.url(&path);
    let (killed, _) = DGRAM.listening(&[&url]);
    killed.signal(Signal::SIGKILL);
    assert_eq!(killed.finish().status.code(), None, "killed by a signal");
    assert!(path.exists(), "SIGKILL leaves the socket file");

    // A writer now finds a socket nobody is bound to: it waits, it does not fail.
    let mut write = DGRAM.writer(&[&url]);
    write.wait_for_stderr("waiting for a reader");
    let mut read = DGRAM.reader(&[&url]);
    read.wait_for_stderr("removed stale socket");
    write.finish().assert_success();
    read.finish()
        .assert_success()
        .assert_stdout(&line(UDS_MESSAGE));
    assert!(!path.exists());
}

#[test]
fn fault_writer_killed_while_waiting_for_a_reader_leaves_nothing() {
    let dir = temp_dir();
    scenarios::a_writer_killed_while_waiting_leaves_nothing(
        &DGRAM,
        dir.path(),
        "waiting for a reader",
        a_fresh_pair_works,
    );
}

#[test]
fn hostile_a_symlink_to_a_live_socket_is_not_followed() {
    let dir = temp_dir();
    scenarios::a_symlink_to_a_live_socket_is_not_followed(&DGRAM, dir.path(), |path| {
        UnixDatagram::bind(path).unwrap()
    });
}

#[test]
fn hostile_another_users_socket_is_neither_used_nor_removed() {
    if !other_user::available() {
        return;
    }
    let dir = temp_dir();
    let path = dir.path().join("s.sock");
    let url = DGRAM.url(&path);
    // A live socket at our path, as if nobody had bound it there first.
    let squatter = UnixDatagram::bind(&path).unwrap();
    other_user::give_to_nobody(&path);
    DGRAM
        .writer(&[&url])
        .finish()
        .assert_failure(1, &format!("belongs to uid {NOBODY}"));
    DGRAM
        .writer(&[&url, "--trust-uid", "nobody"])
        .finish()
        .assert_success();
    let mut got = [0; 64];
    let n = squatter.recv(&mut got).unwrap();
    assert_eq!(&got[..n], UDS_MESSAGE.as_bytes(), "trusted, it is used");

    // Stale now: still not ours to remove unless trusted.
    drop(squatter);
    DGRAM
        .reader(&[&url])
        .finish()
        .assert_failure(1, "refusing to use it and leaving it untouched");
    assert!(path.exists());
    let mut read = DGRAM.reader(&[&url, "--trust-uid", &NOBODY.to_string()]);
    read.wait_for_stderr("removed stale socket");
    DGRAM.writer(&[&url]).finish().assert_success();
    read.finish()
        .assert_success()
        .assert_stdout(&line(UDS_MESSAGE));
}

#[test]
fn hostile_another_user_is_refused_by_default_and_admitted_with_the_mode() {
    if !other_user::available() {
        return;
    }
    let dir = temp_dir();
    other_user::open_dir(dir.path());
    let url = DGRAM.url(&dir.path().join("s.sock"));
    let as_nobody = || {
        let mut command = other_user::as_nobody(DGRAM.writer);
        command.args([&url, "--timeout", "5"]);
        ipc_testkit::run("dgram-writer as nobody", &mut command, None)
    };

    let (read, _) = DGRAM.listening(&[&url, "--timeout", "2"]);
    as_nobody()
        .assert_failure(1, "Permission denied")
        .assert_failure(1, "--mode 0660 for its group or --mode 0666 for everyone");
    read.finish().assert_failure(124, "waiting for a datagram");

    let (read, _) = DGRAM.listening(&[&url, "--mode", "0666"]);
    as_nobody().assert_success();
    read.finish()
        .assert_success()
        .assert_stdout(&line(UDS_MESSAGE));
}

#[test]
fn contract_attack_bind_race_lets_nobody_into_a_0600_reader_under_umask_000() {
    let dir = temp_dir();
    ipc_testkit::other_user::open_dir(dir.path());
    let path = dir.path().join("s.sock");
    let url = DGRAM.url(&path);
    attack::bind_race_lets_nobody_in("dgram", &path, || {
        let mut command = ipc_testkit::under_umask("000", DGRAM.reader);
        command.args([url.as_str(), "--mode", "0600", "--timeout", "5"]);
        let mut read = Proc::spawn("dgram-reader", &mut command);
        read.wait_for_stderr("listening on");
        DGRAM
            .writer(&[&url, "--message", "ours"])
            .finish()
            .assert_success();
        read.finish().assert_success().assert_stdout(b"ours\n");
    });
}

#[test]
fn contract_attack_connect_swap_sends_nobody_anything() {
    attack::connect_swap_sends_nobody_anything(|target| {
        let url = DGRAM.url(target);
        DGRAM
            .writer(&[&url, "--message", "ours", "--timeout", "0.05"])
            .finish()
            .status
            .code()
            .unwrap_or(-1)
    });
}
