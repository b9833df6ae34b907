//! broker-writer and broker-reader against a redis-server of the test's own (Unix socket and
//! TCP on loopback): the exact bytes that crossed, the consumer group left with nothing pending,
//! at-least-once with a reader really killed between receiving and acknowledging, and the
//! password taken from the environment only.

mod common;

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{GROUP, PRINTED, READER, STREAM, Server, WRITER, available, ours};
use ipc_testkit::{Proc, STEP, run};

#[test]
fn the_blog_pair_over_the_unix_socket_and_tcp() {
    if !available() {
        return;
    }
    let server = Server::start(&[]);
    for url in [server.unix_url(), server.tcp_url()] {
        run("writer", &mut ours(WRITER, &url, &[]), None).assert_success();
        run("reader", &mut ours(READER, &url, &[]), None)
            .assert_success()
            .assert_stdout(PRINTED);
    }
    assert_eq!(server.pending(STREAM, GROUP), 0);
    // Our consumers are gone from the group once they had nothing pending.
    let consumers: Vec<redis::Value> = server.query(&["XINFO", "CONSUMERS", STREAM, GROUP]);
    assert!(consumers.is_empty(), "{consumers:?}");
    // A reader finding nothing waits --timeout, exits 124 and leaves no consumer either.
    run(
        "reader",
        &mut ours(READER, &server.unix_url(), &["--timeout", "0.5"]),
        None,
    )
    .assert_failure(124, "waiting for a message on stream ipc-message-queues");
    let consumers: Vec<redis::Value> = server.query(&["XINFO", "CONSUMERS", STREAM, GROUP]);
    assert!(consumers.is_empty(), "{consumers:?}");
}

#[test]
fn raw_binary_and_values_cross_unchanged() {
    if !available() {
        return;
    }
    let server = Server::start(&[]);
    let url = server.unix_url();
    let file = server.dir.path().join("message");
    let binary: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    std::fs::write(&file, &binary).unwrap();
    let path = file.to_str().unwrap();
    run(
        "writer",
        &mut ours(WRITER, &url, &["--raw", "--message-file", path]),
        None,
    )
    .assert_success();
    let mut expected = binary.clone();
    expected.push(b'\n');
    run("reader", &mut ours(READER, &url, &["--raw"]), None)
        .assert_success()
        .assert_stdout(&expected);
    // The body is exactly what mq-writer gives msgsnd: PHP's serialize().
    run(
        "writer",
        &mut ours(WRITER, &url, &["--int", "42", "--type", "7"]),
        None,
    )
    .assert_success();
    let entries: redis::Value = server.query(&["XRANGE", STREAM, "-", "+"]);
    let text = format!("{entries:?}");
    assert!(text.contains("i:42;") && text.contains("\"7\""), "{text}");
    run(
        "reader",
        &mut ours(READER, &url, &["--format", "json"]),
        None,
    )
    .assert_success()
    .assert_stdout(b"42\n");
}

#[test]
fn a_message_the_reader_cannot_print_stays_pending() {
    if !available() {
        return;
    }
    let server = Server::start(&[]);
    let url = server.unix_url();
    run(
        "writer",
        &mut ours(WRITER, &url, &["--raw", "-m", "not serialized"]),
        None,
    )
    .assert_success();
    run("reader", &mut ours(READER, &url, &[]), None)
        .assert_failure(1, "left pending, not acknowledged");
    assert_eq!(server.pending(STREAM, GROUP), 1);
    run(
        "reader",
        &mut ours(READER, &url, &["--raw", "--claim-after", "0"]),
        None,
    )
    .assert_success()
    .assert_stdout(b"not serialized\n");
    assert_eq!(server.pending(STREAM, GROUP), 0);
}

