//! `ipc-load mq-reader` and `ipc-load mq-writer`: load runs through a SysV message queue keyed on
//! a key file in a private temp dir (one writer, eight at once, some messages missing), and what
//! happens when a peer is killed (SIGKILL) in the middle of one: the survivor says what went
//! wrong within its timeout, nothing is left in the kernel, and the next run of the blog's pair
//! (`mq-writer`, `mq-reader`, found next to `ipc-load`) works without cleaning up by hand.
//!
//! Test names start with what they exercise: `fault_` (a peer killed); `scripts/reliability.sh`
//! counts them by prefix.

mod common;

use common::{IPC_LOAD, example};

use std::path::Path;
use std::process::Command;

use ipc_common::sysv::{self, Key};
use ipc_testkit::scenarios::{ENDLESS, SysvPair, lost};
use ipc_testkit::{
    Finished, Proc, Signal, assert_no_sysv_objects, bounded, key_file, ours, temp_dir,
};

/// The blog's pair, for the run after a fault.
fn blog_pair() -> SysvPair {
    SysvPair {
        reader: example("mq", "mq-reader"),
        writer: example("mq", "mq-writer"),
        name: "mq",
        message: "Hello from Writer: Message Queue",
        remove_leftovers,
    }
}

/// After a failed test: the queue left under its key.
fn remove_leftovers(key: Key) {
    if let Ok(Some(id)) = sysv::msg_open(key) {
        let _ = sysv::msg_remove(id);
    }
}

/// `ipc-load SIDE --key-file KEY --timeout 5 EXTRA...`, unless EXTRA sets its own timeout.
fn load(side: &str, key: &Path, extra: &[&str]) -> Command {
    let mut command = ours(IPC_LOAD);
    command.arg(side).arg("--key-file").arg(key);
    bounded(command, extra)
}

fn reader(key: &Path, extra: &[&str]) -> Proc {
    Proc::spawn("mq-reader", &mut load("mq-reader", key, extra))
}

fn writer(key: &Path, extra: &[&str]) -> Proc {
    Proc::spawn("mq-writer", &mut load("mq-writer", key, extra))
}

fn write(key: &Path, extra: &[&str]) -> Finished {
    writer(key, extra).finish()
}

fn read(key: &Path, extra: &[&str]) -> Finished {
    reader(key, extra).finish()
}

fn proc_limit(name: &str) -> usize {
    let text = std::fs::read_to_string(format!("/proc/sys/kernel/{name}")).unwrap();
    text.trim().parse().unwrap()
}

#[test]
fn count_mode_accounts_for_10_000_messages() {
    let dir = temp_dir();
    let key = key_file(dir.path());
    let mut reading = reader(&key, &["--count", "10000", "--timeout", "15"]);
    reading.wait_for_stderr("waiting for queue");
    write(&key, &["--count", "10000", "--timeout", "15"]).assert_success();
    reading.finish().assert_success().assert_stdout(
        b"received 10000 of 10000 messages (430000 bytes): \
          0 lost, 0 duplicated, 0 reordered, 0 corrupted\n",
    );
    assert_no_sysv_objects(&key, b'T');
}

#[test]
fn count_mode_reports_what_never_arrived() {
    let dir = temp_dir();
    let key = key_file(dir.path());
    write(&key, &["--count", "7"]).assert_success();
    read(&key, &["--count", "10", "--timeout", "0.5"])
        .assert_failure(124, "receive message 8 of 10: timed out")
        .assert_stdout(
            b"received 7 of 10 messages (301 bytes): 3 lost, 0 duplicated, 0 reordered, 0 corrupted\n",
        );
    assert_no_sysv_objects(&key, b'T');
}

#[test]
fn eight_concurrent_writers_are_all_accounted_for() {
    let dir = temp_dir();
    let key = key_file(dir.path());
    let mut reading = reader(
        &key,
        &["--count", "10000", "--any-order", "--timeout", "15"],
    );
    reading.wait_for_stderr("waiting for queue");
    let writers: Vec<Proc> = (0..8)
        .map(|i| {
            let first = (i * 1250).to_string();
            writer(
                &key,
                &["--count", "1250", "--first-seq", &first, "--timeout", "15"],
            )
        })
        .collect();
    for proc in writers {
        proc.finish().assert_success();
    }
    let done = reading.finish();
    done.assert_success();
    let summary = String::from_utf8(done.stdout).unwrap();
    assert!(
        summary
            .starts_with("received 10000 of 10000 messages (430000 bytes): 0 lost, 0 duplicated, ")
            && summary.ends_with(" reordered, 0 corrupted\n"),
        "{summary:?}"
    );
    assert_no_sysv_objects(&key, b'T');
}

