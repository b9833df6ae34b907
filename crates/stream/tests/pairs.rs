//! `stream-reader` and `stream-writer` run as real processes against each other (and against
//! sockets the test makes itself to play a PHP peer or a fault), each test with its own
//! directory or port.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;

use ipc_testkit::{Finished, Proc, STEP, Signal, bounded, ours, port_in, temp_dir, under_umask};
use stream::{CLIENT_IP, CLIENT_UDS, SERVER_IP, SERVER_UDS};

const READER: &str = env!("CARGO_BIN_EXE_stream-reader");
const WRITER: &str = env!("CARGO_BIN_EXE_stream-writer");

/// A command for `bin` with `args`, waiting at most 5 s unless `args` say otherwise.
fn command(bin: &str, args: &[&str]) -> Command {
    bounded(ours(bin), args)
}

fn spawn_reader(args: &[&str]) -> Proc {
    Proc::spawn("stream-reader", &mut command(READER, args))
}

fn spawn_writer(args: &[&str]) -> Proc {
    Proc::spawn("stream-writer", &mut command(WRITER, args))
}

/// Starts a server and waits until it listens; returns it with the URL it really listens on.
fn listening_reader(args: &[&str]) -> (Proc, String) {
    let mut reader = spawn_reader(args);
    let url = reader.listening_url();
    (reader, url)
}

fn write(args: &[&str]) -> Finished {
    spawn_writer(args).finish()
}

fn unix(path: &Path) -> String {
    format!("unix://{}", path.display())
}

/// A port nobody listens on now: bound by us for a moment, then released.
fn free_tcp_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn line(bytes: &[u8]) -> Vec<u8> {
    [bytes, b"\n"].concat()
}

/// Both sides succeeded: the client (finished first) printed the server's `server`, then the
/// server printed the client's `client`.
#[track_caller]
fn exchanged(writer: Finished, reader: Proc, server: &[u8], client: &[u8]) {
    writer.assert_success().assert_stdout(&line(server));
    reader
        .finish()
        .assert_success()
        .assert_stdout(&line(client));
}

/// Runs one default exchange on a listening server and checks both sides' stdout.
fn check_default_exchange(reader: Proc, url: &str, server: &str, client: &str) {
    exchanged(write(&[url]), reader, server.as_bytes(), client.as_bytes());
}

/// A client started before any server on `url` says it waits, and the exchange happens once the
/// server listens.
fn client_first_waits_for_the_server(url: &str, server: &str, client: &str) {
    let mut writer = spawn_writer(&[url]);
    writer.wait_for_stderr(&format!("waiting for a server on {url}"));
    let (reader, _) = listening_reader(&[url]);
    exchanged(
        writer.finish(),
        reader,
        server.as_bytes(),
        client.as_bytes(),
    );
}

#[test]
fn uds_server_first_exchanges_the_blog_messages() {
    let dir = temp_dir();
    let path = dir.path().join("s.sock");
    let (reader, url) = listening_reader(&[&unix(&path)]);
    assert_eq!(url, unix(&path));
    check_default_exchange(reader, &url, SERVER_UDS, CLIENT_UDS);
    assert!(!path.exists(), "the server removes its socket file");
}

#[test]
fn uds_client_first_waits_for_the_server() {
    let dir = temp_dir();
    client_first_waits_for_the_server(&unix(&dir.path().join("s.sock")), SERVER_UDS, CLIENT_UDS);
}

#[test]
fn tcp_server_first_exchanges_the_blog_messages() {
    let (reader, url) = listening_reader(&["tcp://127.0.0.1:0"]);
    assert_ne!(port_in(&url), 0, "the real port is announced");
    check_default_exchange(reader, &url, SERVER_IP, CLIENT_IP);
}

#[test]
fn tcp_client_first_waits_for_the_server() {
    client_first_waits_for_the_server(
        &format!("tcp://127.0.0.1:{}", free_tcp_port()),
        SERVER_IP,
        CLIENT_IP,
    );
}

/// Swaps `to_server` and `to_client` through files, over a server started on `reader_url`.
fn swap_files(reader_url: &str, to_server: &[u8], to_client: &[u8]) {
    let dir = temp_dir();
    let (greeting, message) = (dir.path().join("greeting"), dir.path().join("message"));
    std::fs::write(&greeting, to_client).unwrap();
    std::fs::write(&message, to_server).unwrap();
    let (reader, url) =
        listening_reader(&[reader_url, "--message-file", greeting.to_str().unwrap()]);
    let writer = write(&[&url, "--quiet", "--message-file", message.to_str().unwrap()]);
    exchanged(writer, reader, to_client, to_server);
}

#[test]
fn binary_payloads_cross_unchanged_both_ways() {
    let dir = temp_dir();
    let (a, b) = (
        &b"\0bin\xff\xfe\0ary\x80\n\0"[..],
        &b"\xc3\x28\0\0\r\n\xff"[..],
    );
    swap_files(&unix(&dir.path().join("s.sock")), a, b);
    swap_files("tcp://127.0.0.1:0", a, b);
}

