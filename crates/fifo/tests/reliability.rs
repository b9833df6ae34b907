//! What happens to `fifo-reader` and `fifo-writer` when things go wrong: a FIFO another user put
//! at our path, a peer running as another user, a reader killed with our bytes in the pipe. (A
//! peer killed while waiting is in `pairs.rs`; one killed mid load run in the load crate's
//! `tests/fifo.rs`.) The survivor must say what
//! went wrong within its timeout, and the next run must work without cleaning up by hand.
//!
//! Test names start with what they exercise: `fault_` (a peer killed), `hostile_` (files and
//! users in the way), `contract_`; `scripts/reliability.sh` counts them by prefix.

use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::process::Command;

use fifo::MESSAGE;
use ipc_testkit::other_user::{self, NOBODY};
use ipc_testkit::{Proc, Signal, temp_dir};

const READER: &str = env!("CARGO_BIN_EXE_fifo-reader");
const WRITER: &str = env!("CARGO_BIN_EXE_fifo-writer");

/// `program PATH ARGS`, waiting at most 5 s unless `args` say otherwise, without the caller's
/// `IPC_*` settings.
fn command(program: &str, path: &Path, args: &[&str]) -> Command {
    let mut command = ipc_testkit::ours(program);
    command.arg(path);
    ipc_testkit::bounded(command, args)
}

fn reader(path: &Path, args: &[&str]) -> Proc {
    Proc::spawn("fifo-reader", &mut command(READER, path, args))
}

fn writer(path: &Path, args: &[&str]) -> Proc {
    Proc::spawn("fifo-writer", &mut command(WRITER, path, args))
}

fn is_fifo(path: &Path) -> bool {
    path.symlink_metadata()
        .is_ok_and(|meta| meta.file_type().is_fifo())
}

/// The blog's message goes through a fresh pair on `path`.
fn a_fresh_pair_works(path: &Path, args: &[&str]) {
    let mut read = reader(path, args);
    read.wait_for_stderr("waiting for a writer");
    writer(path, args).finish().assert_success();
    read.finish()
        .assert_success()
        .assert_stdout(format!("{MESSAGE}\n").as_bytes());
}

#[test]
fn hostile_another_users_fifo_is_refused_unless_trusted() {
    if !other_user::available() {
        return;
    }
    let dir = temp_dir();
    let path = dir.path().join("fifo");
    nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o666)).unwrap();
    other_user::give_to_nobody(&path);
    let refused = format!("FIFO {}: belongs to uid {NOBODY}", path.display());
    reader(&path, &[]).finish().assert_failure(1, &refused);
    writer(&path, &[]).finish().assert_failure(1, &refused);
    assert!(is_fifo(&path), "left untouched");
    a_fresh_pair_works(&path, &["--trust-uid", "nobody"]);
}

#[test]
fn hostile_another_user_is_refused_by_default_and_admitted_with_the_mode() {
    if !other_user::available() {
        return;
    }
    let dir = temp_dir();
    other_user::open_dir(dir.path());
    let path = dir.path().join("fifo");
    let as_nobody = || {
        let mut command = other_user::as_nobody(WRITER);
        command.arg(&path).args(["--timeout", "5"]);
        ipc_testkit::run("fifo-writer as nobody", &mut command, None)
    };

    let mut read = reader(&path, &["--timeout", "2"]);
    read.wait_for_stderr("waiting for a writer");
    as_nobody()
        .assert_failure(1, "Permission denied")
        .assert_failure(1, "--mode 0660 for its group or --mode 0666 for everyone");
    read.finish().assert_failure(124, "waiting for a writer");

    let mut read = reader(&path, &["--mode", "0666"]);
    read.wait_for_stderr("waiting for a writer");
    as_nobody().assert_success();
    read.finish()
        .assert_success()
        .assert_stdout(format!("{MESSAGE}\n").as_bytes());
}

/// Bytes written into the pipe are not yet delivered: a reader stopped before reading them and
/// then killed must make the writer fail, not exit 0 (promise 1).
#[test]
fn contract_a_reader_killed_with_our_bytes_in_the_pipe_fails_the_writer() {
    let dir = temp_dir();
    let path = dir.path().join("fifo");
    let mut read = reader(&path, &[]);
    read.wait_for_stderr("waiting for a writer");
    read.signal(Signal::SIGSTOP);
    let mut write = writer(&path, &[]);
    write.wait_for_stderr(&format!("wrote {} bytes", MESSAGE.len()));
    read.signal(Signal::SIGKILL);
    write.finish().assert_failure(
        1,
        &format!(
            "the reader closed its end with {} of our bytes unread; they are lost",
            MESSAGE.len()
        ),
    );
    let _ = read.finish();
}

/// Every progress line and the payload line go out in one `write(2)` each, so the lines of
/// processes sharing a terminal or a log (`docker-compose up`) never interleave mid-line.
/// Checked with strace; skipped (visibly) where strace is missing.
#[test]
fn contract_each_line_is_one_write() {
    if Command::new("strace").arg("-V").output().is_err() {
        ipc_testkit::skipped(
            "skipping one-write test: strace not installed (apt-get install -y strace)",
        );
        return;
    }
    let dir = temp_dir();
    let path = dir.path().join("fifo");
    let log = dir.path().join("strace.log");
    let mut traced = ipc_testkit::ours("strace");
    traced
        .args([
            "-f",
            "-qq",
            "-e",
            "trace=write",
            "-e",
            "signal=none",
            "-s",
            "4096",
            "-o",
        ])
        .arg(&log)
        .arg(READER)
        .arg(&path)
        .args(["--timeout", "5"]);
    let mut read = Proc::spawn("strace fifo-reader", &mut traced);
    read.wait_for_stderr("waiting for a writer");
    writer(&path, &[]).finish().assert_success();
    read.finish()
        .assert_success()
        .assert_stdout(format!("{MESSAGE}\n").as_bytes());
    let trace = std::fs::read_to_string(&log).unwrap();
    let mut lines = 0;
    for call in trace
        .lines()
        .filter(|l| l.contains("write(1,") || l.contains("write(2,"))
    {
        // `write(2, "created FIFO /tmp/x (mode 0600)\n", 33) = 33`: one line, ending the call.
        let text = call.split('"').nth(1).unwrap_or_default();
        assert!(
            text.ends_with("\\n") && text.matches("\\n").count() == 1,
            "not one whole line in one write: {call}"
        );
        lines += 1;
    }
    assert!(lines >= 4, "too few writes traced ({lines}):\n{trace}");
}
