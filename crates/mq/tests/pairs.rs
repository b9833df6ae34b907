//! The real `mq-writer` and `mq-reader`, run against each other on a queue keyed on a key file in
//! a private temp dir; every test ends by checking that no SysV object is left on its key.

use std::path::Path;
use std::process::Command;

use ipc_common::sysv;
use ipc_testkit::{Finished, Proc, assert_no_sysv_objects, bounded, key_file, ours, temp_dir};

const MESSAGE: &[u8] = b"Hello from Writer: Message Queue";
const SERIALIZED: &[u8] = b"s:32:\"Hello from Writer: Message Queue\";";

/// `bin --key-file KEY --timeout 5 EXTRA...`, unless EXTRA sets its own timeout.
fn command(bin: &str, key: &Path, extra: &[&str]) -> Command {
    let mut command = ours(bin);
    command.arg("--key-file").arg(key);
    bounded(command, extra)
}

fn writer(key: &Path, extra: &[&str]) -> Command {
    command(env!("CARGO_BIN_EXE_mq-writer"), key, extra)
}

fn reader(key: &Path, extra: &[&str]) -> Command {
    command(env!("CARGO_BIN_EXE_mq-reader"), key, extra)
}

fn write(key: &Path, extra: &[&str]) -> Finished {
    ipc_testkit::run("writer", &mut writer(key, extra), None)
}

fn read(key: &Path, extra: &[&str]) -> Finished {
    ipc_testkit::run("reader", &mut reader(key, extra), None)
}

fn with_newline(bytes: &[u8]) -> Vec<u8> {
    let mut expected = bytes.to_vec();
    expected.push(b'\n');
    expected
}

fn queue_exists(key: &Path) -> bool {
    let key = sysv::ftok(key, b'T').unwrap();
    sysv::msg_open(key).unwrap().is_some()
}

fn proc_limit(name: &str) -> usize {
    let text = std::fs::read_to_string(format!("/proc/sys/kernel/{name}")).unwrap();
    text.trim().parse().unwrap()
}

#[test]
fn writer_first_sends_the_blog_message_php_serialized_and_leaves_the_key_file() {
    let dir = temp_dir();
    // The writer creates a missing key file and leaves it for the reader.
    let key = dir.path().join("key");
    let wrote = write(&key, &[]);
    wrote.assert_success().assert_stdout(b"");
    assert!(wrote.stderr.contains("created key file"), "{wrote:?}");
    assert!(queue_exists(&key));
    read(&key, &["--raw"])
        .assert_success()
        .assert_stdout(&with_newline(SERIALIZED));
    assert!(key.is_file());
    assert_no_sysv_objects(&key, b'T');
}

#[test]
fn reader_first_waits_for_the_queue_and_echoes_the_message() {
    let dir = temp_dir();
    let key = key_file(dir.path());
    let mut reading = Proc::spawn("reader", &mut reader(&key, &[]));
    reading.wait_for_stderr("waiting for queue");
    write(&key, &[]).assert_success();
    let done = reading.finish();
    done.assert_success().assert_stdout(&with_newline(MESSAGE));
    assert!(
        done.stderr
            .contains("received 40 bytes of type 1 from queue 0x"),
        "{done:?}"
    );
    assert_no_sysv_objects(&key, b'T');
}

/// The reader says it waits only when it does: with the message already queued, it takes it
/// without a word about waiting (a wait is still announced when there is one:
/// `the_desired_type_selects_the_message`).
#[test]
fn a_reader_that_finds_the_message_does_not_say_it_waits() {
    let dir = temp_dir();
    let key = key_file(dir.path());
    write(&key, &[]).assert_success();
    let done = read(&key, &[]);
    done.assert_success().assert_stdout(&with_newline(MESSAGE));
    assert!(!done.stderr.contains("waiting"), "{done:?}");
    assert!(
        done.stderr
            .contains("received 40 bytes of type 1 from queue 0x"),
        "{done:?}"
    );
    assert_no_sysv_objects(&key, b'T');
}

