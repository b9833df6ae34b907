//! Request/response over one queue (`mq-reader --serve`, `mq-writer --request`, and PHP's
//! `tests/php/mq-serve.php` and `mq-request-client.php`): requests go as type 1, each answer as
//! the type its request names, the client's pid; so several clients at once each get their own
//! answer and nobody else's. Also what goes wrong: a client that dies before reading its answer,
//! a queue too full for an answer, no server at all, a server stopped by SIGTERM, a message of
//! type 1 that is not a request. Every test has its own key file and leaves no queue behind.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use ipc_common::php::{self, Value};
use ipc_common::sysv::{self, MsgBuf};
use ipc_testkit::php::Php;
use ipc_testkit::scenarios::line;
use ipc_testkit::{Proc, Signal, assert_no_sysv_objects, bounded, key_file, ours, temp_dir};

const READER: &str = env!("CARGO_BIN_EXE_mq-reader");
const WRITER: &str = env!("CARGO_BIN_EXE_mq-writer");

/// Removes the queue under the test's own key file when the test ends, passed or not: a failed
/// assertion must not leak it. The passing path asserts first that nothing was left.
struct OwnQueue(PathBuf);

impl Drop for OwnQueue {
    fn drop(&mut self) {
        if let Ok(Some(id)) = sysv::ftok(&self.0, b'T').and_then(sysv::msg_open) {
            let _ = sysv::msg_remove(id);
        }
    }
}

fn server(key: &Path, args: &[&str]) -> Proc {
    let mut command = bounded(ours(READER), args);
    command.arg("--serve").arg("--key-file").arg(key);
    let mut server = Proc::spawn("mq-reader --serve", &mut command);
    server.wait_for_stderr("serving requests of type 1 on queue");
    server
}

fn client(key: &Path, message: &str, args: &[&str]) -> Proc {
    let mut command = bounded(ours(WRITER), args);
    command
        .args(["--request", "--message", message, "--key-file"])
        .arg(key);
    Proc::spawn(&format!("mq-writer --request {message}"), &mut command)
}

fn php_client(php: &Php, key: &Path, message: &str) -> Proc {
    let key = key.to_str().expect("a UTF-8 temp path");
    let args = ["--key-file", key, "--message", message, "--timeout", "5"];
    php.spawn("mq-request-client.php", args)
}

/// The line a server prints for a request: PHP's `json_encode` of the array.
fn request_line(pid: u32, message: &str) -> String {
    format!("{{\"reply_type\":{pid},\"message\":\"{message}\"}}")
}

fn lines(stdout: &[u8]) -> BTreeSet<String> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The messages left in the queue under `key`, as (type, text), oldest first.
fn queued(key: &Path) -> Vec<(i64, Vec<u8>)> {
    let id = sysv::msg_open(sysv::ftok(key, b'T').unwrap())
        .unwrap()
        .expect("the queue is there");
    let mut buf = MsgBuf::new();
    (0..)
        .map_while(|index| buf.peek(id, 8192, index).ok().map(|(t, m)| (t, m.to_vec())))
        .collect()
}

#[test]
fn one_request_one_answer_and_the_request_printed_whole() {
    let dir = temp_dir();
    let key = key_file(dir.path());
    let _queue = OwnQueue(key.clone());
    let serving = server(&key, &["--requests", "1"]);
    let asked = client(&key, "Hello from Writer: Message Queue", &[]);
    let pid = asked.pid();
    asked
        .finish()
        .assert_success()
        .assert_stdout(&line("Hello from Writer: Message Queue"));
    serving
        .finish()
        .assert_success()
        .assert_stdout(&line(&request_line(
            pid,
            "Hello from Writer: Message Queue",
        )));
    assert_no_sysv_objects(&key, b'T');
}

/// Three of ours and three of PHP's at once, against our server: every client gets exactly its
/// own message back, and the server printed each request once.
#[test]
fn six_clients_at_once_each_get_their_own_answer() {
    let Some(php) = Php::find() else { return };
    let dir = temp_dir();
    let key = key_file(dir.path());
    let _queue = OwnQueue(key.clone());
    let serving = server(&key, &["--requests", "6"]);
    let mut clients = Vec::new();
    for n in 1..=3 {
        let ours = format!("client {n} (Rust)");
        clients.push((client(&key, &ours, &[]), ours));
        let theirs = format!("client {n} (PHP)");
        clients.push((php_client(&php, &key, &theirs), theirs));
    }
    let mut expected = BTreeSet::new();
    for (proc, message) in clients {
        expected.insert(request_line(proc.pid(), &message));
        proc.finish()
            .assert_success()
            .assert_stdout(&line(&message));
    }
    let served = serving.finish();
    served.assert_success();
    assert_eq!(lines(&served.stdout), expected, "{served:?}");
    assert_eq!(served.stdout.iter().filter(|&&b| b == b'\n').count(), 6);
    assert_no_sysv_objects(&key, b'T');
}

