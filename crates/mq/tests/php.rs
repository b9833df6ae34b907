//! Interop with real PHP: the blog's message-queue writer and reader (`tests/php/mq-*.php`,
//! `msg_send`/`msg_receive`) against our `mq-reader` and `mq-writer`, in both directions:
//! serialized (PHP's default) and raw (`$serialize = false`, our `--raw`), with the blog's
//! message, UTF-8, binary, empty and the largest message a queue takes (msgmax), and with ints,
//! floats, bools and null printed as PHP's `echo` prints them. Each test has its own key file and
//! leaves no queue behind. Skipped (one line) without `php` outside CI.

use std::ffi::OsString;
use std::path::Path;

use ipc_testkit::ours;
use ipc_testkit::php::{Php, payloads};
use ipc_testkit::{Finished, Proc, assert_no_sysv_objects, key_file, temp_dir};

const BLOG_MESSAGE: &str = "Hello from Writer: Message Queue";

fn msgmax() -> usize {
    ipc_common::sysv::msgmax().expect("read /proc/sys/kernel/msgmax")
}

/// The longest string whose serialized form `s:N:"...";` fits one message of `limit` bytes.
fn largest_serialized_string(limit: usize) -> usize {
    (0..limit)
        .rev()
        .find(|n| n + n.to_string().len() + 6 <= limit)
        .expect("a limit of at least 7 bytes")
}

fn our_command(side: &str, key: &Path, extra: &[OsString]) -> std::process::Command {
    let binary = match side {
        "reader" => env!("CARGO_BIN_EXE_mq-reader"),
        _ => env!("CARGO_BIN_EXE_mq-writer"),
    };
    let mut command = ours(binary);
    command
        .arg("--key-file")
        .arg(key)
        .args(["--timeout", "5"])
        .args(extra);
    command
}

fn our_run(side: &str, key: &Path, extra: &[OsString]) -> Finished {
    Proc::spawn(&format!("mq-{side}"), &mut our_command(side, key, extra)).finish()
}

/// `--key-file KEY --timeout 5 EXTRA...` for a PHP peer.
fn php_args(key: &Path, extra: &[OsString]) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["--key-file".into(), key.into()];
    args.extend(["--timeout".into(), "5".into()]);
    args.extend_from_slice(extra);
    args
}

fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

/// PHP's `msg_send` (serialized), then our reader unserializes and prints.
#[test]
fn php_writer_to_our_reader() {
    let Some(php) = Php::find() else { return };
    for payload in payloads(BLOG_MESSAGE, largest_serialized_string(msgmax())) {
        println!("case: {}", payload.name);
        let dir = temp_dir();
        let key = key_file(dir.path());
        let message = payload.sender_args(&dir.path().join("message"));
        php.run("mq-writer.php", php_args(&key, &message))
            .assert_success()
            .assert_stdout(b"");
        our_run("reader", &key, &[])
            .assert_success()
            .assert_stdout(&payload.printed());
        assert_no_sysv_objects(&key, b'T');
    }
}

/// Our writer serializes as `msg_send` does; PHP's `msg_receive` unserializes it.
#[test]
fn our_writer_to_php_reader() {
    let Some(php) = Php::find() else { return };
    let limit = msgmax();
    for payload in payloads(BLOG_MESSAGE, largest_serialized_string(limit)) {
        println!("case: {}", payload.name);
        let dir = temp_dir();
        let key = key_file(dir.path());
        let message = payload.sender_args(&dir.path().join("message"));
        our_run("writer", &key, &message)
            .assert_success()
            .assert_stdout(b"");
        let max_size = os(&["--max-size", &limit.to_string()]);
        php.run("mq-reader.php", php_args(&key, &max_size))
            .assert_success()
            .assert_stdout(&payload.printed());
        assert_no_sysv_objects(&key, b'T');
    }
}

/// `msg_send(..., $serialize = false)` and our `--raw`: the bytes as they are, up to msgmax.
#[test]
fn raw_messages_both_ways() {
    let Some(php) = Php::find() else { return };
    let limit = msgmax();
    for payload in payloads(BLOG_MESSAGE, limit) {
        println!("case: {}", payload.name);
        let dir = temp_dir();
        let key = key_file(dir.path());
        let mut message = payload.sender_args(&dir.path().join("message"));
        message.push("--raw".into());
        php.run("mq-writer.php", php_args(&key, &message))
            .assert_success();
        our_run("reader", &key, &os(&["--raw"]))
            .assert_success()
            .assert_stdout(&payload.printed());
        assert_no_sysv_objects(&key, b'T');

        our_run("writer", &key, &message).assert_success();
        let reader_args = os(&["--raw", "--max-size", &limit.to_string()]);
        php.run("mq-reader.php", php_args(&key, &reader_args))
            .assert_success()
            .assert_stdout(&payload.printed());
        assert_no_sysv_objects(&key, b'T');
    }
}