#[test]
fn raw_on_both_sides_carries_any_bytes() {
    let dir = temp_dir();
    let key = key_file(dir.path());
    // Every byte value, NULs at both ends.
    let binary: Vec<u8> = [0].into_iter().chain(0..=255).chain([0]).collect();
    let file = dir.path().join("binary");
    std::fs::write(&file, &binary).unwrap();
    write(&key, &["--raw", "--message-file", file.to_str().unwrap()]).assert_success();
    read(&key, &["--raw"])
        .assert_success()
        .assert_stdout(&with_newline(&binary));
    write(&key, &["--raw", "--message", "plain text"]).assert_success();
    read(&key, &["--raw"])
        .assert_success()
        .assert_stdout(b"plain text\n");
    assert_no_sysv_objects(&key, b'T');
}

/// One value the writer can send: its flags, its bytes on the queue, what `echo` and
/// `json_encode` print.
struct Case {
    writer: &'static [&'static str],
    serialized: &'static [u8],
    echoed: &'static [u8],
    json: &'static [u8],
}

const CASES: &[Case] = &[
    Case {
        writer: &["--int", "42"],
        serialized: b"i:42;",
        echoed: b"42",
        json: b"42",
    },
    Case {
        writer: &["--int", "-7"],
        serialized: b"i:-7;",
        echoed: b"-7",
        json: b"-7",
    },
    Case {
        writer: &["--float", "2.5"],
        serialized: b"d:2.5;",
        echoed: b"2.5",
        json: b"2.5",
    },
    Case {
        writer: &["--float", "0.1"],
        serialized: b"d:0.1;",
        echoed: b"0.1",
        json: b"0.1",
    },
    Case {
        writer: &["--float", "-0.25"],
        serialized: b"d:-0.25;",
        echoed: b"-0.25",
        json: b"-0.25",
    },
    Case {
        writer: &["--bool", "true"],
        serialized: b"b:1;",
        echoed: b"1",
        json: b"true",
    },
    Case {
        writer: &["--bool", "false"],
        serialized: b"b:0;",
        echoed: b"",
        json: b"false",
    },
    Case {
        writer: &["--null"],
        serialized: b"N;",
        echoed: b"",
        json: b"null",
    },
    Case {
        writer: &[],
        serialized: SERIALIZED,
        echoed: MESSAGE,
        json: b"\"Hello from Writer: Message Queue\"",
    },
];

#[test]
fn typed_values_travel_in_php_bytes_and_print_as_echo_and_json() {
    let dir = temp_dir();
    let key = key_file(dir.path());
    for case in CASES {
        for (reader_args, expected) in [
            (&["--raw"][..], case.serialized),
            (&[][..], case.echoed),
            (&["--format", "json"][..], case.json),
        ] {
            write(&key, case.writer).assert_success();
            let done = read(&key, reader_args);
            assert!(
                done.status.success() && done.stdout == with_newline(expected),
                "writer {:?}, reader {reader_args:?}: expected {:?}, got {done:?}",
                case.writer,
                String::from_utf8_lossy(expected)
            );
        }
    }
    assert_no_sysv_objects(&key, b'T');
}

#[test]
fn a_message_that_is_not_php_serialized_is_a_clear_error_and_is_not_taken() {
    let dir = temp_dir();
    let key = key_file(dir.path());
    for garbage in ["not serialized", "s:99:\"short\";", "a:1:{i:0;"] {
        write(&key, &["--raw", "--message", garbage]).assert_success();
        write(&key, &["--message", "next"]).assert_success();
        let done = read(&key, &[]);
        done.assert_failure(1, "is not PHP-serialized: ");
        done.assert_failure(1, "nothing was taken, the message and the queue stay");
        assert_eq!(done.stdout, b"", "{done:?}");
        assert!(!done.stderr.contains("panicked"), "{done:?}");
        // Looked at, not taken (MSG_COPY): --raw takes it, then the next one is read.
        read(&key, &["--raw", "--keep"])
            .assert_success()
            .assert_stdout(&with_newline(garbage.as_bytes()));
        read(&key, &[]).assert_success().assert_stdout(b"next\n");
    }
    assert_no_sysv_objects(&key, b'T');
}