/// PHP's server and our clients: the same request format both ways.
#[test]
fn php_server_answers_our_clients() {
    let Some(php) = Php::find() else { return };
    let dir = temp_dir();
    let key = key_file(dir.path());
    let _queue = OwnQueue(key.clone());
    let key_arg = key.to_str().unwrap();
    let args = ["--key-file", key_arg, "--requests", "2", "--timeout", "5"];
    let mut serving = php.spawn("mq-serve.php", args);
    serving.wait_for_stderr("serving requests of type 1");
    let one = client(&key, "first", &[]);
    let two = client(&key, "second", &[]);
    let expected = BTreeSet::from([
        request_line(one.pid(), "first"),
        request_line(two.pid(), "second"),
    ]);
    one.finish().assert_success().assert_stdout(&line("first"));
    two.finish().assert_success().assert_stdout(&line("second"));
    let served = serving.finish();
    served.assert_success();
    assert_eq!(lines(&served.stdout), expected, "{served:?}");
    assert_no_sysv_objects(&key, b'T');
}

/// A client killed while it waits: its answer is sent, stays for it alone (the next client gets
/// only its own), and the server says whose answer was not read and fails; the queue, created by
/// the dead client, holds exactly that answer.
#[test]
fn fault_client_dies_before_its_answer_nobody_else_loses_theirs() {
    let dir = temp_dir();
    let key = key_file(dir.path());
    let _queue = OwnQueue(key.clone());
    let mut dead = client(&key, "never read", &[]);
    let dead_pid = dead.pid();
    dead.wait_for_stderr(&format!("waiting for a message of type {dead_pid}"));
    dead.signal(Signal::SIGKILL);
    dead.finish();

    let serving = server(&key, &["--requests", "2", "--timeout", "1"]);
    let alive = client(&key, "read", &["--timeout", "5"]);
    let alive_pid = alive.pid();
    alive.finish().assert_success().assert_stdout(&line("read"));
    let served = serving.finish();
    served.assert_failure(
        1,
        &format!("messages of type {dead_pid} were not read within --timeout"),
    );
    let expected = BTreeSet::from([
        request_line(dead_pid, "never read"),
        request_line(alive_pid, "read"),
    ]);
    assert_eq!(lines(&served.stdout), expected, "{served:?}");
    let answer = php::serialize(&Value::String(b"never read".to_vec()));
    assert_eq!(queued(&key), vec![(i64::from(dead_pid), answer)]);
}

/// A queue with no room for the answer (someone else's message fills it): the server waits
/// --timeout, names the client it could not answer, takes nothing else and fails; the other
/// message stays.
#[test]
fn fault_full_queue_names_the_client_not_answered_and_keeps_the_rest() {
    let dir = temp_dir();
    let key = key_file(dir.path());
    let _queue = OwnQueue(key.clone());
    let id = sysv::msg_create(sysv::ftok(&key, b'T').unwrap(), 0o600).unwrap();
    let mut buf = MsgBuf::new();
    let request = mq::serve::request_body(4242, Value::String(b"no room".to_vec()));
    buf.send(id, 1, &request, 0).unwrap();
    buf.send(id, 99, &[b'x'; 200], 0).unwrap();
    // Below what is queued already: nothing more fits once the request is taken.
    sysv::msg_set_max_bytes(id, 100).unwrap();

    let served = server(&key, &["--requests", "1", "--timeout", "1"]).finish();
    served
        .assert_failure(1, "no answer was sent for type 4242")
        .assert_stdout(&line(&request_line(4242, "no room")));
    assert!(
        served.stderr.contains("type 4242 not answered"),
        "{served:?}"
    );
    assert_eq!(queued(&key), vec![(99, vec![b'x'; 200])]);
}

