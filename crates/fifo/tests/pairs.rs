//! The real `fifo-writer` and `fifo-reader`, run against each other in both start orders, on a
//! FIFO in a private temp dir.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use ipc_testkit::{Finished, Proc, Signal, bounded, ours, temp_dir};

const MESSAGE: &[u8] = b"Hello from Sender: Named Pipe";

/// `bin PATH --timeout 5 EXTRA...`, unless EXTRA sets its own timeout.
fn command(bin: &str, path: &Path, extra: &[&str]) -> Command {
    let mut command = ours(bin);
    command.arg(path);
    bounded(command, extra)
}

/// One side by name, for tests that do the same to both.
fn side(name: &str, path: &Path) -> Command {
    match name {
        "reader" => reader(path, &[]),
        _ => writer(path, &[]),
    }
}

fn writer(path: &Path, extra: &[&str]) -> Command {
    command(env!("CARGO_BIN_EXE_fifo-writer"), path, extra)
}

fn reader(path: &Path, extra: &[&str]) -> Command {
    command(env!("CARGO_BIN_EXE_fifo-reader"), path, extra)
}

fn fifo_path(dir: &Path) -> PathBuf {
    dir.join("fifo")
}

/// The reader first (it creates the FIFO), then the writer; returns both results.
fn reader_first(path: &Path, writer_args: &[&str], reader_args: &[&str]) -> (Finished, Finished) {
    let mut read = Proc::spawn("reader", &mut reader(path, reader_args));
    read.wait_for_stderr("waiting for a writer on");
    let wrote = ipc_testkit::run("writer", &mut writer(path, writer_args), None);
    (wrote, read.finish())
}

fn with_newline(bytes: &[u8]) -> Vec<u8> {
    let mut expected = bytes.to_vec();
    expected.push(b'\n');
    expected
}

fn exists(path: &Path) -> bool {
    path.symlink_metadata().is_ok()
}

#[test]
fn reader_first_gets_the_blog_message_and_removes_the_fifo_it_created() {
    let dir = temp_dir();
    let path = fifo_path(dir.path());
    let (wrote, read) = reader_first(&path, &[], &[]);
    wrote.assert_success();
    assert!(
        wrote.stderr.contains("using the existing FIFO"),
        "{wrote:?}"
    );
    read.assert_success().assert_stdout(&with_newline(MESSAGE));
    assert!(read.stderr.contains("removed FIFO"), "{read:?}");
    assert!(!exists(&path));
}

#[test]
fn writer_first_waits_for_a_reader_and_removes_the_fifo_it_created() {
    let dir = temp_dir();
    let path = fifo_path(dir.path());
    let mut write = Proc::spawn("writer", &mut writer(&path, &[]));
    write.wait_for_stderr(&format!("waiting for a reader on {}", path.display()));
    let read = ipc_testkit::run("reader", &mut reader(&path, &[]), None);
    read.assert_success().assert_stdout(&with_newline(MESSAGE));
    let wrote = write.finish();
    wrote.assert_success();
    assert!(wrote.stderr.contains("removed FIFO"), "{wrote:?}");
    assert!(!exists(&path));
}

#[test]
fn binary_empty_and_8_mib_payloads_arrive_intact() {
    let dir = temp_dir();
    let path = fifo_path(dir.path());
    let binary: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let big: Vec<u8> = (0..8 << 20).map(|i: u32| (i % 251) as u8).collect();
    for (name, payload) in [("binary", binary), ("big", big)] {
        let file = dir.path().join(name);
        std::fs::write(&file, &payload).unwrap();
        let file_arg = file.to_str().unwrap();
        let (wrote, read) = reader_first(&path, &["--message-file", file_arg], &[]);
        wrote.assert_success();
        read.assert_success().assert_stdout(&with_newline(&payload));
    }
    let (wrote, read) = reader_first(&path, &["--message", ""], &[]);
    wrote.assert_success();
    read.assert_success().assert_stdout(b"\n");
    assert!(!exists(&path));
}

#[test]
fn an_existing_fifo_is_used_and_left_as_it_was() {
    let dir = temp_dir();
    let path = fifo_path(dir.path());
    nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    let (wrote, read) = reader_first(&path, &[], &["--mode", "0666"]);
    wrote.assert_success();
    read.assert_success().assert_stdout(&with_newline(MESSAGE));
    let meta = path.symlink_metadata().expect("the FIFO is still there");
    assert!(meta.file_type().is_fifo());
    assert_eq!(meta.permissions().mode() & 0o777, 0o640);
}

