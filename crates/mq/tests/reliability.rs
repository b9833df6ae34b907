//! What happens to `mq-reader` and `mq-writer` when things go wrong: a peer killed (SIGKILL) at
//! each stage of a load run, a key file that disappears while the reader waits, a queue or key
//! file another user put under our key, and a peer running as another user. The survivor must
//! say what went wrong within its timeout, nothing may be left in the kernel, and the next run
//! must work without cleaning up by hand. (A full queue is in `pairs.rs`.)
//!
//! Test names start with what they exercise: `fault_` (a peer killed, a file removed),
//! `hostile_` (objects and users in the way); `scripts/reliability.sh` counts them by prefix.

use std::path::{Path, PathBuf};
use std::process::Command;

use ipc_common::sysv;
use ipc_testkit::other_user::{self, NOBODY};
use ipc_testkit::{Finished, Proc, Signal, assert_no_sysv_objects, temp_dir};

const READER: &str = env!("CARGO_BIN_EXE_mq-reader");
const WRITER: &str = env!("CARGO_BIN_EXE_mq-writer");
const MESSAGE: &str = "Hello from Writer: Message Queue";

/// Messages in a run that is killed long before its end.
const ENDLESS: &str = "10000000";

/// One test's key file in its private directory; if the test fails half-way, the queue left
/// under its key goes too (only this test uses the key), so one red test does not leak into
/// others. Declared after the directory, so it drops first.
struct Keyed {
    dir: PathBuf,
    key_file: PathBuf,
}

impl Keyed {
    fn new(dir: &Path) -> Self {
        Keyed {
            dir: dir.to_path_buf(),
            key_file: ipc_testkit::key_file(dir),
        }
    }
}

impl Drop for Keyed {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        if let Ok(key) = sysv::ftok(&self.key_file, b'T')
            && let Ok(Some(id)) = sysv::msg_open(key)
        {
            let _ = sysv::msg_remove(id);
        }
    }
}

/// `program --key-file KEY ARGS`, waiting at most 5 s unless `args` say otherwise, without the
/// caller's `IPC_*` settings.
fn command(mut command: Command, key_file: &Path, args: &[&str]) -> Command {
    command.arg("--key-file").arg(key_file);
    ipc_testkit::bounded(command, args)
}

fn reader(key_file: &Path, args: &[&str]) -> Proc {
    let ours = ipc_testkit::ours(READER);
    Proc::spawn("mq-reader", &mut command(ours, key_file, args))
}

fn writer(key_file: &Path, args: &[&str]) -> Proc {
    let ours = ipc_testkit::ours(WRITER);
    Proc::spawn("mq-writer", &mut command(ours, key_file, args))
}

fn as_nobody(program: &str, key_file: &Path, args: &[&str]) -> Finished {
    let mut nobody = command(other_user::as_nobody(program), key_file, args);
    ipc_testkit::run("as nobody", &mut nobody, None)
}

fn line(text: &str) -> Vec<u8> {
    format!("{text}\n").into_bytes()
}

/// The number before `lost` in a summary line.
fn lost(summary: &Finished) -> u64 {
    let text = String::from_utf8_lossy(&summary.stdout);
    let (before, _) = text
        .split_once(" lost")
        .unwrap_or_else(|| panic!("no loss count in {text:?}"));
    before.rsplit(' ').next().unwrap().parse().unwrap()
}

/// The blog's message goes through a fresh pair keyed on `key_file`, which leaves nothing.
fn a_fresh_pair_works(key_file: &Path, args: &[&str]) {
    writer(key_file, args).finish().assert_success();
    reader(key_file, args)
        .finish()
        .assert_success()
        .assert_stdout(&line(MESSAGE));
    assert_no_sysv_objects(key_file, b'T');
}

#[test]
fn fault_writer_killed_mid_stream_the_reader_reports_the_loss_and_removes_the_queue() {
    let dir = temp_dir();
    let t = Keyed::new(dir.path());
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
    a_fresh_pair_works(&t.key_file, &[]);
}

#[test]
fn fault_reader_killed_mid_stream_the_writer_names_the_full_queue_and_removes_it() {
    let dir = temp_dir();
    let t = Keyed::new(dir.path());
    let mut read = reader(&t.key_file, &["--count", ENDLESS]);
    read.wait_for_stderr("waiting for queue");
    let write = writer(&t.key_file, &["--count", ENDLESS, "--timeout", "2"]);
    read.wait_for_stderr("first message arrived");
    read.signal(Signal::SIGKILL);
    read.finish();
    write
        .finish()
        .assert_failure(124, "waiting for room in queue 0x")
        .assert_failure(124, "msg_qbytes)");
    // The writer created the queue and its run failed: the queue, and its messages, are gone.
    assert_no_sysv_objects(&t.key_file, b'T');
    a_fresh_pair_works(&t.key_file, &[]);
}

