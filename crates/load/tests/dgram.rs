//! `ipc-load dgram-reader` and `ipc-load dgram-writer` as real processes: load runs over Unix
//! datagrams and UDP (moved from the dgram crate's tests with the binaries' `--count` mode), and
//! what happens when a peer is killed mid-run or stops reading. After a fault, the blog's pair
//! (`dgram-reader`/`dgram-writer`, built next to `ipc-load`) must work on the same path.
//!
//! Test names start with what they exercise: `fault_` (a peer killed), `load_` (a full queue);
//! `scripts/reliability.sh` counts them by prefix.

mod common;

use common::{IPC_LOAD, example};

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::Duration;

use dgram::{IP_MESSAGE, UDS_MESSAGE};
use ipc_common::runtime::wait::{Deadline, Timeout, retry};
use ipc_common::seq;
use ipc_testkit::scenarios::{ENDLESS, line, lost};
use ipc_testkit::{Proc, Signal, bounded, ours, temp_dir};

/// `ipc-load SIDE ARGS`, waiting at most 5 s unless `args` say otherwise.
fn load(side: &str, args: &[&str]) -> Proc {
    let mut command = ours(IPC_LOAD);
    command.arg(side);
    Proc::spawn(&format!("ipc-load {side}"), &mut bounded(command, args))
}

fn load_reader(args: &[&str]) -> Proc {
    load("dgram-reader", args)
}

fn load_writer(args: &[&str]) -> Proc {
    load("dgram-writer", args)
}

/// A load reader that listens; returns it with the URL it really listens on.
fn listening_load_reader(args: &[&str]) -> (Proc, String) {
    let mut reader = load_reader(args);
    let url = reader.listening_url();
    (reader, url)
}

/// The blog's message goes through a fresh pair of the example binaries on `url`: the next
/// run works.
fn a_fresh_pair_works(url: &str) {
    let mut read = Proc::spawn(
        "dgram-reader",
        &mut bounded(ours(example("dgram", "dgram-reader")), &[url]),
    );
    read.listening_url();
    Proc::spawn(
        "dgram-writer",
        &mut bounded(ours(example("dgram", "dgram-writer")), &[url]),
    )
    .finish()
    .assert_success();
    read.finish()
        .assert_success()
        .assert_stdout(&line(UDS_MESSAGE));
}

fn udg(path: &Path) -> String {
    format!("udg://{}", path.display())
}

/// The summary line of a perfect run of `count` messages of `payload`.
fn perfect(count: u64, payload: &str) -> Vec<u8> {
    let bytes = count * (seq::STAMP_LEN + payload.len()) as u64;
    line(&format!(
        "received {count} of {count} messages ({bytes} bytes): 0 lost, 0 duplicated, 0 reordered, \
         0 corrupted"
    ))
}

#[test]
fn ten_thousand_uds_datagrams_arrive_perfect() {
    let dir = temp_dir();
    let url = udg(&dir.path().join("s.sock"));
    let (reader, _) = listening_load_reader(&[&url, "--count", "10000"]);
    load_writer(&[&url, "--count", "10000", "--quiet"])
        .finish()
        .assert_success()
        .assert_stdout(b"");
    reader
        .finish()
        .assert_success()
        .assert_stdout(&perfect(10_000, UDS_MESSAGE));
}

#[test]
fn eight_concurrent_writers_are_all_accounted_for() {
    let dir = temp_dir();
    let url = udg(&dir.path().join("s.sock"));
    let (reader, _) = listening_load_reader(&[&url, "--count", "2000", "--writers", "8"]);
    let writers: Vec<Proc> = (0..8)
        .map(|k| {
            let first = (k * 2000).to_string();
            load_writer(&[&url, "--count", "2000", "--first-seq", &first])
        })
        .collect();
    for writer in writers {
        writer.finish().assert_success();
    }
    let summary = perfect(2000, UDS_MESSAGE);
    let one = std::str::from_utf8(&summary).unwrap().trim_end();
    let expected: Vec<String> = (0..8).map(|k| format!("writer {k}: {one}")).collect();
    reader
        .finish()
        .assert_success()
        .assert_stdout(&line(&expected.join("; ")));
}