#[test]
fn eight_mebibytes_cross_both_ways_at_once() {
    let dir = temp_dir();
    let to_server: Vec<u8> = (0..8 << 20).map(|i: u32| (i % 251) as u8).collect();
    let to_client: Vec<u8> = (0..8 << 20).map(|i: u32| (i % 253) as u8).collect();
    swap_files(&unix(&dir.path().join("s.sock")), &to_server, &to_client);
    swap_files("tcp://127.0.0.1:0", &to_server, &to_client);
}

#[test]
fn empty_messages_are_empty_lines() {
    let dir = temp_dir();
    swap_files(&unix(&dir.path().join("s.sock")), b"", b"");
    swap_files("tcp://127.0.0.1:0", b"", b"");
}

/// A client written as the blog's PHP client is: one write, ONE read of at most 1024 bytes, no
/// shutdown, then close. It gets the server's greeting only if the server sends it without
/// waiting for the client's end of stream.
fn php_like_client(mut stream: impl Read + Write, message: &[u8]) -> Vec<u8> {
    stream.write_all(message).unwrap();
    let mut buf = [0; 1024];
    let n = stream
        .read(&mut buf)
        .expect("the greeting within the read timeout");
    buf[..n].to_vec()
}

#[test]
fn the_server_greets_a_client_that_reads_once_and_closes() {
    let dir = temp_dir();
    let path = dir.path().join("s.sock");
    let (reader, _) = listening_reader(&[&unix(&path)]);
    let stream = UnixStream::connect(&path).unwrap();
    stream.set_read_timeout(Some(STEP)).unwrap();
    assert_eq!(
        php_like_client(stream, CLIENT_UDS.as_bytes()),
        SERVER_UDS.as_bytes()
    );
    reader
        .finish()
        .assert_success()
        .assert_stdout(&line(CLIENT_UDS.as_bytes()));

    let (reader, url) = listening_reader(&["tcp://127.0.0.1:0"]);
    let stream = TcpStream::connect(url.trim_start_matches("tcp://")).unwrap();
    stream.set_read_timeout(Some(STEP)).unwrap();
    assert_eq!(
        php_like_client(stream, CLIENT_IP.as_bytes()),
        SERVER_IP.as_bytes()
    );
    reader
        .finish()
        .assert_success()
        .assert_stdout(&line(CLIENT_IP.as_bytes()));
}

#[test]
fn a_stale_socket_is_replaced() {
    let dir = temp_dir();
    let path = dir.path().join("s.sock");
    let url = unix(&path);
    // A server killed outright cannot remove its socket file.
    let (killed, _) = listening_reader(&[&url]);
    killed.signal(Signal::SIGKILL);
    killed.finish();
    assert!(path.exists());

    let (mut reader, _) = listening_reader(&[&url]);
    reader.wait_for_stderr(&format!("removed stale socket {}", path.display()));
    check_default_exchange(reader, &url, SERVER_UDS, CLIENT_UDS);
}

#[test]
fn a_live_socket_is_refused_and_kept() {
    let dir = temp_dir();
    let path = dir.path().join("s.sock");
    let url = unix(&path);
    let (first, _) = listening_reader(&[&url]);
    spawn_reader(&[&url]).finish().assert_failure(
        1,
        &format!(
            "error: bind {}: address in use (a live listener is there)",
            path.display()
        ),
    );
    assert!(path.exists());
    check_default_exchange(first, &url, SERVER_UDS, CLIENT_UDS);
}

#[test]
fn other_files_at_the_path_are_refused_untouched() {
    let dir = temp_dir();
    let file = dir.path().join("file");
    std::fs::write(&file, b"precious").unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&file, &link).unwrap();
    let subdir = dir.path().join("dir");
    std::fs::create_dir(&subdir).unwrap();

    for (path, kind) in [
        (&file, "regular file"),
        (&link, "symlink"),
        (&subdir, "directory"),
    ] {
        spawn_reader(&[&unix(path)])
            .finish()
            .assert_failure(1, &format!("holds a {kind}, not a socket"));
    }
    assert_eq!(std::fs::read(&file).unwrap(), b"precious");
    assert_eq!(std::fs::read_link(&link).unwrap(), file);
    assert!(subdir.is_dir());
}

#[test]
fn waits_time_out_naming_what_they_waited_for() {
    let dir = temp_dir();
    let path = dir.path().join("s.sock");
    let url = unix(&path);
    spawn_reader(&[&url, "--timeout", "0.5"])
        .finish()
        .assert_failure(
            124,
            &format!("error: timed out after 0.5s waiting for a client on {url}"),
        );
    write(&[&url, "--timeout", "0.5"]).assert_failure(
        124,
        &format!("error: timed out after 0.5s waiting for a server on {url}"),
    );
    let url = format!("tcp://127.0.0.1:{}", free_tcp_port());
    write(&[&url, "--timeout", "0.5"]).assert_failure(
        124,
        &format!("error: timed out after 0.5s waiting for a server on {url}"),
    );

    // A client that connects but never ends its message.
    let (reader, url) = listening_reader(&[&unix(&path), "--timeout", "0.5"]);
    let _silent = UnixStream::connect(&path).unwrap();
    reader.finish().assert_failure(
        124,
        &format!(
            "error: timed out after 0.5s waiting for the client on {url} to end its message \
             (end of stream)"
        ),
    );
}

