//! `ipc-load fifo-reader` and `ipc-load fifo-writer`: load runs through a FIFO in a private temp
//! dir, and what happens when a peer is killed (SIGKILL) in the middle of one. The survivor must
//! say what went wrong within its timeout, and the next run of the blog's pair (`fifo-reader`,
//! `fifo-writer`, found next to `ipc-load`) must work without cleaning up by hand.
//!
//! Test names start with what they exercise: `fault_` (a peer killed); `scripts/reliability.sh`
//! counts them by prefix.

mod common;

use common::{IPC_LOAD, example};

use std::io::Write;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::process::Command;

use ipc_testkit::{Finished, Proc, Signal, bounded, ours, temp_dir};

const MESSAGE: &[u8] = b"Hello from Sender: Named Pipe";

/// Messages in a run that is killed long before its end.
const ENDLESS: &str = "10000000";

/// `ipc-load SIDE PATH --timeout 5 EXTRA...`, unless EXTRA sets its own timeout.
fn load(side: &str, path: &Path, extra: &[&str]) -> Command {
    let mut command = ours(IPC_LOAD);
    command.arg(side).arg(path);
    bounded(command, extra)
}

fn reader(path: &Path, extra: &[&str]) -> Proc {
    Proc::spawn("fifo-reader", &mut load("fifo-reader", path, extra))
}

fn writer(path: &Path, extra: &[&str]) -> Proc {
    Proc::spawn("fifo-writer", &mut load("fifo-writer", path, extra))
}

/// The reader first (it creates the FIFO), then the writer; returns both results.
fn reader_first(path: &Path, writer_args: &[&str], reader_args: &[&str]) -> (Finished, Finished) {
    let mut read = reader(path, reader_args);
    read.wait_for_stderr("waiting for a writer on");
    let wrote = writer(path, writer_args).finish();
    (wrote, read.finish())
}

fn is_fifo(path: &Path) -> bool {
    path.symlink_metadata()
        .is_ok_and(|meta| meta.file_type().is_fifo())
}

fn with_newline(bytes: &[u8]) -> Vec<u8> {
    [bytes, b"\n"].concat()
}

/// The blog's message goes through a fresh pair of the example binaries on `path`.
fn a_fresh_pair_works(path: &Path) {
    let mut command = ours(example("fifo", "fifo-reader"));
    command.arg(path);
    let mut read = Proc::spawn("fifo-reader", &mut bounded(command, &[]));
    read.wait_for_stderr("waiting for a writer");
    let mut command = ours(example("fifo", "fifo-writer"));
    command.arg(path);
    ipc_testkit::run("fifo-writer", &mut bounded(command, &[]), None).assert_success();
    read.finish()
        .assert_success()
        .assert_stdout(&with_newline(MESSAGE));
}

/// An endless run on `path` (the reader first, as the blog's order), once the first message has
/// arrived: `(reader, writer)`, either ready to be killed.
fn endless_run(path: &Path) -> (Proc, Proc) {
    let mut read = reader(path, &["--count", ENDLESS]);
    read.wait_for_stderr("waiting for a writer");
    let write = writer(path, &["--count", ENDLESS]);
    read.wait_for_stderr("first message arrived");
    (read, write)
}

#[test]
fn count_mode_accounts_for_10_000_messages() {
    let dir = temp_dir();
    let path = dir.path().join("fifo");
    let (wrote, read) = reader_first(&path, &["--count", "10000"], &["--count", "10000"]);
    wrote.assert_success();
    read.assert_success().assert_stdout(
        b"received 10000 of 10000 messages (400000 bytes): \
          0 lost, 0 duplicated, 0 reordered, 0 corrupted\n",
    );
    assert!(!is_fifo(&path), "the reader removed the FIFO it created");
}

#[test]
fn count_mode_fails_when_messages_are_missing() {
    let dir = temp_dir();
    let path = dir.path().join("fifo");
    let (wrote, read) = reader_first(&path, &["--count", "7"], &["--count", "10"]);
    wrote.assert_success();
    read.assert_failure(1, "3 lost").assert_stdout(
        b"received 7 of 10 messages (280 bytes): 3 lost, 0 duplicated, 0 reordered, 0 corrupted\n",
    );
}

#[test]
fn a_stream_cut_mid_message_is_reported_as_a_truncated_frame() {
    let dir = temp_dir();
    let path = dir.path().join("fifo");
    let mut read = reader(&path, &["--count", "3"]);
    read.wait_for_stderr("waiting for a writer");
    // What a writer killed mid-write leaves: one whole frame, then the start of the next.
    let mut stream = Vec::new();
    ipc_common::seq::frame_into(&mut stream, 0, MESSAGE);
    ipc_common::seq::frame_into(&mut stream, 1, MESSAGE);
    stream.truncate(stream.len() - 5);
    let mut fifo = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    fifo.write_all(&stream).unwrap();
    drop(fifo);
    read.finish()
        .assert_failure(1, "truncated frame: the stream ended 39 bytes into a message")
        .assert_stdout(
            b"received 1 of 3 messages (40 bytes): 2 lost, 0 duplicated, 0 reordered, 0 corrupted\n",
        );
    assert!(!path.exists());
}

#[test]
fn fault_writer_killed_mid_stream_the_reader_reports_what_is_missing() {
    let dir = temp_dir();
    let path = dir.path().join("fifo");
    let (read, write) = endless_run(&path);
    write.signal(Signal::SIGKILL);
    write.finish();
    // End of file comes at once (the kernel closed the killed writer's end); whether it cut a
    // frame depends on where the writer was.
    let read = read.finish();
    assert_eq!(read.status.code(), Some(1), "{read:?}");
    assert!(
        read.stderr.contains("truncated frame") || read.stderr.contains(" lost"),
        "{read:?}"
    );
    assert!(!is_fifo(&path), "the reader removed the FIFO it created");
    a_fresh_pair_works(&path);
}

#[test]
fn fault_reader_killed_mid_stream_the_writer_says_the_reader_left() {
    let dir = temp_dir();
    let path = dir.path().join("fifo");
    let (read, write) = endless_run(&path);
    read.signal(Signal::SIGKILL);
    read.finish();
    write
        .finish()
        .assert_failure(1, "the reader closed its end before reading everything");
    // The killed reader created the FIFO and could not remove it: the next pair uses it.
    assert!(is_fifo(&path));
    a_fresh_pair_works(&path);
}

/// A reader's summary line is its result: with stdout closed it takes nothing, so the writer's
/// messages stay for a reader that can report them.
#[test]
fn fault_reader_with_stdout_closed_takes_nothing() {
    let dir = temp_dir();
    let path = dir.path().join("load.fifo");
    let mut closed = ours("/bin/sh");
    closed.args(["-c", "exec \"$0\" \"$@\" >&-", IPC_LOAD, "fifo-reader"]);
    closed.arg(&path).args(["--count", "1", "--timeout", "5"]);
    ipc_testkit::run("ipc-load fifo-reader >&-", &mut closed, None)
        .assert_failure(1, "stdout is closed");
    assert!(!path.exists(), "nothing created");
}