#[test]
fn a_udp_load_run_on_loopback_is_perfect() {
    let (reader, url) = listening_load_reader(&["udp://127.0.0.1:0", "--count", "200"]);
    load_writer(&[&url, "--count", "200"])
        .finish()
        .assert_success();
    reader
        .finish()
        .assert_success()
        .assert_stdout(&perfect(200, IP_MESSAGE));
}

/// Sends stamped datagrams `seqs` of `payload` from a plain socket, as a lossy network would.
fn send_stamped(url: &str, seqs: &[u64], payload: &[u8]) {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut datagram = Vec::new();
    for &seq in seqs {
        seq::stamp_into(&mut datagram, seq, payload);
        socket
            .send_to(&datagram, url.trim_start_matches("udp://"))
            .unwrap();
    }
}

#[test]
fn udp_loss_is_reported_and_fails_unless_allowed() {
    let loss =
        line("received 3 of 4 messages (36 bytes): 1 lost, 0 duplicated, 1 reordered, 0 corrupted");
    let (reader, url) =
        listening_load_reader(&["udp://127.0.0.1:0", "--count", "4", "--idle", "0.2"]);
    send_stamped(&url, &[0, 1, 3], b"x");
    reader
        .finish()
        .assert_failure(1, "some were lost, duplicated or reordered")
        .assert_stdout(&loss);

    let (reader, url) = listening_load_reader(&[
        "udp://127.0.0.1:0",
        "--count",
        "4",
        "--idle",
        "0.2",
        "--allow-loss",
    ]);
    send_stamped(&url, &[0, 1, 3], b"x");
    reader.finish().assert_success().assert_stdout(&loss);
}

#[test]
fn a_uds_load_run_missing_a_datagram_waits_until_the_timeout() {
    let dir = temp_dir();
    let path = dir.path().join("s.sock");
    let (reader, _) = listening_load_reader(&[&udg(&path), "--count", "3", "--timeout", "1"]);
    let socket = UnixDatagram::unbound().unwrap();
    let mut datagram = Vec::new();
    for seq in [0, 2] {
        seq::stamp_into(&mut datagram, seq, b"x");
        socket.send_to(&datagram, &path).unwrap();
    }
    reader
        .finish()
        .assert_failure(124, "timed out after 1s waiting for a datagram")
        .assert_stdout(&line(
            "received 2 of 3 messages (24 bytes): 1 lost, 0 duplicated, 1 reordered, 0 corrupted",
        ));
}

#[test]
fn fault_reader_killed_mid_stream_the_writer_says_the_reader_went_away() {
    let dir = temp_dir();
    let url = udg(&dir.path().join("s.sock"));
    let (mut read, _) = listening_load_reader(&[&url, "--count", ENDLESS]);
    let write = load_writer(&[&url, "--count", ENDLESS]);
    read.wait_for_stderr("first message arrived");
    read.signal(Signal::SIGKILL);
    write
        .finish()
        .assert_failure(1, "(the reader went away)")
        .assert_stdout(b"");
    read.finish();
    a_fresh_pair_works(&url);
}

#[test]
fn fault_writer_killed_mid_stream_the_reader_reports_the_loss_at_its_timeout() {
    let dir = temp_dir();
    let path = dir.path().join("s.sock");
    let url = udg(&path);
    let (mut read, _) = listening_load_reader(&[&url, "--count", ENDLESS, "--timeout", "2"]);
    let write = load_writer(&[&url, "--count", ENDLESS]);
    read.wait_for_stderr("first message arrived");
    write.signal(Signal::SIGKILL);
    write.finish();
    let read = read.finish();
    read.assert_failure(124, "timed out after 2s waiting for a datagram");
    assert!(lost(&read) > 0, "{read:?}");
    assert!(!path.exists(), "the reader removed its socket file");
    a_fresh_pair_works(&url);
}

#[test]
fn fault_udp_reader_killed_mid_stream_the_writer_times_out_naming_the_reader() {
    let mut read = load_reader(&["udp://127.0.0.1:0", "--count", ENDLESS]);
    let url = read.listening_url();
    let write = load_writer(&[&url, "--count", ENDLESS, "--timeout", "2"]);
    read.wait_for_stderr("first message arrived");
    read.signal(Signal::SIGKILL);
    read.finish();
    // Loopback answers "port unreachable": the writer knows nobody is there, and resends.
    write
        .finish()
        .assert_failure(124, &format!("waiting for a reader on {url}"));
}