/// Non-string values: what the writer flag is, what `echo` prints, what `json_encode` prints.
const VALUES: &[(&[&str], &str, &str)] = &[
    (&["--int", "-42"], "-42", "-42"),
    (
        &["--int", "-9223372036854775808"],
        "-9223372036854775808",
        "-9223372036854775808",
    ),
    (&["--float", "0.1"], "0.1", "0.1"),
    (&["--float", "-0"], "-0", "-0"),
    (&["--float", "1e17"], "1.0E+17", "1.0e+17"),
    (
        &["--float", "0.30000000000000004"],
        "0.3",
        "0.30000000000000004",
    ),
    (&["--bool", "true"], "1", "true"),
    (&["--bool", "false"], "", "false"),
    (&["--null"], "", "null"),
];

/// PHP sends ints, floats, bools and null; our reader prints them as PHP's `echo` would, and
/// with `--format json` as `json_encode` would.
#[test]
fn php_values_read_by_our_reader() {
    let Some(php) = Php::find() else { return };
    for (flag, echoed, json) in VALUES {
        println!("case: {flag:?}");
        for (format, printed) in [("echo", echoed), ("json", json)] {
            let dir = temp_dir();
            let key = key_file(dir.path());
            php.run("mq-writer.php", php_args(&key, &os(flag)))
                .assert_success();
            let reader_args = if format == "json" {
                os(&["--format", "json"])
            } else {
                vec![]
            };
            our_run("reader", &key, &reader_args)
                .assert_success()
                .assert_stdout(format!("{printed}\n").as_bytes());
            assert_no_sysv_objects(&key, b'T');
        }
    }
}

/// Our writer's ints, floats, bools and null, as PHP's `msg_receive` unserializes and echoes
/// them.
#[test]
fn our_values_read_by_php() {
    let Some(php) = Php::find() else { return };
    for (flag, echoed, _) in VALUES {
        println!("case: {flag:?}");
        let dir = temp_dir();
        let key = key_file(dir.path());
        our_run("writer", &key, &os(flag)).assert_success();
        php.run("mq-reader.php", php_args(&key, &[]))
            .assert_success()
            .assert_stdout(format!("{echoed}\n").as_bytes());
        assert_no_sysv_objects(&key, b'T');
    }
}

/// Reader first, either way round: our reader waits for PHP's queue, PHP's reader for ours.
#[test]
fn readers_first_wait_for_the_writer() {
    let Some(php) = Php::find() else { return };
    let expected = format!("{BLOG_MESSAGE}\n");

    let dir = temp_dir();
    let key = key_file(dir.path());
    let mut reader = Proc::spawn("mq-reader", &mut our_command("reader", &key, &[]));
    reader.wait_for_stderr("waiting for");
    php.run("mq-writer.php", php_args(&key, &[]))
        .assert_success();
    reader
        .finish()
        .assert_success()
        .assert_stdout(expected.as_bytes());
    assert_no_sysv_objects(&key, b'T');

    let dir = temp_dir();
    let key = key_file(dir.path());
    let mut reader = php.spawn("mq-reader.php", php_args(&key, &[]));
    reader.wait_for_stderr("waiting for");
    our_run("writer", &key, &[]).assert_success();
    reader
        .finish()
        .assert_success()
        .assert_stdout(expected.as_bytes());
    assert_no_sysv_objects(&key, b'T');
}

/// Message types cross over: `msg_send`'s `$message_type` is what `mq-reader --type` selects on,
/// and `mq-writer --type` is what `msg_receive`'s `$desired_message_type` selects on.
#[test]
fn message_types_mean_the_same_on_both_sides() {
    let Some(php) = Php::find() else { return };
    let dir = temp_dir();
    let key = key_file(dir.path());
    for (kind, text) in [("2", "type two"), ("1", "type one")] {
        php.run(
            "mq-writer.php",
            php_args(&key, &os(&["--type", kind, "--message", text])),
        )
        .assert_success();
    }
    our_run("reader", &key, &os(&["--type", "1", "--keep"]))
        .assert_success()
        .assert_stdout(b"type one\n");
    our_run("reader", &key, &os(&["--type", "0"]))
        .assert_success()
        .assert_stdout(b"type two\n");
    assert_no_sysv_objects(&key, b'T');

    for (kind, text) in [("3", "type three"), ("4", "type four")] {
        our_run("writer", &key, &os(&["--type", kind, "--message", text])).assert_success();
    }
    php.run("mq-reader.php", php_args(&key, &os(&["--type", "4"])))
        .assert_success()
        .assert_stdout(b"type four\n");
    // PHP's reader removes the queue, type three still in it, as the blog's does.
    assert_no_sysv_objects(&key, b'T');
}