/// A number that sizes an allocation is bounded: a usage error, never a capacity-overflow panic.
#[test]
fn an_absurd_count_is_a_usage_error_not_a_panic() {
    let dir = temp_dir();
    let key = key_file(dir.path());
    let got = read(&key, &["--count", "18446744073709551615"]);
    assert_eq!(got.status.code(), Some(2), "{got:?}");
    assert!(!got.stderr.contains("panicked"), "{got:?}");
    assert_no_sysv_objects(&key, b'T');
}

/// A writer that fails after creating the queue removes it only if nothing but its own
/// messages can be in it: another writer's message keeps it.
#[test]
fn a_failed_writer_leaves_its_queue_when_another_writers_message_is_in_it() {
    let dir = temp_dir();
    let key = key_file(dir.path());
    // Messages of `size` bytes (a stamp and the chunk): `fit` of them fill the queue up to a
    // gap too small for the next one but big enough for someone else's small message.
    let qbytes = proc_limit("msgmnb");
    let size = proc_limit("msgmax").min(qbytes / 2 - 100);
    let fit = qbytes / size;
    let gap = qbytes - fit * size;
    if !(16..size).contains(&gap) {
        println!("skipping: msgmnb {qbytes} and msgmax leave no usable gap ({gap} bytes)");
        return;
    }
    let chunk = dir.path().join("chunk");
    std::fs::write(&chunk, vec![b'z'; size - ipc_common::seq::STAMP_LEN]).unwrap();
    let chunk = chunk.to_str().unwrap();
    let mut first = writer(
        &key,
        &["--message-file", chunk, "--count", "1000", "--timeout", "2"],
    );
    first.wait_for_stderr("created queue");
    let id = sysv::msg_open(sysv::ftok(&key, b'T').unwrap())
        .unwrap()
        .expect("the writer's queue");
    // Removes the queue if the test fails half-way, so that it cannot leak into other tests.
    struct Remove(sysv::MsqId);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = sysv::msg_remove(self.0);
        }
    }
    let _remove = Remove(id);
    let full = ipc_common::runtime::wait::Deadline::after(
        ipc_common::runtime::wait::Timeout::from_duration(std::time::Duration::from_secs(10)),
    );
    ipc_common::runtime::wait::retry(&full, "the writer to fill the queue", || {
        Ok((sysv::msg_stat(id)?.messages == fit as u64).then_some(()))
    })
    .unwrap();
    sysv::MsgBuf::new()
        .send(id, 9, b"someone's", sysv::IPC_NOWAIT)
        .unwrap();
    first
        .finish()
        .assert_failure(124, "waiting for room")
        .assert_failure(124, "left queue")
        .assert_failure(124, "not all sent by this run");
    assert_eq!(sysv::msg_stat(id).unwrap().messages, fit as u64 + 1);
    // The other writer's message is still there.
    let mut buf = sysv::MsgBuf::new();
    let (mtype, text) = buf.receive(id, 64, 9, sysv::IPC_NOWAIT).unwrap();
    assert_eq!((mtype, text), (9, &b"someone's"[..]));
    sysv::msg_remove(id).unwrap();
    assert_no_sysv_objects(&key, b'T');
}

/// The writer is killed after the first message of an endless run: the reader (`--timeout 2`)
/// gives up, reports a loss, and removes the queue; the blog's pair then works.
#[test]
fn fault_writer_killed_mid_stream_the_reader_reports_the_loss_and_removes_the_queue() {
    let dir = temp_dir();
    let pair = blog_pair();
    let t = pair.keyed(dir.path());
    let mut read = reader(&t.key_file, &["--count", ENDLESS, "--timeout", "2"]);
    read.wait_for_stderr("waiting for queue");
    let write = writer(&t.key_file, &["--count", ENDLESS]);
    read.wait_for_stderr("first message arrived");
    write.signal(Signal::SIGKILL);
    write.finish();
    let read = read.finish();
    read.assert_failure(124, "timed out after 2s waiting for a message on queue 0x");
    assert!(lost(&read) > 0, "{read:?}");
    assert_no_sysv_objects(&t.key_file, b'T');
    t.a_fresh_pair_works(&[]);
}

/// The reader is killed after the first message of an endless run: the writer (`--timeout 2`)
/// names the full queue and, having created it, removes it with its messages.
#[test]
fn fault_reader_killed_mid_stream_the_writer_names_the_full_queue_and_removes_it() {
    let dir = temp_dir();
    let pair = blog_pair();
    let t = pair.keyed(dir.path());
    let mut read = reader(&t.key_file, &["--count", ENDLESS]);
    read.wait_for_stderr("waiting for queue");
    let write = writer(&t.key_file, &["--count", ENDLESS, "--timeout", "2"]);
    read.wait_for_stderr("first message arrived");
    read.signal(Signal::SIGKILL);
    read.finish();
    let write = write.finish();
    for needle in ["waiting for room in queue 0x", "msg_qbytes)"] {
        write.assert_failure(124, needle);
    }
    assert_no_sysv_objects(&t.key_file, b'T');
    t.a_fresh_pair_works(&[]);
}