/// At least once, the duplicate case: a reader is SIGKILLed after receiving (its stdout is a
/// full pipe nobody reads, so it is stuck in write(1) before XACK); the message stays pending and
/// the next reader takes it over and prints it whole.
#[test]
fn a_reader_killed_before_acknowledging_leaves_the_message_to_the_next() {
    if !available() {
        return;
    }
    let server = Server::start(&[]);
    let url = server.unix_url();
    let file = server.dir.path().join("message");
    let big: Vec<u8> = (0..300_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    std::fs::write(&file, &big).unwrap();
    run(
        "writer",
        &mut ours(
            WRITER,
            &url,
            &["--raw", "--message-file", file.to_str().unwrap()],
        ),
        None,
    )
    .assert_success();

    let mut stuck = ours(
        READER,
        &url,
        &["--raw", "--consumer", "first", "--timeout", "20"],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .expect("start the first reader");
    let until = Instant::now() + STEP;
    while server.pending(STREAM, GROUP) == 0 {
        assert!(Instant::now() < until, "the first reader never received");
        std::thread::sleep(Duration::from_millis(10));
    }
    // Some of the message got out before the kill: this reader did "print" part of it.
    let mut out = stuck.stdout.take().unwrap();
    let mut first = vec![0; 4096];
    let n = out
        .read(&mut first)
        .expect("read the first reader's stdout");
    assert!(n > 0);
    stuck.kill().unwrap();
    stuck.wait().unwrap();
    drop(out);
    assert_eq!(server.pending(STREAM, GROUP), 1, "the kill left it pending");

    let mut expected = big.clone();
    expected.push(b'\n');
    let second = run(
        "reader",
        &mut ours(READER, &url, &["--raw", "--claim-after", "0"]),
        None,
    );
    second.assert_success().assert_stdout(&expected);
    assert!(
        second.stderr.contains("taken over from a reader"),
        "{}",
        second.stderr
    );
    assert_eq!(
        &expected[..n],
        &first[..n],
        "both readers printed the same message"
    );
    assert_eq!(server.pending(STREAM, GROUP), 0);
}

/// --claim-after: a fresh pending message of a live reader is not taken over before its time.
#[test]
fn a_pending_message_is_taken_over_only_after_claim_after() {
    if !available() {
        return;
    }
    let server = Server::start(&[]);
    let url = server.unix_url();
    run("writer", &mut ours(WRITER, &url, &[]), None).assert_success();
    let _: () = server.query(&["XGROUP", "CREATE", STREAM, GROUP, "0"]);
    let _: redis::Value = server.query(&[
        "XREADGROUP",
        "GROUP",
        GROUP,
        "alive",
        "COUNT",
        "1",
        "STREAMS",
        STREAM,
        ">",
    ]);
    run(
        "reader",
        &mut ours(READER, &url, &["--claim-after", "60", "--timeout", "0.5"]),
        None,
    )
    .assert_failure(124, "timed out");
    run(
        "reader",
        &mut ours(READER, &url, &["--claim-after", "0.2", "--timeout", "5"]),
        None,
    )
    .assert_success()
    .assert_stdout(PRINTED);
}

#[test]
fn the_password_comes_from_the_environment_and_a_wrong_one_is_clear() {
    if !available() {
        return;
    }
    let server = Server::start(&["--requirepass", "s3cret"]);
    let url = server.tcp_url();
    run("writer", &mut ours(WRITER, &url, &[]), None).assert_failure(
        1,
        "the server requires a password: set it in IPC_BROKER_PASSWORD",
    );
    run(
        "writer",
        ours(WRITER, &url, &[]).env("IPC_BROKER_PASSWORD", "wrong"),
        None,
    )
    .assert_failure(1, "Redis refused the password");
    run(
        "writer",
        ours(WRITER, &url, &[]).env("IPC_BROKER_PASSWORD", "s3cret"),
        None,
    )
    .assert_success();
    run(
        "reader",
        ours(READER, &url, &[]).env("REDISCLI_AUTH", "s3cret"),
        None,
    )
    .assert_success()
    .assert_stdout(PRINTED);
    // On the command line it is a usage error, before anything connects, that does not
    // repeat it (the terminal, a CI log); nor does the error of a URL that does not parse.
    let with_password = format!("redis://:s3cret@127.0.0.1:{}", server.port);
    for (url, why) in [
        (with_password.as_str(), "the URL holds a password"),
        ("redis://:s3cret@[::1", "not a Redis URL"),
    ] {
        let refused = run("writer", &mut ours(WRITER, url, &[]), None);
        refused.assert_failure(2, why);
        assert!(!refused.stderr.contains("s3cret"), "{refused:?}");
    }
}

/// Redis not there yet: the reader waits (within --timeout) for its socket to appear.
#[test]
fn the_reader_waits_for_redis_to_start() {
    if !available() {
        return;
    }
    let mut server = Server::new(&[]);
    let url = server.unix_url();
    let mut reader = Proc::spawn("reader", &mut ours(READER, &url, &["--timeout", "15"]));
    reader.wait_for_stderr("waiting for Redis at");
    server.launch();
    run("writer", &mut ours(WRITER, &url, &[]), None).assert_success();
    reader.finish().assert_success().assert_stdout(PRINTED);
    // Nobody ever comes: 124 naming the server.
    let nobody = Server::new(&[]);
    run(
        "reader",
        &mut ours(READER, &nobody.tcp_url(), &["--timeout", "0.3"]),
        None,
    )
    .assert_failure(124, "waiting for Redis at redis://127.0.0.1:");
}

#[test]
fn help_says_at_least_once() {
    let help = std::process::Command::new(READER)
        .arg("--help")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(
        text.contains("AT LEAST ONCE") && text.contains("XAUTOCLAIM"),
        "{text}"
    );
    ipc_testkit::assert_names_itself(READER, "broker-reader");
    ipc_testkit::assert_names_itself(WRITER, "broker-writer");
}
