//! Replies on the same datagram socket ("if the reader needs to send a message back to the
//! sender it will need to open a new socket": it does not): `dgram-reader --reply` answers
//! with `sendto(2)` on the socket it received on, `dgram-writer --expect-reply` prints the
//! answer. Over a Unix socket and UDP (loopback), ours and PHP's on either side; a reply that
//! never comes (exit 124), a sender that cannot be answered, a writer that left.

use std::path::Path;
use std::process::Command;

use ipc_testkit::php::Php;
use ipc_testkit::{Proc, Signal, ours, temp_dir};

const READER: &str = env!("CARGO_BIN_EXE_dgram-reader");
const WRITER: &str = env!("CARGO_BIN_EXE_dgram-writer");
const PING: &str = "ping \u{2713} from the writer";
const PONG: &str = "pong \u{2713} from the reader";

fn reader(url: &str, extra: &[&str]) -> Proc {
    let mut command = ours(READER);
    command.args(["--timeout", "5", url]).args(extra);
    let mut reader = Proc::spawn("dgram-reader", &mut command);
    reader.wait_for_stderr("listening on");
    reader
}

/// Our writer, its private reply directory in `tmp` (so a killed one leaves nothing outside
/// the test's directory).
fn writer(url: &str, tmp: &Path, extra: &[&str]) -> Command {
    let mut command = ours(WRITER);
    command
        .env("TMPDIR", tmp)
        .args([url, "--message", PING])
        .args(extra);
    if !extra.contains(&"--timeout") {
        command.args(["--timeout", "5"]);
    }
    command
}

/// Where a reader listens: a socket file in `dir`, or a UDP port the kernel picks.
fn url(dir: &Path, unix: bool) -> String {
    if unix {
        format!("udg://{}", dir.join("s.sock").display())
    } else {
        "udp://127.0.0.1:0".to_string()
    }
}

#[test]
fn reply_comes_back_on_the_same_socket() {
    for unix in [true, false] {
        let dir = temp_dir();
        let url = url(dir.path(), unix);
        let mut reader = reader(&url, &["--reply", PONG]);
        let url = reader.listening_url();
        let written =
            Proc::spawn("writer", &mut writer(&url, dir.path(), &["--expect-reply"])).finish();
        written
            .assert_success()
            .assert_stdout(format!("{PONG}\n").as_bytes());
        let read = reader.finish();
        read.assert_success()
            .assert_stdout(format!("{PING}\n").as_bytes());
        assert!(
            read.stderr
                .contains(&format!("replied {} bytes to ", PONG.len())),
            "{read:?}"
        );
        assert_eq!(
            ipc_testkit::contract::files_in(dir.path()),
            Vec::<String>::new(),
            "left behind"
        );
    }
}

#[test]
fn fault_reply_that_never_comes_times_out() {
    for unix in [true, false] {
        let dir = temp_dir();
        let url = url(dir.path(), unix);
        let mut reader = reader(&url, &[]);
        let url = reader.listening_url();
        let mut command = writer(&url, dir.path(), &["--expect-reply", "--timeout", "1"]);
        let written = Proc::spawn("writer", &mut command).finish();
        written.assert_failure(124, "waiting for a reply from a reader on");
        assert!(written.stderr.contains("none came"), "{written:?}");
        assert!(written.stdout.is_empty(), "{written:?}");
        reader
            .finish()
            .assert_success()
            .assert_stdout(format!("{PING}\n").as_bytes());
        assert_eq!(
            ipc_testkit::contract::files_in(dir.path()),
            Vec::<String>::new(),
            "left behind"
        );
    }
}

/// The reader dies after our datagram reached its socket, before answering: nothing tells the
/// writer (a Unix datagram socket's peer closing is not an error on it; UDP sends nothing
/// more), so it waits out its --timeout: exit 124, saying what it waited for.
#[test]
fn fault_reader_that_dies_before_answering() {
    for unix in [true, false] {
        let dir = temp_dir();
        let url = url(dir.path(), unix);
        let mut reader = reader(&url, &["--reply", PONG]);
        let url = reader.listening_url();
        reader.signal(Signal::SIGSTOP);
        let mut command = writer(&url, dir.path(), &["--expect-reply", "--timeout", "1"]);
        let mut writer = Proc::spawn("writer", &mut command);
        writer.wait_for_stderr("sent ");
        reader.signal(Signal::SIGKILL);
        let dead = reader.finish();
        assert!(dead.stdout.is_empty(), "{dead:?}");
        let written = writer.finish();
        written.assert_failure(124, "none came: is it running with --reply?");
        assert!(written.stdout.is_empty(), "{written:?}");
        // The killed reader's socket file stays (nobody removes a SIGKILLed process's files);
        // the writer's reply directory does not.
        let left = ipc_testkit::contract::files_in(dir.path());
        assert!(left.iter().all(|f| f.contains("s.sock")), "{left:?}");
    }
}

/// A Unix writer that bound no address (ours without `--expect-reply`, the blog's): the reader
/// printed the datagram, and says the reply was impossible (exit 1).
#[test]
fn an_unbound_unix_sender_cannot_be_answered() {
    let dir = temp_dir();
    let url = format!("udg://{}", dir.path().join("s.sock").display());
    let reader = reader(&url, &["--reply", PONG]);
    Proc::spawn("writer", &mut writer(&url, dir.path(), &[]))
        .finish()
        .assert_success();
    reader
        .finish()
        .assert_failure(
            1,
            "has no address (it never bound one), so it cannot be answered",
        )
        .assert_stdout(format!("{PING}\n").as_bytes());
}