#[test]
fn the_largest_message_passes_and_one_byte_more_is_refused_up_front() {
    let dir = temp_dir();
    let key = key_file(dir.path());
    let msgmax = proc_limit("msgmax");
    let largest = dir.path().join("largest");
    std::fs::write(&largest, vec![b'x'; msgmax]).unwrap();
    write(
        &key,
        &["--raw", "--message-file", largest.to_str().unwrap()],
    )
    .assert_success();
    read(&key, &["--raw"])
        .assert_success()
        .assert_stdout(&with_newline(&vec![b'x'; msgmax]));

    let too_big = dir.path().join("too-big");
    std::fs::write(&too_big, vec![b'x'; msgmax + 1]).unwrap();
    let limit = format!("over msgmax, the kernel's limit of {msgmax} bytes per message");
    write(
        &key,
        &["--raw", "--message-file", too_big.to_str().unwrap()],
    )
    .assert_failure(1, &limit);
    // Serialized, the same bytes are longer still, and the error says why and what avoids it.
    write(&key, &["--message-file", largest.to_str().unwrap()])
        .assert_failure(1, &limit)
        .assert_failure(
            1,
            &format!(
                "PHP serialization added {} bytes",
                6 + msgmax.to_string().len()
            ),
        )
        .assert_failure(1, "--raw sends the bytes as they are");
    assert_no_sysv_objects(&key, b'T');

    // Refused before anything is created: not even a missing key file.
    let missing = dir.path().join("missing-key");
    write(
        &missing,
        &["--raw", "--message-file", too_big.to_str().unwrap()],
    )
    .assert_failure(1, &limit);
    assert!(!missing.exists());
}

#[test]
fn a_message_over_the_receive_limit_fails_and_stays_queued() {
    let dir = temp_dir();
    let key = key_file(dir.path());
    write(&key, &["--raw", "--message", &"y".repeat(100)]).assert_success();
    read(&key, &["--raw", "--max-size", "50"])
        .assert_failure(1, "longer than the receive limit of 50 bytes");
    read(&key, &["--raw", "--max-size", "100"])
        .assert_success()
        .assert_stdout(&with_newline(&[b'y'; 100]));
    assert_no_sysv_objects(&key, b'T');
}

#[test]
fn a_full_queue_times_out_naming_the_queue_and_its_limit() {
    let dir = temp_dir();
    let key = key_file(dir.path());
    let qbytes = proc_limit("msgmnb");
    let size = proc_limit("msgmax").min(qbytes);
    let file = dir.path().join("chunk");
    std::fs::write(&file, vec![b'z'; size]).unwrap();
    let args = ["--raw", "--message-file", file.to_str().unwrap()];
    for _ in 0..qbytes / size {
        write(&key, &args).assert_success();
    }
    let mut one_more = args.to_vec();
    one_more.extend(["--timeout", "0.3"]);
    let done = write(&key, &one_more);
    done.assert_failure(124, "timed out after 0.3s waiting for room in queue 0x");
    assert!(
        done.stderr
            .contains(&format!("of its limit of {qbytes} bytes, msg_qbytes")),
        "{done:?}"
    );
    // The queue is the first writer's, kept for the reader: the reader removes it once it has
    // taken the last message, not before.
    for _ in 0..qbytes / size {
        read(&key, &["--raw", "--quiet"])
            .assert_success()
            .assert_stdout(&with_newline(&vec![b'z'; size]));
    }
    assert_no_sysv_objects(&key, b'T');
}

