//! `dgram-reader` and `dgram-writer` run as real processes against each other (and against
//! sockets the test makes itself to play a peer or a fault), each test with its own directory
//! or port.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use dgram::{IP_MESSAGE, UDS_MESSAGE};
use ipc_testkit::{Finished, Proc, Signal, bounded, ours, port_in, temp_dir, under_umask};

const READER: &str = env!("CARGO_BIN_EXE_dgram-reader");
const WRITER: &str = env!("CARGO_BIN_EXE_dgram-writer");

/// A command for `bin` with `args`, waiting at most 5 s unless `args` say otherwise.
fn command(bin: &str, args: &[&str]) -> Command {
    bounded(ours(bin), args)
}

fn spawn_reader(args: &[&str]) -> Proc {
    Proc::spawn("dgram-reader", &mut command(READER, args))
}

fn spawn_writer(args: &[&str]) -> Proc {
    Proc::spawn("dgram-writer", &mut command(WRITER, args))
}

/// Starts a reader and waits until it listens; returns it with the URL it really listens on.
fn listening_reader(args: &[&str]) -> (Proc, String) {
    let mut reader = spawn_reader(args);
    let url = reader.listening_url();
    (reader, url)
}

fn write(args: &[&str]) -> Finished {
    spawn_writer(args).finish()
}

fn udg(path: &Path) -> String {
    format!("udg://{}", path.display())
}

/// A port nobody listens on now: bound by us for a moment, then released.
fn free_udp_port() -> u16 {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap().port()
}

fn line(bytes: &[u8]) -> Vec<u8> {
    [bytes, b"\n"].concat()
}

/// The reader succeeded and printed exactly `message` and a newline.
#[track_caller]
fn received(reader: Proc, message: &[u8]) {
    reader
        .finish()
        .assert_success()
        .assert_stdout(&line(message));
}

/// A writer started before any reader on `url` says it waits, then delivers `message` (printing
/// nothing itself) once the reader listens.
fn writer_first_waits_for_the_reader(url: &str, message: &str) {
    let mut writer = spawn_writer(&[url]);
    writer.wait_for_stderr(&format!("waiting for a reader on {url}"));
    let (reader, _) = listening_reader(&[url]);
    writer.finish().assert_success().assert_stdout(b"");
    received(reader, message.as_bytes());
}

#[test]
fn uds_reader_first_receives_the_blog_message() {
    let dir = temp_dir();
    let path = dir.path().join("s.sock");
    let (reader, url) = listening_reader(&[&udg(&path)]);
    assert_eq!(url, udg(&path));
    write(&[&url]).assert_success().assert_stdout(b"");
    received(reader, UDS_MESSAGE.as_bytes());
    assert!(!path.exists(), "the reader removes its socket file");
}

#[test]
fn uds_writer_first_waits_for_the_reader() {
    let dir = temp_dir();
    writer_first_waits_for_the_reader(&udg(&dir.path().join("s.sock")), UDS_MESSAGE);
}

#[test]
fn udp_reader_first_receives_the_blog_message() {
    let (reader, url) = listening_reader(&["udp://127.0.0.1:0"]);
    assert_ne!(port_in(&url), 0, "the real port is announced");
    write(&[&url]).assert_success().assert_stdout(b"");
    received(reader, IP_MESSAGE.as_bytes());
}

#[test]
fn udp_writer_first_resends_until_the_reader_is_there() {
    writer_first_waits_for_the_reader(&format!("udp://127.0.0.1:{}", free_udp_port()), IP_MESSAGE);
}

/// Sends `payload` from a file through a reader on `url` and checks it arrives whole.
fn round_trip_file(reader_url: &str, payload: &[u8]) {
    let dir = temp_dir();
    let file = dir.path().join("payload");
    std::fs::write(&file, payload).unwrap();
    let (reader, url) = listening_reader(&[reader_url]);
    write(&[&url, "--quiet", "--message-file", file.to_str().unwrap()]).assert_success();
    received(reader, payload);
}

const BINARY: &[u8] = b"\0bin\xff\xfe\0ary\x80\n\0";

#[test]
fn binary_payloads_cross_unchanged() {
    let dir = temp_dir();
    round_trip_file(&udg(&dir.path().join("s.sock")), BINARY);
    round_trip_file("udp://127.0.0.1:0", BINARY);
}

#[test]
fn datagrams_near_the_limit_arrive_whole() {
    let dir = temp_dir();
    let big: Vec<u8> = (0..200 * 1024).map(|i: u32| (i % 251) as u8).collect();
    round_trip_file(&udg(&dir.path().join("s.sock")), &big);
    round_trip_file("udp://127.0.0.1:0", &big[..65_000]);
}

