//! What happens to `mq-reader` and `mq-writer` when things go wrong: a reader killed while it
//! waits (a peer killed mid load run is in the load crate's `tests/mq.rs`), a key file that disappears while the reader waits, a queue or key
//! file another user put under our key, and a peer running as another user. The survivor must
//! say what went wrong within its timeout, nothing may be left in the kernel, and the next run
//! must work without cleaning up by hand. (A full queue is in `pairs.rs`.) The scenarios `shm`
//! shares are in `ipc_testkit::scenarios`.
//!
//! Test names start with what they exercise: `fault_` (a peer killed, a file removed),
//! `hostile_` (objects and users in the way); `scripts/reliability.sh` counts them by prefix.

use ipc_common::sysv::{self, Key};
use ipc_testkit::scenarios::{self, SysvPair, line};
use ipc_testkit::{Signal, assert_no_sysv_objects, other_user, temp_dir};

const MQ: SysvPair = SysvPair {
    reader: env!("CARGO_BIN_EXE_mq-reader"),
    writer: env!("CARGO_BIN_EXE_mq-writer"),
    name: "mq",
    message: "Hello from Writer: Message Queue",
    remove_leftovers,
};

/// After a failed test: the queue left under its key.
fn remove_leftovers(key: Key) {
    if let Ok(Some(id)) = sysv::msg_open(key) {
        let _ = sysv::msg_remove(id);
    }
}

#[test]
fn fault_reader_killed_while_waiting_leaves_nothing() {
    let dir = temp_dir();
    let t = MQ.keyed(dir.path());
    let mut read = t.reader(&[]);
    read.wait_for_stderr("waiting for queue");
    read.signal(Signal::SIGKILL);
    read.finish();
    assert_no_sysv_objects(&t.key_file, b'T');
    t.a_fresh_pair_works(&[]);
}

#[test]
fn fault_a_key_file_removed_while_the_reader_waits_ends_the_wait_at_once() {
    let dir = temp_dir();
    scenarios::key_file_removed_while_the_reader_waits(&MQ, dir.path(), "waiting for queue");
}

#[test]
fn hostile_another_users_key_file_is_refused_unless_trusted() {
    let dir = temp_dir();
    scenarios::another_users_key_file_is_refused_unless_trusted(&MQ, dir.path());
}

#[test]
fn hostile_another_users_queue_under_our_key_is_refused_unless_trusted() {
    let dir = temp_dir();
    scenarios::another_users_object_under_our_key_is_refused_unless_trusted(&MQ, dir.path());
}

#[test]
fn hostile_another_user_is_refused_by_default_and_admitted_with_the_mode() {
    if !other_user::available() {
        return;
    }
    let dir = temp_dir();
    let t = MQ.keyed(dir.path());
    scenarios::another_user_is_refused_by_default(&t);

    // 0666 admits nobody; only the owner may remove the queue. The read succeeded, so the run
    // does too, with a warning that says why the queue stays.
    t.writer(&["--mode", "0666"]).finish().assert_success();
    let read = t.reader_as_nobody(&[]);
    read.assert_success().assert_stdout(&line(MQ.message));
    assert!(
        read.stderr
            .contains("warning: the message was read, but queue")
            && read
                .stderr
                .contains("only its owner (uid 0), its creator (uid 0) or root"),
        "{read:?}"
    );
    let key = sysv::ftok(&t.key_file, b'T').unwrap();
    sysv::msg_remove(sysv::msg_open(key).unwrap().unwrap()).unwrap();

    t.writer(&["--mode", "0666"]).finish().assert_success();
    t.reader_as_nobody(&["--keep"])
        .assert_success()
        .assert_stdout(&line(MQ.message));
    sysv::msg_remove(sysv::msg_open(key).unwrap().unwrap()).unwrap();
    assert_no_sysv_objects(&t.key_file, b'T');
}

/// Another user's queue that its mode keeps us out of (0600): the error says what admits us.
#[test]
fn hostile_eacces_names_mode_and_trust_uid() {
    scenarios::eacces_names_mode_and_trust_uid(&MQ, temp_dir().path());
}

/// A reader started with stdout closed (`mq-reader >&-`) takes nothing: Rust's runtime puts
/// /dev/null on a closed fd 1, so the message would be taken off the queue and printed into
/// nothing, with exit 0. It stays queued for a reader that can print it.
#[test]
fn fault_reader_with_stdout_closed_takes_nothing() {
    let dir = temp_dir();
    let key = ipc_testkit::key_file(dir.path());
    let key_arg = key.to_str().expect("a UTF-8 temp path");
    let mut write = ipc_testkit::bounded(ipc_testkit::ours(MQ.writer), &["--message", "keep me"]);
    write.args(["--key-file", key_arg]);
    ipc_testkit::run("mq-writer", &mut write, None).assert_success();

    let mut closed = ipc_testkit::ours("/bin/sh");
    closed.args(["-c", "exec \"$0\" \"$@\" >&-", MQ.reader, "--timeout", "1"]);
    closed.args(["--key-file", key_arg]);
    ipc_testkit::run("mq-reader >&-", &mut closed, None).assert_failure(1, "stdout is closed");

    let mut read = ipc_testkit::bounded(ipc_testkit::ours(MQ.reader), &["--key-file", key_arg]);
    ipc_testkit::run("mq-reader", &mut read, None)
        .assert_success()
        .assert_stdout(&line("keep me"));
    assert_no_sysv_objects(&key, b'T');
}
