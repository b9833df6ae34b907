//! What happens to `stream-reader` (the server) and `stream-writer` (the client) when things go
//! wrong: a peer killed (SIGKILL) while it waits, files another user put in the way, and a
//! client running as another user (peers killed mid-run: crates/load/tests/stream.rs). The survivor must say
//! what went wrong within its timeout, and the next run must work without cleaning up by hand.
//!
//! Test names start with what they exercise: `fault_` (a peer killed), `hostile_` (files and
//! users in the way); `scripts/reliability.sh` counts them by prefix.

use std::os::unix::net::UnixListener;

use ipc_testkit::other_user::{self, NOBODY};
use ipc_testkit::scenarios::{self, SocketPair, line};
use ipc_testkit::{Finished, Proc, Signal, temp_dir};
use stream::{CLIENT_UDS, SERVER_UDS};

const STREAM: SocketPair = SocketPair {
    reader: env!("CARGO_BIN_EXE_stream-reader"),
    writer: env!("CARGO_BIN_EXE_stream-writer"),
    name: "stream",
    scheme: "unix",
};

/// The reader is the server.
fn server(args: &[&str]) -> Proc {
    STREAM.reader(args)
}

/// The writer is the client.
fn client(args: &[&str]) -> Proc {
    STREAM.writer(args)
}

/// The blog's exchange happened: the client printed the server's reply, and the server (which
/// ends after the client) the client's message.
#[track_caller]
fn exchanged(client: Finished, server: Proc) {
    client.assert_success().assert_stdout(&line(SERVER_UDS));
    server
        .finish()
        .assert_success()
        .assert_stdout(&line(CLIENT_UDS));
}

/// The blog's exchange through a fresh pair on `url`: the next run works.
fn a_fresh_pair_works(url: &str) {
    let (read, url) = STREAM.listening(&[url]);
    exchanged(client(&[&url]).finish(), read);
}

#[test]
fn fault_server_killed_while_waiting_leaves_a_stale_socket_the_next_server_replaces() {
    let dir = temp_dir();
    let path = dir.path().join("s.sock");
    let url = STREAM.url(&path);
    let (killed, _) = STREAM.listening(&[&url]);
    killed.signal(Signal::SIGKILL);
    killed.finish();
    assert!(path.exists(), "SIGKILL leaves the socket file");

    let mut write = client(&[&url]);
    write.wait_for_stderr("waiting for a server");
    let mut read = server(&[&url]);
    read.wait_for_stderr("removed stale socket");
    exchanged(write.finish(), read);
}

#[test]
fn fault_client_killed_while_waiting_for_a_server_leaves_nothing() {
    let dir = temp_dir();
    scenarios::a_writer_killed_while_waiting_leaves_nothing(
        &STREAM,
        dir.path(),
        "waiting for a server",
        a_fresh_pair_works,
    );
}

#[test]
fn hostile_a_symlink_to_a_live_socket_is_not_followed() {
    let dir = temp_dir();
    scenarios::a_symlink_to_a_live_socket_is_not_followed(&STREAM, dir.path(), |path| {
        UnixListener::bind(path).unwrap()
    });
}

#[test]
fn hostile_another_users_socket_is_neither_used_nor_removed() {
    if !other_user::available() {
        return;
    }
    let dir = temp_dir();
    let path = dir.path().join("s.sock");
    let url = STREAM.url(&path);
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
    let (read, url) = STREAM.listening(&[&url, "--trust-uid", "nobody"]);
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
    let url = STREAM.url(&path);
    let mut command = other_user::as_nobody(STREAM.reader);
    command.args([&url, "--mode", "0666", "--timeout", "5"]);
    let mut read = Proc::spawn("stream-reader as nobody", &mut command);
    read.wait_for_stderr("listening on");
    // The file now looks like ours; the listener behind it still runs as nobody.
    std::os::unix::fs::lchown(&path, Some(0), Some(0)).unwrap();
    client(&[&url])
        .finish()
        .assert_failure(1, &format!("listening there runs as uid {NOBODY}"));
    exchanged(client(&[&url, "--trust-uid", "nobody"]).finish(), read);
}