#[test]
fn an_empty_message_is_an_empty_datagram() {
    let dir = temp_dir();
    for reader_url in [udg(&dir.path().join("s.sock")), "udp://127.0.0.1:0".into()] {
        let (reader, url) = listening_reader(&[&reader_url]);
        write(&[&url, "--message", ""]).assert_success();
        reader.finish().assert_success().assert_stdout(b"\n");
    }
}

#[test]
fn a_datagram_over_the_limit_is_refused_naming_the_limit() {
    let dir = temp_dir();
    let file = dir.path().join("payload");

    std::fs::write(&file, vec![b'u'; 65_508]).unwrap();
    let (_reader, url) = listening_reader(&["udp://127.0.0.1:0"]);
    // Refused while reading the message, before anything is sent.
    write(&[&url, "--message-file", file.to_str().unwrap()]).assert_failure(
        1,
        "the message is over 65507 bytes, the most this can send (a UDP datagram over IPv4 \
         carries at most 65507 bytes)",
    );

    // Over the kernel's ceiling for one Unix datagram, whatever the buffers.
    std::fs::write(&file, vec![b'x'; dgram::UNIX_KERNEL_MAX + 1]).unwrap();
    let url = udg(&dir.path().join("s.sock"));
    let (_reader, _) = listening_reader(&[&url]);
    write(&[&url, "--message-file", file.to_str().unwrap()])
        .assert_failure(1, "the most this can send");
}

#[test]
fn a_stale_socket_is_replaced() {
    let dir = temp_dir();
    let path = dir.path().join("s.sock");
    let url = udg(&path);
    // A reader killed outright cannot remove its socket file.
    let (killed, _) = listening_reader(&[&url]);
    killed.signal(Signal::SIGKILL);
    killed.finish();
    assert!(path.exists());

    let (mut reader, _) = listening_reader(&[&url]);
    reader.wait_for_stderr(&format!("removed stale socket {}", path.display()));
    write(&[&url]).assert_success();
    received(reader, UDS_MESSAGE.as_bytes());
}

#[test]
fn a_live_socket_is_refused_and_kept() {
    let dir = temp_dir();
    let path = dir.path().join("s.sock");
    let url = udg(&path);
    let (first, _) = listening_reader(&[&url]);
    spawn_reader(&[&url]).finish().assert_failure(
        1,
        &format!(
            "error: bind {}: address in use (a live listener is there)",
            path.display()
        ),
    );
    assert!(path.exists());
    write(&[&url]).assert_success();
    received(first, UDS_MESSAGE.as_bytes());
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
        spawn_reader(&[&udg(path)])
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
    let url = udg(&dir.path().join("s.sock"));
    spawn_reader(&[&url, "--timeout", "0.5"])
        .finish()
        .assert_failure(
            124,
            &format!("error: timed out after 0.5s waiting for a datagram on {url}"),
        );
    write(&[&url, "--timeout", "0.5"]).assert_failure(
        124,
        &format!("error: timed out after 0.5s waiting for a reader on {url}"),
    );
    let url = format!("udp://127.0.0.1:{}", free_udp_port());
    write(&[&url, "--timeout", "0.5"]).assert_failure(
        124,
        &format!("error: timed out after 0.5s waiting for a reader on {url}"),
    );
}

#[test]
fn a_wrong_scheme_is_a_usage_error_naming_the_schemes() {
    for bin in [READER, WRITER] {
        Proc::spawn(bin, &mut command(bin, &["tcp://127.0.0.1:1"]))
            .finish()
            .assert_failure(2, "udg://PATH")
            .assert_failure(2, "udp://HOST:PORT");
    }
}

#[test]
fn sigterm_removes_the_socket_file() {
    let dir = temp_dir();
    let path = dir.path().join("s.sock");
    let (reader, _) = listening_reader(&[&udg(&path)]);
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
    let url = udg(&path);
    for (umask, mode_args, expected) in [
        ("077", &["--mode", "0644"][..], 0o644),
        ("000", &[][..], 0o600),
    ] {
        let mut reader_command = under_umask(umask, READER);
        reader_command
            .args(["--timeout", "5", &url])
            .args(mode_args);
        let mut reader = Proc::spawn("dgram-reader under sh", &mut reader_command);
        reader.wait_for_stderr("listening on");
        let mode = path.symlink_metadata().unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, expected, "umask {umask}: {mode:o}");
        write(&[&url]).assert_success();
        reader.finish().assert_success();
    }
}
