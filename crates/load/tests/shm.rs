//! `ipc-load shm-reader` and `ipc-load shm-writer`: the hand-off of many stamped messages through
//! one PHP variable of a SysV segment keyed on a key file in a private temp dir, and what happens
//! when a peer is killed (SIGKILL) in the middle of one or left a message behind: the survivor
//! says what went wrong within its timeout, nothing is left in the kernel, and the next run of
//! the blog's pair (`shm-writer`, `shm-reader`, found next to `ipc-load`) works without cleaning
//! up by hand.
//!
//! Test names start with what they exercise: `fault_` (a peer killed); `scripts/reliability.sh`
//! counts them by prefix.

mod common;

use common::{IPC_LOAD, example};

use std::path::Path;
use std::process::Command;

use ipc_common::sysv::{self, Key};
use ipc_testkit::scenarios::{ENDLESS, SysvPair, line, lost};
use ipc_testkit::{
    Finished, Proc, Signal, assert_no_sysv_objects, bounded, key_file, ours, temp_dir,
};

/// The blog's pair, for the run after a fault.
fn blog_pair() -> SysvPair {
    SysvPair {
        reader: example("shm", "shm-reader"),
        writer: example("shm", "shm-writer"),
        name: "shm",
        message: "Hello from Writer: Shared Memory",
        remove_leftovers,
    }
}

/// After a failed test: the segment and the lock's semaphore set left under its key.
fn remove_leftovers(key: Key) {
    if let Ok(Some(id)) = sysv::shm_open(key) {
        let _ = sysv::shm_remove(id);
    }
    if let Ok(Some(id)) = sysv::sem_open(key) {
        let _ = sysv::sem_remove(id);
    }
}

/// `ipc-load SIDE --key-file KEY --timeout 5 EXTRA...`, unless EXTRA sets its own timeout.
fn load(side: &str, key: &Path, extra: &[&str]) -> Command {
    let mut command = ours(IPC_LOAD);
    command.arg(side).arg("--key-file").arg(key);
    bounded(command, extra)
}

fn reader(key: &Path, extra: &[&str]) -> Proc {
    Proc::spawn("shm-reader", &mut load("shm-reader", key, extra))
}

fn writer(key: &Path, extra: &[&str]) -> Proc {
    Proc::spawn("shm-writer", &mut load("shm-writer", key, extra))
}

fn write(key: &Path, extra: &[&str]) -> Finished {
    writer(key, extra).finish()
}

fn read(key: &Path, extra: &[&str]) -> Finished {
    reader(key, extra).finish()
}

#[test]
fn count_hands_every_message_over_one_variable() {
    let dir = temp_dir();
    let key_file = key_file(dir.path());
    let mut take = reader(&key_file, &["--count", "20"]);
    take.wait_for_stderr("waiting for");
    write(&key_file, &["--count", "20", "--quiet"]).assert_success();
    take.finish().assert_success().assert_stdout(
        b"received 20 of 20 messages (860 bytes): 0 lost, 0 duplicated, 0 reordered, 0 corrupted\n",
    );
    assert_no_sysv_objects(&key_file, b'T');
}

/// A number that sizes an allocation is bounded: a usage error, never a capacity-overflow panic.
#[test]
fn an_absurd_count_is_a_usage_error_not_a_panic() {
    let dir = temp_dir();
    let key_file = key_file(dir.path());
    let absurd = ["--count", "18446744073709551615"];
    for got in [read(&key_file, &absurd), write(&key_file, &absurd)] {
        assert_eq!(got.status.code(), Some(2), "{got:?}");
        assert!(!got.stderr.contains("panicked"), "{got:?}");
    }
    assert_no_sysv_objects(&key_file, b'T');
}

/// The hand-off takes variables out of PHP's store: shmop has none, and a store too small for
/// PHP's header cannot be one. Both are usage errors.
#[test]
fn a_hand_off_needs_a_variable_store() {
    let dir = temp_dir();
    let key_file = dir.path().join("key");
    for (side, args) in [
        ("reader", &["--count", "3", "--api", "shmop"][..]),
        ("writer", &["--count", "3", "--api", "shmop"]),
        ("writer", &["--count", "3", "--size", "39"]),
    ] {
        let got = if side == "writer" {
            write(&key_file, args)
        } else {
            read(&key_file, args)
        };
        assert_eq!(got.status.code(), Some(2), "{side} {args:?}: {got:?}");
    }
    assert!(!key_file.exists());
}

#[test]
fn fault_writer_killed_mid_hand_off_the_reader_reports_the_loss_and_removes_the_segment() {
    let dir = temp_dir();
    let pair = blog_pair();
    let t = pair.keyed(dir.path());
    let mut read = reader(&t.key_file, &["--count", ENDLESS, "--timeout", "2"]);
    read.wait_for_stderr("waiting for");
    let write = writer(&t.key_file, &["--count", ENDLESS]);
    read.wait_for_stderr("first message arrived");
    // Perhaps while it holds the lock: SEM_UNDO gives it back either way.
    write.signal(Signal::SIGKILL);
    write.finish();
    let read = read.finish();
    read.assert_failure(124, "timed out after 2s waiting for message");
    assert!(lost(&read) > 0, "{read:?}");
    assert_no_sysv_objects(&t.key_file, b'T');
    t.a_fresh_pair_works(&[]);
}

#[test]
fn fault_reader_killed_mid_hand_off_the_writer_gives_up_and_removes_its_segment() {
    let dir = temp_dir();
    let pair = blog_pair();
    let t = pair.keyed(dir.path());
    let mut read = reader(&t.key_file, &["--count", ENDLESS]);
    read.wait_for_stderr("waiting for");
    let write = writer(&t.key_file, &["--count", ENDLESS, "--timeout", "2"]);
    read.wait_for_stderr("first message arrived");
    read.signal(Signal::SIGKILL);
    read.finish();
    write
        .finish()
        .assert_failure(124, "waiting for the reader to take variable 1");
    assert_no_sysv_objects(&t.key_file, b'T');
    t.a_fresh_pair_works(&[]);
}

#[test]
fn fault_a_message_left_by_an_interrupted_hand_off_is_not_taken_for_ours() {
    let dir = temp_dir();
    let pair = blog_pair();
    let t = pair.keyed(dir.path());
    let perfect = line(
        "received 20 of 20 messages (860 bytes): 0 lost, 0 duplicated, 0 reordered, 0 corrupted",
    );
    // What a hand-off whose reader was killed leaves in the variable: a stamped message. The
    // next run's writer clears it if it comes first, its reader discards it if it does.
    for writer_first in [true, false] {
        t.writer(&["--message", "0000000007|left over"])
            .finish()
            .assert_success();
        let (write, read) = if writer_first {
            let mut write = writer(&t.key_file, &["--count", "20"]);
            write.wait_for_stderr("removed a message left in variable 1");
            (write, reader(&t.key_file, &["--count", "20"]))
        } else {
            let mut read = reader(&t.key_file, &["--count", "20"]);
            read.wait_for_stderr("left in variable 1 by an earlier run");
            (writer(&t.key_file, &["--count", "20"]), read)
        };
        write.finish().assert_success();
        read.finish().assert_success().assert_stdout(&perfect);
        assert_no_sysv_objects(&t.key_file, b'T');
    }
}
