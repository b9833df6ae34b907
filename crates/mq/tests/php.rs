//! Interop with real PHP: the blog's message-queue writer and reader (`tests/php/mq-*.php`,
//! `msg_send`/`msg_receive`) against our `mq-reader` and `mq-writer`, in both directions:
//! serialized (PHP's default) and raw (`$serialize = false`, our `--raw`), with the blog's
//! message, UTF-8, binary, empty and the largest message a queue takes (msgmax), and with ints,
//! floats, bools and null printed as PHP's `echo` prints them. Each test has its own key file and
//! leaves no queue behind. Skipped (one line) without `php` outside CI.

use ipc_common::sysv::{self, Key};
use ipc_testkit::php::{Php, payloads};
use ipc_testkit::scenarios::{self, PhpPeers, PhpValue, SysvPair, os};
use ipc_testkit::{Proc, assert_no_sysv_objects, key_file, temp_dir};

const MQ: SysvPair = SysvPair {
    reader: env!("CARGO_BIN_EXE_mq-reader"),
    writer: env!("CARGO_BIN_EXE_mq-writer"),
    name: "mq",
    message: "Hello from Writer: Message Queue",
    remove_leftovers,
};

const PEERS: PhpPeers = PhpPeers {
    writer: "mq-writer.php",
    reader: "mq-reader.php",
    common: &["--timeout", "5"],
};

/// After a failed test: the queue left under its key.
fn remove_leftovers(key: Key) {
    if let Ok(Some(id)) = sysv::msg_open(key) {
        let _ = sysv::msg_remove(id);
    }
}

fn msgmax() -> usize {
    sysv::msgmax().expect("read /proc/sys/kernel/msgmax")
}

/// The longest string whose serialized form `s:N:"...";` fits one message of `limit` bytes.
fn largest_serialized_string(limit: usize) -> usize {
    (0..limit)
        .rev()
        .find(|n| n + n.to_string().len() + 6 <= limit)
        .expect("a limit of at least 7 bytes")
}

/// PHP's `msg_send` (serialized), then our reader unserializes and prints.
#[test]
fn php_writer_to_our_reader() {
    let Some(php) = Php::find() else { return };
    let largest = largest_serialized_string(msgmax());
    scenarios::php_writer_to_our_reader(&MQ, &php, &PEERS, largest);
}

/// Our writer serializes as `msg_send` does; PHP's `msg_receive` unserializes it.
#[test]
fn our_writer_to_php_reader() {
    let Some(php) = Php::find() else { return };
    let limit = msgmax();
    let largest = largest_serialized_string(limit);
    let max_size = ["--max-size", &limit.to_string()];
    scenarios::our_writer_to_php_reader(&MQ, &php, &PEERS, largest, &max_size);
}

/// `msg_send(..., $serialize = false)` and our `--raw`: the bytes as they are, up to msgmax.
#[test]
fn raw_messages_both_ways() {
    let Some(php) = Php::find() else { return };
    let limit = msgmax();
    for payload in payloads(MQ.message, limit) {
        println!("case: {}", payload.name);
        let dir = temp_dir();
        let key = key_file(dir.path());
        let mut message = payload.sender_args(&dir.path().join("message"));
        message.push("--raw".into());
        php.run("mq-writer.php", PEERS.args(&key, &message))
            .assert_success();
        MQ.our_run("reader", &key, &os(&["--raw"]))
            .assert_success()
            .assert_stdout(&payload.printed());
        assert_no_sysv_objects(&key, b'T');

        MQ.our_run("writer", &key, &message).assert_success();
        let reader_args = os(&["--raw", "--max-size", &limit.to_string()]);
        php.run("mq-reader.php", PEERS.args(&key, &reader_args))
            .assert_success()
            .assert_stdout(&payload.printed());
        assert_no_sysv_objects(&key, b'T');
    }
}

/// Non-string values: what the writer flag is, what `echo` prints, what `json_encode` prints.
const VALUES: &[PhpValue] = &[
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
    scenarios::php_values_read_by_our_reader(&MQ, &php, &PEERS, VALUES);
}

/// Our writer's ints, floats, bools and null, as PHP's `msg_receive` unserializes and echoes
/// them.
#[test]
fn our_values_read_by_php() {
    let Some(php) = Php::find() else { return };
    scenarios::our_values_read_by_php(&MQ, &php, &PEERS, VALUES, &[]);
}

/// Reader first, either way round: our reader waits for PHP's queue, PHP's reader for ours.
#[test]
fn readers_first_wait_for_the_writer() {
    let Some(php) = Php::find() else { return };
    let expected = format!("{}\n", MQ.message);

    let dir = temp_dir();
    let key = key_file(dir.path());
    let mut reader = Proc::spawn("mq-reader", &mut MQ.our_command("reader", &key, &[]));
    reader.wait_for_stderr("waiting for");
    php.run("mq-writer.php", PEERS.args(&key, &[]))
        .assert_success();
    reader
        .finish()
        .assert_success()
        .assert_stdout(expected.as_bytes());
    assert_no_sysv_objects(&key, b'T');

    let dir = temp_dir();
    let key = key_file(dir.path());
    let mut reader = php.spawn("mq-reader.php", PEERS.args(&key, &[]));
    reader.wait_for_stderr("waiting for");
    MQ.our_run("writer", &key, &[]).assert_success();
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
            PEERS.args(&key, &os(&["--type", kind, "--message", text])),
        )
        .assert_success();
    }
    MQ.our_run("reader", &key, &os(&["--type", "1", "--keep"]))
        .assert_success()
        .assert_stdout(b"type one\n");
    MQ.our_run("reader", &key, &os(&["--type", "0"]))
        .assert_success()
        .assert_stdout(b"type two\n");
    assert_no_sysv_objects(&key, b'T');

    for (kind, text) in [("3", "type three"), ("4", "type four")] {
        MQ.our_run("writer", &key, &os(&["--type", kind, "--message", text]))
            .assert_success();
    }
    php.run("mq-reader.php", PEERS.args(&key, &os(&["--type", "4"])))
        .assert_success()
        .assert_stdout(b"type four\n");
    // PHP's reader removes the queue, type three still in it, as the blog's does.
    assert_no_sysv_objects(&key, b'T');
}