/// The writer is gone when the reply goes out (the reader was stopped meanwhile). Unix: the
/// reader knows (its `sendto` fails) and exits 1 after printing the datagram. UDP: nothing
/// tells an unconnected socket, the reply counts as sent, exit 0 (documented).
#[test]
fn fault_reply_to_a_writer_that_left() {
    for unix in [true, false] {
        let dir = temp_dir();
        let url = url(dir.path(), unix);
        let mut reader = reader(&url, &["--reply", PONG]);
        let url = reader.listening_url();
        reader.signal(Signal::SIGSTOP);
        let mut writer = Proc::spawn("writer", &mut writer(&url, dir.path(), &["--expect-reply"]));
        writer.wait_for_stderr("sent ");
        writer.signal(Signal::SIGTERM);
        let gone = writer.finish();
        assert_eq!(gone.status.code(), Some(143), "{gone:?}");
        reader.signal(Signal::SIGCONT);
        let read = reader.finish();
        read.assert_stdout(format!("{PING}\n").as_bytes());
        if unix {
            read.assert_failure(
                1,
                "(the writer is gone; the datagram it sent was received and printed)",
            );
        } else {
            read.assert_success();
        }
        assert_eq!(
            ipc_testkit::contract::files_in(dir.path()),
            Vec::<String>::new(),
            "left behind"
        );
    }
}

fn php_args<'a>(pairs: &[(&'a str, &'a str)]) -> Vec<&'a str> {
    let mut args = vec!["--timeout", "5"];
    for (name, value) in pairs {
        args.extend([*name, *value]);
    }
    args
}

/// PHP's sender (bound: `socket_bind` a path, or the port `socket_sendto` gives it) answered by
/// our reader.
#[test]
fn php_sender_gets_our_readers_reply() {
    let Some(php) = Php::find() else { return };
    let dir = temp_dir();
    let socket = dir.path().join("s.sock");
    let reply_socket = dir.path().join("r.sock");
    let mut unix = reader(&format!("udg://{}", socket.display()), &["--reply", PONG]);
    unix.listening_url();
    php.run(
        "dgram-uds-sender.php",
        php_args(&[
            ("--socket", &socket.display().to_string()),
            ("--reply-socket", &reply_socket.display().to_string()),
            ("--message", PING),
        ]),
    )
    .assert_success()
    .assert_stdout(format!("{PONG}\n").as_bytes());
    unix.finish()
        .assert_success()
        .assert_stdout(format!("{PING}\n").as_bytes());

    let mut udp = reader("udp://127.0.0.1:0", &["--reply", PONG]);
    let port = ipc_testkit::port_in(&udp.listening_url()).to_string();
    php.run(
        "dgram-udp-sender.php",
        [
            php_args(&[("--port", &port), ("--message", PING)]),
            vec!["--expect-reply"],
        ]
        .concat(),
    )
    .assert_success()
    .assert_stdout(format!("{PONG}\n").as_bytes());
    udp.finish()
        .assert_success()
        .assert_stdout(format!("{PING}\n").as_bytes());
    assert_eq!(
        ipc_testkit::contract::files_in(dir.path()),
        Vec::<String>::new(),
        "left behind"
    );
}

/// Our writer answered by PHP's listener (`socket_sendto` to the address `socket_recvfrom`
/// gave it).
#[test]
fn our_writer_gets_php_listeners_reply() {
    let Some(php) = Php::find() else { return };
    let dir = temp_dir();
    let socket = dir.path().join("s.sock");
    let mut unix = php.spawn(
        "dgram-uds-listener.php",
        php_args(&[
            ("--socket", &socket.display().to_string()),
            ("--reply", PONG),
        ]),
    );
    unix.wait_for_stderr("listening on");
    let url = format!("udg://{}", socket.display());
    Proc::spawn("writer", &mut writer(&url, dir.path(), &["--expect-reply"]))
        .finish()
        .assert_success()
        .assert_stdout(format!("{PONG}\n").as_bytes());
    unix.finish()
        .assert_success()
        .assert_stdout(format!("{PING}\n").as_bytes());

    let mut udp = php.spawn(
        "dgram-udp-listener.php",
        php_args(&[("--port", "0"), ("--reply", PONG)]),
    );
    let url = udp.listening_url();
    Proc::spawn("writer", &mut writer(&url, dir.path(), &["--expect-reply"]))
        .finish()
        .assert_success()
        .assert_stdout(format!("{PONG}\n").as_bytes());
    udp.finish()
        .assert_success()
        .assert_stdout(format!("{PING}\n").as_bytes());
    assert_eq!(
        ipc_testkit::contract::files_in(dir.path()),
        Vec::<String>::new(),
        "left behind"
    );
}

/// A reader bound to the wildcard address answers from the address the writer sent to: the
/// writer's connected socket takes datagrams from that address alone, so a reply from the
/// address the route picks (127.0.0.1 for a datagram sent to 127.0.0.2) would never reach it.
#[test]
fn fault_reader_on_the_wildcard_address_answers_from_the_address_written_to() {
    let dir = temp_dir();
    let mut reader = reader("udp://0.0.0.0:0", &["--reply", PONG]);
    let port = reader
        .listening_url()
        .rsplit_once(':')
        .map(|(_, port)| port.to_string())
        .unwrap();
    let url = format!("udp://127.0.0.2:{port}");
    let written =
        Proc::spawn("writer", &mut writer(&url, dir.path(), &["--expect-reply"])).finish();
    written
        .assert_success()
        .assert_stdout(format!("{PONG}\n").as_bytes());
    reader
        .finish()
        .assert_success()
        .assert_stdout(format!("{PING}\n").as_bytes());
}