#[test]
fn a_message_over_the_queues_capacity_is_refused_up_front_naming_it() {
    let dir = temp_dir();
    let key = key_file(dir.path());
    write(&key, &["--raw", "--message", "first"]).assert_success();
    // Shrink the queue the first writer left (root may lower msg_qbytes): 64 bytes hold the
    // queued 5 but could never hold a 100-byte message, so waiting for room would be pointless.
    let id = sysv::msg_open(sysv::ftok(&key, b'T').unwrap())
        .unwrap()
        .expect("the first writer's queue");
    sysv::msg_set_max_bytes(id, 64).unwrap();
    let too_big = "x".repeat(100);
    write(&key, &["--raw", "--message", &too_big])
        .assert_failure(1, "send a 100-byte message to queue 0x")
        .assert_failure(1, "over its capacity, msg_qbytes, of 64 bytes");
    // Nothing was sent: the reader gets the first message alone, and removes the queue.
    read(&key, &["--raw", "--quiet"])
        .assert_success()
        .assert_stdout(b"first\n");
    assert_no_sysv_objects(&key, b'T');
}

#[test]
fn a_reader_without_queue_times_out_naming_what_it_waited_for() {
    let dir = temp_dir();
    let key = key_file(dir.path());
    let done = read(&key, &["--timeout", "0.3"]);
    done.assert_failure(124, "timed out after 0.3s waiting for queue 0x");
    assert!(done.stdout.is_empty());
    let missing = dir.path().join("missing-key");
    read(&missing, &["--timeout", "0.3"]).assert_failure(
        124,
        &format!("waiting for key file {} to appear", missing.display()),
    );
    assert_no_sysv_objects(&key, b'T');
}

#[test]
fn keep_leaves_the_queue_for_the_next_reader() {
    let dir = temp_dir();
    let key = key_file(dir.path());
    write(&key, &["--raw", "--message", "first"]).assert_success();
    write(&key, &["--raw", "--message", "second"]).assert_success();
    read(&key, &["--raw", "--keep"])
        .assert_success()
        .assert_stdout(b"first\n");
    assert!(queue_exists(&key));
    read(&key, &["--raw"])
        .assert_success()
        .assert_stdout(b"second\n");
    assert_no_sysv_objects(&key, b'T');
}

#[test]
fn the_desired_type_selects_the_message() {
    let dir = temp_dir();
    let key = key_file(dir.path());
    for (mtype, text) in [("3", "three"), ("1", "one"), ("2", "two")] {
        write(&key, &["--raw", "--type", mtype, "--message", text]).assert_success();
    }
    read(&key, &["--raw", "--keep", "--type", "2"])
        .assert_success()
        .assert_stdout(b"two\n");
    // Negative: the lowest type up to 3.
    read(&key, &["--raw", "--keep", "--type", "-3"])
        .assert_success()
        .assert_stdout(b"one\n");
    read(
        &key,
        &["--raw", "--keep", "--type", "5", "--timeout", "0.3"],
    )
    .assert_failure(124, "waiting for a message of type 5 on queue 0x");
    read(&key, &["--raw"])
        .assert_success()
        .assert_stdout(b"three\n");
    assert_no_sysv_objects(&key, b'T');
}

#[test]
fn version_and_usage_name_the_binary() {
    for (bin, name) in [
        (env!("CARGO_BIN_EXE_mq-writer"), "mq-writer"),
        (env!("CARGO_BIN_EXE_mq-reader"), "mq-reader"),
    ] {
        let version = ipc_testkit::run(name, ours(bin).arg("--version"), None);
        version
            .assert_success()
            .assert_stdout(format!("{name} {}\n", env!("CARGO_PKG_VERSION")).as_bytes());
        let usage = ipc_testkit::run(name, ours(bin).arg("stray"), None);
        usage.assert_failure(2, &format!("Usage: {name} [OPTIONS]"));
    }
}

/// A value that starts with `-` is taken as shm-writer takes it: `--float -INF` is PHP's -INF.
#[test]
fn negative_infinity_is_a_float_like_any_other() {
    let dir = temp_dir();
    let key = key_file(dir.path());
    write(&key, &["--float", "-INF"]).assert_success();
    read(&key, &[]).assert_success().assert_stdout(b"-INF\n");
    assert_no_sysv_objects(&key, b'T');
}