#[test]
fn hostile_another_user_is_refused_by_default_and_admitted_with_the_mode() {
    if !other_user::available() {
        return;
    }
    let dir = temp_dir();
    other_user::open_dir(dir.path());
    let url = STREAM.url(&dir.path().join("s.sock"));
    let as_nobody = || {
        let mut command = other_user::as_nobody(STREAM.writer);
        command.args([&url, "--timeout", "5"]);
        ipc_testkit::run("stream-writer as nobody", &mut command, None)
    };

    let (read, _) = STREAM.listening(&[&url, "--timeout", "2"]);
    as_nobody()
        .assert_failure(1, "Permission denied")
        .assert_failure(1, "--mode 0660 for its group or --mode 0666 for everyone");
    read.finish().assert_failure(124, "waiting for a client");

    let (read, _) = STREAM.listening(&[&url, "--mode", "0666"]);
    exchanged(as_nobody(), read);
}

/// A server that takes the connection and closes it with our message unread: the client must
/// not call that a delivery (promise 1), over TCP (RST) and Unix sockets (ECONNRESET).
#[test]
fn contract_a_server_that_closes_without_reading_fails_the_client() {
    use std::io::Write;
    use std::net::TcpListener;

    let dir = temp_dir();
    let path = dir.path().join("s.sock");
    let unix = UnixListener::bind(&path).unwrap();
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp_url = format!("tcp://{}", tcp.local_addr().unwrap());
    let unix_url = STREAM.url(&path);
    for url in [unix_url, tcp_url] {
        let writer = client(&[&url, "--message", "nine byte"]);
        // Answer the greeting, then close once the client's message is there, unread.
        let mut conn: Box<dyn std::io::Write> = if url.starts_with("unix") {
            let (mut conn, _) = unix.accept().unwrap();
            conn.write_all(b"hi").unwrap();
            wait_readable(&conn);
            Box::new(conn)
        } else {
            let (mut conn, _) = tcp.accept().unwrap();
            conn.write_all(b"hi").unwrap();
            wait_readable(&conn);
            Box::new(conn)
        };
        conn.flush().unwrap();
        drop(conn);
        writer.finish().assert_failure(
            1,
            "closed the connection without reading all of our 9 bytes",
        );
    }
}

/// Waits (bounded) until `fd` has bytes to read.
fn wait_readable(fd: &impl std::os::fd::AsFd) {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
    assert_eq!(poll(&mut fds, PollTimeout::from(5000u16)).unwrap(), 1);
}

/// After our server served a client over TCP, its port is free at once for a server that binds
/// without SO_REUSEADDR (the blog's PHP server): the client, which ends first, keeps TIME_WAIT.
#[test]
fn contract_our_tcp_server_leaves_its_port_free_for_the_blogs_server() {
    use socket2::{Domain, Socket, Type};
    let (read, url) = STREAM.listening(&["tcp://127.0.0.1:0"]);
    let port = ipc_testkit::port_in(&url);
    client(&[&url])
        .finish()
        .assert_success()
        .assert_stdout(&line(stream::SERVER_IP));
    read.finish()
        .assert_success()
        .assert_stdout(&line(stream::CLIENT_IP));
    let blogs_server = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    blogs_server
        .bind(&addr.into())
        .unwrap_or_else(|err| panic!("bind {addr} without SO_REUSEADDR after our server: {err}"));
}

#[test]
fn contract_attack_bind_race_lets_nobody_into_a_0600_server_under_umask_000() {
    let dir = temp_dir();
    ipc_testkit::other_user::open_dir(dir.path());
    let path = dir.path().join("s.sock");
    let url = STREAM.url(&path);
    ipc_testkit::attack::bind_race_lets_nobody_in("stream", &path, || {
        let mut command = ipc_testkit::under_umask("000", STREAM.reader);
        command.args([url.as_str(), "--mode", "0600", "--timeout", "5"]);
        let mut read = Proc::spawn("stream-reader", &mut command);
        read.wait_for_stderr("listening on");
        exchanged(client(&[&url]).finish(), read);
    });
}

#[test]
fn contract_attack_connect_swap_sends_nobody_anything() {
    ipc_testkit::attack::connect_swap_sends_nobody_anything(|target| {
        let url = STREAM.url(target);
        client(&[&url, "--message", "ours", "--timeout", "0.05"])
            .finish()
            .status
            .code()
            .unwrap_or(-1)
    });
}
