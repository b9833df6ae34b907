//! `ipc-load stream-reader` (the server) and `ipc-load stream-writer` (the client) as real
//! processes: load runs over Unix sockets and TCP (moved from the stream crate's tests with the
//! binaries' `--count` mode), and what happens when a peer is killed mid-run. After a fault, the
//! blog's pair (`stream-reader`/`stream-writer`, built next to `ipc-load`) must work on the
//! same path.
//!
//! Test names start with what they exercise: `fault_` (a peer killed);
//! `scripts/reliability.sh` counts them by prefix.

mod common;

use common::{IPC_LOAD, example};

use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::path::Path;

use ipc_common::seq;
use ipc_testkit::scenarios::{ENDLESS, line};
use ipc_testkit::{Proc, STEP, Signal, bounded, ours, temp_dir};
use stream::{CLIENT_IP, CLIENT_UDS, SERVER_IP, SERVER_UDS};

/// `ipc-load SIDE ARGS`, waiting at most 5 s unless `args` say otherwise.
fn load(side: &str, args: &[&str]) -> Proc {
    let mut command = ours(IPC_LOAD);
    command.arg(side);
    Proc::spawn(&format!("ipc-load {side}"), &mut bounded(command, args))
}

/// A load server that listens; returns it with the URL it really listens on.
fn listening_server(args: &[&str]) -> (Proc, String) {
    let mut server = load("stream-reader", args);
    let url = server.listening_url();
    (server, url)
}

fn client(args: &[&str]) -> Proc {
    load("stream-writer", args)
}

/// The blog's exchange through a fresh pair of the example binaries on `url`: the next run
/// works (the client prints the server's greeting, the server the client's message).
fn a_fresh_pair_works(url: &str) {
    let mut read = Proc::spawn(
        "stream-reader",
        &mut bounded(ours(example("stream", "stream-reader")), &[url]),
    );
    let url = read.listening_url();
    Proc::spawn(
        "stream-writer",
        &mut bounded(ours(example("stream", "stream-writer")), &[&url]),
    )
    .finish()
    .assert_success()
    .assert_stdout(&line(SERVER_UDS));
    read.finish()
        .assert_success()
        .assert_stdout(&line(CLIENT_UDS));
}

fn unix(path: &Path) -> String {
    format!("unix://{}", path.display())
}

/// The summary line of a perfect run of `count` messages of `payload`.
fn perfect(count: u64, payload: &str) -> String {
    let bytes = count * (seq::STAMP_LEN + payload.len()) as u64;
    format!(
        "received {count} of {count} messages ({bytes} bytes): 0 lost, 0 duplicated, 0 reordered, \
         0 corrupted\n"
    )
}

#[test]
fn ten_thousand_framed_messages_arrive_perfect() {
    let dir = temp_dir();
    let url = unix(&dir.path().join("s.sock"));
    let (reader, _) = listening_server(&[&url, "--count", "10000"]);
    client(&[&url, "--count", "10000"])
        .finish()
        .assert_success()
        .assert_stdout(&line(SERVER_UDS));
    reader
        .finish()
        .assert_success()
        .assert_stdout(perfect(10_000, CLIENT_UDS).as_bytes());

    let (reader, url) = listening_server(&["tcp://127.0.0.1:0", "--count", "10000"]);
    client(&[&url, "--count", "10000"])
        .finish()
        .assert_success()
        .assert_stdout(&line(SERVER_IP));
    reader
        .finish()
        .assert_success()
        .assert_stdout(perfect(10_000, CLIENT_IP).as_bytes());
}

#[test]
fn eight_concurrent_clients_are_each_served_and_checked() {
    let dir = temp_dir();
    let url = unix(&dir.path().join("s.sock"));
    let (reader, _) = listening_server(&[&url, "--connections", "8", "--count", "2000"]);
    let writers: Vec<Proc> = (0..8).map(|_| client(&[&url, "--count", "2000"])).collect();
    for writer in writers {
        writer
            .finish()
            .assert_success()
            .assert_stdout(&line(SERVER_UDS));
    }
    reader
        .finish()
        .assert_success()
        .assert_stdout(perfect(2000, CLIENT_UDS).repeat(8).as_bytes());
}

#[test]
fn a_silent_connection_holds_back_no_load_client() {
    let dir = temp_dir();
    let path = dir.path().join("s.sock");
    let url = unix(&path);
    let (reader, _) = listening_server(&[&url, "--connections", "3", "--count", "500"]);
    // Connected first, accepted first, and it never says a word: the clients after it are
    // served meanwhile, and it is dropped uncounted once they are.
    let _silent = UnixStream::connect(&path).unwrap();
    let writers: Vec<Proc> = (0..3).map(|_| client(&[&url, "--count", "500"])).collect();
    for writer in writers {
        writer.finish().assert_success();
    }
    let finished = reader.finish();
    finished
        .assert_success()
        .assert_stdout(perfect(500, CLIENT_UDS).repeat(3).as_bytes());
    assert!(
        finished
            .stderr
            .contains("dropped connection 1 still in its exchange as the run ended"),
        "{}",
        finished.stderr
    );
}

#[test]
fn a_load_run_cut_short_is_reported() {
    let dir = temp_dir();
    let path = dir.path().join("s.sock");
    let (reader, _) = listening_server(&[&unix(&path), "--count", "3"]);
    let mut framed = Vec::new();
    for seq in 0..2 {
        seq::frame_into(&mut framed, seq, b"x");
    }
    let mut stream = UnixStream::connect(&path).unwrap();
    // Two whole messages and the first 5 bytes of a third, then end of stream.
    stream.write_all(&framed).unwrap();
    stream.write_all(&framed[..5]).unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    stream.set_read_timeout(Some(STEP)).unwrap();
    let mut greeting = Vec::new();
    stream.read_to_end(&mut greeting).unwrap();
    assert_eq!(greeting, SERVER_UDS.as_bytes());
    reader
        .finish()
        .assert_failure(1, "1 of them lost, duplicated, reordered or cut messages")
        .assert_stdout(
            b"received 2 of 3 messages (24 bytes): 1 lost, 0 duplicated, 0 reordered, \
              0 corrupted; the stream ended 5 bytes into a message\n",
        );
}

/// An endless run through a server on `url`, once the first message has arrived:
/// `(server, client, the URL the server really listens on)`, either ready to be killed.
fn endless_run(url: &str) -> (Proc, Proc, String) {
    let (mut read, url) = listening_server(&[url, "--count", ENDLESS]);
    let write = client(&[&url, "--count", ENDLESS]);
    read.wait_for_stderr("first message arrived");
    (read, write, url)
}

#[test]
fn fault_client_killed_mid_stream_the_server_reports_the_cut_stream() {
    let dir = temp_dir();
    for url in [unix(&dir.path().join("s.sock")), "tcp://127.0.0.1:0".into()] {
        let (read, write, url) = endless_run(&url);
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
        let (read, write, url) = endless_run(&url);
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
fn the_examples_no_longer_take_the_load_options() {
    for name in ["stream-reader", "stream-writer"] {
        let mut command = ours(example("stream", name));
        command.args(["--count", "1"]);
        ipc_testkit::run(name, &mut command, None).assert_failure(2, "unexpected argument");
    }
}