#[test]
fn a_regular_file_or_symlink_at_the_path_is_refused_and_untouched() {
    let dir = temp_dir();
    let file = dir.path().join("precious");
    std::fs::write(&file, b"keep me").unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&file, &link).unwrap();
    let dangling = dir.path().join("dangling");
    let missing = dir.path().join("missing");
    std::os::unix::fs::symlink(&missing, &dangling).unwrap();
    for (path, held) in [
        (&file, "regular file"),
        (&link, "symlink"),
        (&dangling, "symlink"),
    ] {
        for command in [&mut writer(path, &[]), &mut reader(path, &[])] {
            let done = ipc_testkit::run("fifo", command, None);
            done.assert_failure(1, &format!("holds a {held}, not a FIFO; left untouched"));
            assert!(done.stdout.is_empty(), "{done:?}");
        }
    }
    assert_eq!(std::fs::read(&file).unwrap(), b"keep me");
    assert_eq!(std::fs::read_link(&link).unwrap(), file);
    assert_eq!(std::fs::read_link(&dangling).unwrap(), missing);
    assert!(!exists(&missing));
}

#[test]
fn a_reader_without_writer_times_out_naming_what_it_waited_for() {
    let dir = temp_dir();
    let path = fifo_path(dir.path());
    let done = ipc_testkit::run("reader", &mut reader(&path, &["--timeout", "0.3"]), None);
    done.assert_failure(
        124,
        &format!(
            "timed out after 0.3s waiting for a writer on {}",
            path.display()
        ),
    );
    assert!(done.stdout.is_empty());
    assert!(!exists(&path));
}

#[test]
fn a_writer_without_reader_times_out_naming_what_it_waited_for() {
    let dir = temp_dir();
    let path = fifo_path(dir.path());
    let done = ipc_testkit::run("writer", &mut writer(&path, &["--timeout", "0.3"]), None);
    done.assert_failure(
        124,
        &format!(
            "timed out after 0.3s waiting for a reader on {}",
            path.display()
        ),
    );
    assert!(!exists(&path));
}

#[test]
fn sigterm_while_waiting_removes_the_fifo_it_created() {
    let dir = temp_dir();
    let path = fifo_path(dir.path());
    for (name, waiting) in [
        ("reader", "waiting for a writer"),
        ("writer", "waiting for a reader"),
    ] {
        let mut proc = Proc::spawn(name, &mut side(name, &path));
        proc.wait_for_stderr(waiting);
        assert!(path.symlink_metadata().unwrap().file_type().is_fifo());
        proc.signal(Signal::SIGTERM);
        proc.finish().assert_failure(143, "interrupted by SIGTERM");
        assert!(!exists(&path));
    }
}

#[test]
fn mode_is_exact_whatever_the_umask() {
    let dir = temp_dir();
    let path = fifo_path(dir.path());
    for mode in [0o644, 0o666, 0o600] {
        let mode_arg = format!("{mode:04o}");
        let mut read = Proc::spawn("reader", &mut reader(&path, &["--mode", &mode_arg]));
        read.wait_for_stderr("waiting for a writer");
        let meta = path.symlink_metadata().unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, mode, "--mode {mode_arg}");
        ipc_testkit::run("writer", &mut writer(&path, &[]), None).assert_success();
        read.finish()
            .assert_success()
            .assert_stdout(&with_newline(MESSAGE));
    }
}

#[test]
fn a_fifo_left_by_a_killed_run_does_not_break_the_next_run() {
    let dir = temp_dir();
    let path = fifo_path(dir.path());
    for (name, waiting) in [
        ("reader", "waiting for a writer"),
        ("writer", "waiting for a reader"),
    ] {
        let mut killed = Proc::spawn(name, &mut side(name, &path));
        killed.wait_for_stderr(waiting);
        killed.signal(Signal::SIGKILL);
        assert_eq!(killed.finish().status.code(), None, "killed by a signal");
        assert!(path.symlink_metadata().unwrap().file_type().is_fifo());

        let (wrote, read) = reader_first(&path, &[], &[]);
        wrote.assert_success();
        read.assert_success().assert_stdout(&with_newline(MESSAGE));

        let mut write = Proc::spawn("writer", &mut writer(&path, &[]));
        write.wait_for_stderr("waiting for a reader");
        let read = ipc_testkit::run("reader", &mut reader(&path, &[]), None);
        read.assert_success().assert_stdout(&with_newline(MESSAGE));
        write.finish().assert_success();

        // Neither run created it, so it stays; clear it so the next killed run creates its own.
        assert!(path.symlink_metadata().unwrap().file_type().is_fifo());
        std::fs::remove_file(&path).unwrap();
    }
}