#[test]
fn a_wrong_scheme_is_a_usage_error_naming_the_schemes() {
    for bin in [READER, WRITER] {
        Proc::spawn(bin, &mut command(bin, &["udp://127.0.0.1:1"]))
            .finish()
            .assert_failure(2, "unix://PATH")
            .assert_failure(2, "tcp://HOST:PORT");
    }
}

#[test]
fn sigterm_removes_the_socket_file() {
    let dir = temp_dir();
    let path = dir.path().join("s.sock");
    let (reader, _) = listening_reader(&[&unix(&path)]);
    assert!(path.exists());
    reader.signal(Signal::SIGTERM);
    reader
        .finish()
        .assert_failure(143, "interrupted by SIGTERM");
    assert!(!path.exists());
}

#[test]
fn the_mode_is_exact_whatever_the_umask() {
    let dir = temp_dir();
    let path = dir.path().join("s.sock");
    let url = unix(&path);
    for (umask, mode_args, expected) in [
        ("077", &["--mode", "0644"][..], 0o644),
        ("000", &[][..], 0o600),
    ] {
        let mut reader_command = under_umask(umask, READER);
        reader_command
            .args(["--timeout", "5", &url])
            .args(mode_args);
        let mut reader = Proc::spawn("stream-reader under sh", &mut reader_command);
        reader.wait_for_stderr("listening on");
        let mode = path.symlink_metadata().unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, expected, "umask {umask}: {mode:o}");
        check_default_exchange(reader, &url, SERVER_UDS, CLIENT_UDS);
    }
}

#[test]
fn each_of_several_clients_gets_its_message_printed() {
    let (reader, url) = listening_reader(&["tcp://127.0.0.1:0", "--connections", "3"]);
    let writers: Vec<Proc> = ["one", "two", "three"]
        .into_iter()
        .map(|message| spawn_writer(&[&url, "--message", message]))
        .collect();
    for writer in writers {
        writer
            .finish()
            .assert_success()
            .assert_stdout(&line(SERVER_IP.as_bytes()));
    }
    let finished = reader.finish();
    finished.assert_success();
    let mut lines: Vec<&[u8]> = finished.stdout.split(|&b| b == b'\n').collect();
    lines.sort();
    assert_eq!(lines, [&b""[..], b"one", b"three", b"two"]);
}

#[test]
fn a_server_killed_mid_stream_fails_the_client_and_the_next_run_works() {
    let dir = temp_dir();
    let path = dir.path().join("s.sock");
    let url = unix(&path);
    let big = dir.path().join("big");
    std::fs::write(&big, vec![b'b'; 32 << 20]).unwrap();

    // A stopped server never reads: the client fills the socket buffers and waits mid-message.
    let (server, _) = listening_reader(&[&url]);
    server.signal(Signal::SIGSTOP);
    let mut writer = spawn_writer(&[&url, "--message-file", big.to_str().unwrap()]);
    writer.wait_for_stderr("connected to");
    server.signal(Signal::SIGKILL);
    writer
        .finish()
        .assert_failure(1, &format!("the server on {url}: the peer went away"))
        .assert_failure(1, "before taking all of our message")
        .assert_stdout(b"");
    server.finish();

    // The killed server left its socket file behind; the next one replaces it.
    assert!(path.exists());
    let (reader, _) = listening_reader(&[&url]);
    check_default_exchange(reader, &url, SERVER_UDS, CLIENT_UDS);
}

#[test]
fn a_client_gone_mid_stream_fails_the_server_and_the_next_run_works() {
    let dir = temp_dir();
    let path = dir.path().join("s.sock");
    let url = unix(&path);
    let big = dir.path().join("big");
    std::fs::write(&big, vec![b'g'; 32 << 20]).unwrap();

    let (server, _) = listening_reader(&[&url, "--message-file", big.to_str().unwrap()]);
    let mut client = UnixStream::connect(&path).unwrap();
    client.set_read_timeout(Some(STEP)).unwrap();
    client.write_all(CLIENT_UDS.as_bytes()).unwrap();
    // One byte of the greeting proves the server is sending; then the client process "dies":
    // its socket closes with 32 MiB unread.
    client.read_exact(&mut [0]).unwrap();
    drop(client);
    server
        .finish()
        .assert_failure(1, &format!("the client on {url}: the peer went away"))
        .assert_failure(1, "before taking all of our message")
        .assert_stdout(b"");
    assert!(
        !path.exists(),
        "a failing server still removes its socket file"
    );

    let (reader, _) = listening_reader(&[&url]);
    check_default_exchange(reader, &url, SERVER_UDS, CLIENT_UDS);
}