/// No server: the client's wait for its answer is bounded (124) and says what to start; its
/// request goes with the queue it created.
#[test]
fn fault_no_server_the_client_times_out_saying_so_and_leaves_nothing() {
    let dir = temp_dir();
    let key = key_file(dir.path());
    let _queue = OwnQueue(key.clone());
    client(&key, "anyone?", &["--timeout", "1"])
        .finish()
        .assert_failure(124, "is `mq-reader --serve` running on this queue?")
        .assert_stdout(b"");
    assert_no_sysv_objects(&key, b'T');
}

/// `--requests 0` serves until SIGTERM, then removes the queue it created (it is empty); a
/// client that comes later waits in vain and says so.
#[test]
fn fault_server_stopped_by_sigterm_removes_its_queue_and_later_clients_time_out() {
    let dir = temp_dir();
    let key = key_file(dir.path());
    let _queue = OwnQueue(key.clone());
    let mut serving = server(&key, &["--requests", "0", "--timeout", "5"]);
    client(&key, "before", &[])
        .finish()
        .assert_success()
        .assert_stdout(&line("before"));
    serving.wait_for_stderr("answered");
    serving.signal(Signal::SIGTERM);
    let stopped = serving.finish();
    assert_eq!(stopped.status.code(), Some(143), "{stopped:?}");
    assert_no_sysv_objects(&key, b'T');
    client(&key, "after", &["--timeout", "1"])
        .finish()
        .assert_failure(124, "is `mq-reader --serve` running");
    assert_no_sysv_objects(&key, b'T');
}

/// A message of type 1 that is not a request (here a plain string, and a request that would be
/// answered as type 1, the requests' own) is not taken: the server stops, saying why.
#[test]
fn a_message_that_is_not_a_request_is_left_queued() {
    for (body, why) in [
        (
            php::serialize(&Value::String(b"hi".to_vec())),
            "not an array",
        ),
        (
            mq::serve::request_body(1, Value::Null),
            "reply_type must be an integer of 2 or more",
        ),
    ] {
        let dir = temp_dir();
        let key = key_file(dir.path());
        let _queue = OwnQueue(key.clone());
        let id = sysv::msg_create(sysv::ftok(&key, b'T').unwrap(), 0o600).unwrap();
        MsgBuf::new().send(id, 1, &body, 0).unwrap();
        server(&key, &["--requests", "1"])
            .finish()
            .assert_failure(1, why)
            .assert_stdout(b"");
        assert_eq!(queued(&key), vec![(1, body)]);
    }
}

/// Usage: --requests without --serve, --request with --raw or --type.
#[test]
fn usage_errors() {
    for (binary, args) in [
        (READER, &["--requests", "1"][..]),
        (READER, &["--serve", "--type", "2"]),
        (WRITER, &["--request", "--raw"]),
        (WRITER, &["--request", "--type", "3"]),
        (WRITER, &["--request", "--reply-type", "1"]),
        (WRITER, &["--reply-type", "7"]),
    ] {
        let out = ours(binary).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
    }
}

/// `--reply-type`: clients that cannot tell each other apart by pid (containers) pick their own
/// types, and each still gets only its own answer.
#[test]
fn chosen_reply_types_keep_clients_apart() {
    let dir = temp_dir();
    let key = key_file(dir.path());
    let _queue = OwnQueue(key.clone());
    let serving = server(&key, &["--requests", "2"]);
    let seven = client(&key, "seven", &["--reply-type", "7"]);
    let eight = client(&key, "eight", &["--reply-type", "8"]);
    seven
        .finish()
        .assert_success()
        .assert_stdout(&line("seven"));
    eight
        .finish()
        .assert_success()
        .assert_stdout(&line("eight"));
    let served = serving.finish();
    served.assert_success();
    let expected = BTreeSet::from([
        "{\"reply_type\":7,\"message\":\"seven\"}".to_owned(),
        "{\"reply_type\":8,\"message\":\"eight\"}".to_owned(),
    ]);
    assert_eq!(lines(&served.stdout), expected, "{served:?}");
    assert_no_sysv_objects(&key, b'T');
}