/// A message the reader cannot print as asked (JSON has no INF) is not taken: it and the
/// queue with the rest stay, and another format reads it.
#[test]
fn a_message_json_cannot_say_is_left_queued() {
    let dir = temp_dir();
    let key = key_file(dir.path());
    write(&key, &["--float", "INF"]).assert_success();
    write(&key, &["--int", "7"]).assert_success();
    read(&key, &["--format", "json"])
        .assert_failure(1, "JSON")
        .assert_failure(1, "nothing was taken")
        .assert_stdout(b"");
    read(&key, &[]).assert_success().assert_stdout(b"INF\n");
    read(&key, &["--format", "json"])
        .assert_success()
        .assert_stdout(b"7\n");
    assert_no_sysv_objects(&key, b'T');
}

/// The look before taking follows msgrcv's choice of type: a message of another type that
/// cannot be printed is not in the way, and one of the chosen type is not taken.
#[test]
fn the_look_before_taking_follows_the_desired_type() {
    let dir = temp_dir();
    let key = key_file(dir.path());
    write(&key, &["--raw", "--type", "3", "--message", "garbage"]).assert_success();
    write(&key, &["--type", "2", "--message", "two"]).assert_success();
    read(&key, &["--type", "-3"])
        .assert_success()
        .assert_stdout(b"two\n");
    read(&key, &["--type", "3"])
        .assert_failure(1, "nothing was taken")
        .assert_stdout(b"");
    read(&key, &["--raw", "--type", "3"])
        .assert_success()
        .assert_stdout(b"garbage\n");
    assert_no_sysv_objects(&key, b'T');
}

/// A writer in an IPC namespace of its own (a container that does not share the reader's, as
/// `docker compose up --no-deps mq-writer` starts it) sends where no reader can see: its key
/// file says so, and the reader's timeout names the cause instead of only the wait.
#[test]
fn a_writer_in_another_ipc_namespace_is_named() {
    if !ipc_testkit::run("unshare", ours("unshare").args(["--ipc", "true"]), None)
        .status
        .success()
    {
        println!("skipping: cannot unshare(CLONE_NEWIPC) here (needs root)");
        return;
    }
    let dir = temp_dir();
    let key = dir.path().join("key");
    let mut elsewhere = ours("unshare");
    elsewhere
        .args(["--ipc", "--", env!("CARGO_BIN_EXE_mq-writer"), "--key-file"])
        .arg(&key);
    ipc_testkit::run("mq-writer", &mut bounded(elsewhere, &[]), None).assert_success();
    read(&key, &["--timeout", "0.3"])
        .assert_failure(124, "was created by a process in IPC namespace ipc:[")
        .assert_failure(124, "SysV objects do not cross IPC namespaces");
    let warned = write(&key, &[]);
    warned.assert_success();
    assert!(
        warned.stderr.contains("warning: key file") && warned.stderr.contains("IPC namespace"),
        "{warned:?}"
    );
    read(&key, &[])
        .assert_success()
        .assert_stdout(&with_newline(MESSAGE));
    assert_no_sysv_objects(&key, b'T');
}

/// `--format json` writes what PHP's `json_encode($v)` writes (slashes and non-ASCII escaped);
/// `--format json-unescaped` what `json_encode($v, JSON_UNESCAPED_SLASHES |
/// JSON_UNESCAPED_UNICODE)` writes.
#[test]
fn json_matches_json_encode_with_default_and_unescaped_flags() {
    let dir = temp_dir();
    let key = key_file(dir.path());
    for (format, printed) in [
        ("json", "\"a\\/\\u00e9\\u2028\"\n"),
        ("json-unescaped", "\"a/é\\u2028\"\n"),
    ] {
        write(&key, &["--message", "a/é\u{2028}"]).assert_success();
        read(&key, &["--format", format])
            .assert_success()
            .assert_stdout(printed.as_bytes());
    }
    assert_no_sysv_objects(&key, b'T');
}