#[test]
fn fault_reader_killed_while_waiting_leaves_nothing() {
    let dir = temp_dir();
    let t = Keyed::new(dir.path());
    let mut read = reader(&t.key_file, &[]);
    read.wait_for_stderr("waiting for queue");
    read.signal(Signal::SIGKILL);
    read.finish();
    assert_no_sysv_objects(&t.key_file, b'T');
    a_fresh_pair_works(&t.key_file, &[]);
}

#[test]
fn fault_a_key_file_removed_while_the_reader_waits_ends_the_wait_at_once() {
    let dir = temp_dir();
    let t = Keyed::new(dir.path());
    let mut read = reader(&t.key_file, &["--timeout", "20"]);
    read.wait_for_stderr("waiting for queue");
    std::fs::remove_file(&t.key_file).unwrap();
    read.finish()
        .assert_failure(
            1,
            "was removed while we waited for the object under its key",
        )
        .assert_stdout(b"");
    std::fs::write(&t.key_file, b"").unwrap();
    a_fresh_pair_works(&t.key_file, &[]);
}

#[test]
fn hostile_another_users_key_file_is_refused_unless_trusted() {
    if !other_user::available() {
        return;
    }
    let dir = temp_dir();
    let t = Keyed::new(dir.path());
    other_user::give_to_nobody(&t.key_file);
    let refused = format!("key file {}: belongs to uid {NOBODY}", t.key_file.display());
    writer(&t.key_file, &[])
        .finish()
        .assert_failure(1, &refused);
    reader(&t.key_file, &[])
        .finish()
        .assert_failure(1, &refused);
    assert_no_sysv_objects(&t.key_file, b'T');
    a_fresh_pair_works(&t.key_file, &["--trust-uid", "nobody"]);
}

#[test]
fn hostile_another_users_queue_under_our_key_is_refused_unless_trusted() {
    if !other_user::available() {
        return;
    }
    let dir = temp_dir();
    let t = Keyed::new(dir.path());
    other_user::open_dir(&t.dir);
    // nobody gets in first and creates the queue under our key, open to everyone.
    as_nobody(
        WRITER,
        &t.key_file,
        &["--mode", "0666", "--message", "planted"],
    )
    .assert_success();
    let refused = format!("belongs to uid {NOBODY}");
    writer(&t.key_file, &[])
        .finish()
        .assert_failure(1, &refused);
    reader(&t.key_file, &[])
        .finish()
        .assert_failure(1, &refused)
        .assert_stdout(b"");
    // Trusted, it is read (the planted message) and removed.
    reader(&t.key_file, &["--trust-uid", "nobody"])
        .finish()
        .assert_success()
        .assert_stdout(b"planted\n");
    assert_no_sysv_objects(&t.key_file, b'T');
}

#[test]
fn hostile_another_user_is_refused_by_default_and_admitted_with_the_mode() {
    if !other_user::available() {
        return;
    }
    let dir = temp_dir();
    let t = Keyed::new(dir.path());
    other_user::open_dir(&t.dir);

    writer(&t.key_file, &[]).finish().assert_success();
    as_nobody(READER, &t.key_file, &[]).assert_failure(1, "Permission denied");
    reader(&t.key_file, &[]).finish().assert_success();
    assert_no_sysv_objects(&t.key_file, b'T');

    // 0666 admits nobody; only the owner may remove the queue, and the message is printed
    // before that is attempted, so nothing is lost.
    writer(&t.key_file, &["--mode", "0666"])
        .finish()
        .assert_success();
    as_nobody(READER, &t.key_file, &[])
        .assert_failure(1, "only its owner or creator may remove it")
        .assert_stdout(&line(MESSAGE));
    let key = sysv::ftok(&t.key_file, b'T').unwrap();
    sysv::msg_remove(sysv::msg_open(key).unwrap().unwrap()).unwrap();

    writer(&t.key_file, &["--mode", "0666"])
        .finish()
        .assert_success();
    as_nobody(READER, &t.key_file, &["--keep"])
        .assert_success()
        .assert_stdout(&line(MESSAGE));
    sysv::msg_remove(sysv::msg_open(key).unwrap().unwrap()).unwrap();
    assert_no_sysv_objects(&t.key_file, b'T');
}