/// A client that is pid 1 (the first process of a PID namespace, as in a container) would ask
/// to be answered as type 1, the requests' own: refused before anything is sent or created.
#[test]
fn a_client_that_is_pid_1_must_choose_its_reply_type() {
    let dir = temp_dir();
    let key = key_file(dir.path());
    let _queue = OwnQueue(key.clone());
    let mut command = ours("unshare");
    command.args([
        "--pid",
        "--fork",
        WRITER,
        "--request",
        "--timeout",
        "1",
        "--key-file",
    ]);
    command.arg(&key);
    let out = Proc::spawn("unshare --pid mq-writer --request", &mut command).finish();
    if out.stderr.contains("unshare failed") || out.stderr.contains("Operation not permitted") {
        ipc_testkit::skipped("skip: no PID namespace for a pid-1 client (unshare --pid refused)");
        return;
    }
    out.assert_failure(1, "our pid is 1").assert_stdout(b"");
    assert_no_sysv_objects(&key, b'T');
}

/// `--timeout 0`: the client blocks in `msgrcv(2)` for its answer; SIGTERM still ends it (a
/// blocking msgrcv is not restarted after a signal), and the queue it created goes with its
/// request.
#[test]
fn a_client_waiting_forever_stops_on_sigterm_and_leaves_nothing() {
    let dir = temp_dir();
    let key = key_file(dir.path());
    let _queue = OwnQueue(key.clone());
    let mut waiting = client(&key, "forever", &["--timeout", "0"]);
    waiting.wait_for_stderr("bytes as type 1 to queue");
    waiting.signal(Signal::SIGTERM);
    let stopped = waiting.finish();
    assert_eq!(stopped.status.code(), Some(143), "{stopped:?}");
    assert_no_sysv_objects(&key, b'T');
}

/// An answer on our type that is not the echo of our request (one left for a client gone whose
/// pid we now have, or sent for a request that named our type) is not printed as ours: the
/// client says so on stderr, with its bytes (`--quiet` too: the message was taken off the
/// queue), and waits on for its own answer.
#[test]
fn fault_an_answer_that_is_not_ours_is_not_printed_as_ours() {
    let dir = temp_dir();
    let key = key_file(dir.path());
    let _queue = OwnQueue(key.clone());
    let mut stale = bounded(ours(WRITER), &["--type", "7", "--message", "stale answer"]);
    stale.arg("--key-file").arg(&key);
    Proc::spawn("mq-writer --type 7", &mut stale)
        .finish()
        .assert_success();
    let serving = server(&key, &["--requests", "1"]);
    let asked = client(&key, "mine", &["--reply-type", "7", "--quiet"]).finish();
    asked.assert_success().assert_stdout(&line("mine"));
    assert!(
        asked.stderr.contains("not the answer to our request")
            && asked.stderr.contains("stale answer"),
        "{asked:?}"
    );
    serving.finish().assert_success();
    assert_no_sysv_objects(&key, b'T');
}

/// A server whose stdout's reader goes away after the first line (`mq-reader --serve | head
/// -n1`) then takes a request it cannot print: exit 1 naming that request, not exit 0 as a
/// single message's `reader | head -c1` is. (It exited 0, the request printed nowhere.)
#[test]
fn fault_server_whose_stdout_goes_away_fails_naming_the_request_taken() {
    use std::io::{BufRead, BufReader, Read};
    use std::process::{Command, Stdio};

    let dir = temp_dir();
    let key = key_file(dir.path());
    let _queue = OwnQueue(key.clone());
    let mut serving = Command::new("timeout")
        .args(["10", READER, "--serve", "--requests", "2", "--timeout", "5"])
        .arg("--key-file")
        .arg(&key)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The server first, so that the queue is its own, which it removes when it fails.
    let mut stderr = BufReader::new(serving.stderr.take().unwrap());
    let mut said = String::new();
    while !said.contains("serving requests of type 1") {
        said.clear();
        assert_ne!(stderr.read_line(&mut said).unwrap(), 0, "the server ended");
    }
    let one = client(&key, "one", &[]);
    let pid = one.pid();
    one.finish().assert_success().assert_stdout(&line("one"));
    let mut stdout = BufReader::new(serving.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert_eq!(first, format!("{}\n", request_line(pid, "one")));
    drop(stdout);

    let two = client(&key, "two", &["--timeout", "2"]).finish();
    assert!(!two.status.success(), "{two:?}");
    let status = serving.wait().unwrap();
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    let stderr = rest;
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("was taken but not printed: stdout was closed")
            && stderr.contains(r#"\"message\":\"two\""#),
        "{stderr}"
    );
    assert_no_sysv_objects(&key, b'T');
}