/// The process state letter in `/proc/PID/stat` (`R` running, `S` sleeping, `T` stopped).
fn state(pid: u32) -> char {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit_once(") ")
        .and_then(|(_, rest)| rest.chars().next())
        .unwrap_or('?')
}

#[test]
fn load_a_uds_writer_waits_for_a_stopped_reader_and_nothing_is_lost() {
    const COUNT: &str = "20000";
    let dir = temp_dir();
    let url = udg(&dir.path().join("s.sock"));
    let (read, _) = listening_load_reader(&[&url, "--count", COUNT, "--timeout", "20"]);
    let deadline = Deadline::after(Timeout::from_duration(Duration::from_secs(10)));
    let becomes = |pid: u32, wanted: char, what: &str| {
        retry(&deadline, what, || Ok((state(pid) == wanted).then_some(()))).unwrap();
    };
    // A signal takes effect when the process next runs: wait until it has.
    read.signal(Signal::SIGSTOP);
    becomes(read.pid(), 'T', "the reader to stop");
    let write = load_writer(&[&url, "--count", COUNT, "--timeout", "20"]);
    // Connected to a reader that reads nothing, the writer fills the reader's queue, then
    // sleeps in poll(2) for room (its only sleep once connected), instead of dropping.
    becomes(write.pid(), 'S', "the writer to block on the full queue");
    assert_eq!(state(read.pid()), 'T', "the reader is still stopped");
    read.signal(Signal::SIGCONT);
    write.finish().assert_success();
    read.finish().assert_success().assert_stdout(&line(
        "received 20000 of 20000 messages (960000 bytes): 0 lost, 0 duplicated, 0 reordered, \
         0 corrupted",
    ));
}

#[test]
fn load_a_udp_writer_never_waits_and_a_stopped_reader_loses_datagrams() {
    const COUNT: &str = "100000";
    let mut read = load_reader(&[
        "udp://127.0.0.1:0",
        "--count",
        COUNT,
        "--idle",
        "0.5",
        "--allow-loss",
        "--timeout",
        "20",
    ]);
    let url = read.listening_url();
    read.signal(Signal::SIGSTOP);
    // Nothing tells a UDP sender that the receiver's queue is full: it sends everything.
    load_writer(&[&url, "--count", COUNT, "--timeout", "20"])
        .finish()
        .assert_success();
    read.signal(Signal::SIGCONT);
    let read = read.finish();
    read.assert_success();
    let lost = lost(&read);
    assert!(lost > 0 && lost < 100_000, "{read:?}");
    println!("UDP to a stopped reader: {lost} of {COUNT} datagrams lost");
}

#[test]
fn the_examples_no_longer_take_the_load_options() {
    for (name, args) in [
        ("dgram-reader", &["--count", "1"][..]),
        ("dgram-writer", &["--count", "1"]),
        ("dgram-reader", &["--writers", "2"]),
        ("dgram-writer", &["--first-seq", "2"]),
    ] {
        let mut command = ours(example("dgram", name));
        command.args(args);
        ipc_testkit::run(name, &mut command, None).assert_failure(2, "unexpected argument");
    }
}

/// Sequence numbers that would run past u64::MAX are refused before anything is sent: the
/// writer once sent none of them (an empty saturated range) and still said "sent 2" and
/// exited 0 while the reader got nothing.
#[test]
fn a_first_seq_that_overflows_is_a_usage_error_not_a_silent_success() {
    let dir = temp_dir();
    let url = udg(&dir.path().join("s.sock"));
    let (reader, _) = listening_load_reader(&[&url, "--count", "2", "--timeout", "2"]);
    let writer = load_writer(&[&url, "--count", "2", "--first-seq", "18446744073709551615"]);
    let got = writer.finish();
    got.assert_failure(2, "--first-seq");
    assert!(!got.stderr.contains("sent "), "{got:?}");
    reader.finish().assert_failure(124, "timed out");
}
