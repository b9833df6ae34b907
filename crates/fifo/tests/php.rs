//! Interop with real PHP: the blog's named-pipe writer and reader (`tests/php/fifo-*.php`)
//! against our `fifo-reader` and `fifo-writer`, in both directions, with the blog's message,
//! UTF-8, binary, empty and the largest payloads. Skipped (one line) without `php` outside CI.

use std::ffi::OsString;
use std::path::Path;

use ipc_testkit::ours;
use ipc_testkit::php::{Php, payloads};
use ipc_testkit::{Proc, temp_dir};

const BLOG_MESSAGE: &str = "Hello from Sender: Named Pipe";

/// `fifo-reader PATH --timeout 5` / `fifo-writer PATH --timeout 5 EXTRA...`
fn our(side: &str, path: &Path, extra: Vec<OsString>) -> Proc {
    let binary = match side {
        "reader" => env!("CARGO_BIN_EXE_fifo-reader"),
        _ => env!("CARGO_BIN_EXE_fifo-writer"),
    };
    let mut command = ours(binary);
    command.arg(path).args(["--timeout", "5"]).args(extra);
    Proc::spawn(&format!("fifo-{side}"), &mut command)
}

fn php_args(path: &Path, extra: Vec<OsString>) -> Vec<OsString> {
    let mut args: Vec<OsString> =
        vec!["--path".into(), path.into(), "--timeout".into(), "5".into()];
    args.extend(extra);
    args
}

/// PHP's writer into our reader: our reader makes the FIFO and waits; the PHP writer finds it.
/// Our reader reads to end of file, so the largest case goes well past the pipe's 64 KiB.
#[test]
fn php_writer_to_our_reader() {
    let Some(php) = Php::find() else { return };
    for payload in payloads(BLOG_MESSAGE, 1 << 20) {
        println!("case: {}", payload.name);
        let dir = temp_dir();
        let path = dir.path().join("fifo");
        let mut reader = our("reader", &path, vec![]);
        reader.wait_for_stderr("waiting for a writer on");
        let writer = php.run(
            "fifo-writer.php",
            php_args(&path, payload.sender_args(&dir.path().join("message"))),
        );
        writer.assert_success().assert_stdout(b"");
        reader
            .finish()
            .assert_success()
            .assert_stdout(&payload.printed());
        assert!(!path.exists(), "our reader made the FIFO, so it removes it");
    }
}

/// Our writer into PHP's reader, which reads at most the blog's 1024 bytes
/// (`fread($pipe, 1024)`): the largest case fills exactly that.
#[test]
fn our_writer_to_php_reader() {
    let Some(php) = Php::find() else { return };
    for payload in payloads(BLOG_MESSAGE, 1024) {
        println!("case: {}", payload.name);
        let dir = temp_dir();
        let path = dir.path().join("fifo");
        let mut reader = php.spawn("fifo-reader.php", php_args(&path, vec![]));
        reader.wait_for_stderr("waiting for a writer on");
        let writer = our(
            "writer",
            &path,
            payload.sender_args(&dir.path().join("message")),
        )
        .finish();
        writer.assert_success().assert_stdout(b"");
        reader
            .finish()
            .assert_success()
            .assert_stdout(&payload.printed());
        assert!(
            !path.exists(),
            "PHP's reader made the FIFO, so it removes it"
        );
    }
}

/// The blog's writer starts first and makes the FIFO (`posix_mkfifo`); our reader uses that
/// FIFO and leaves it to its creator.
#[test]
fn our_reader_uses_the_fifo_php_made() {
    let Some(php) = Php::find() else { return };
    let dir = temp_dir();
    let path = dir.path().join("fifo");
    let mut writer = php.spawn("fifo-writer.php", php_args(&path, vec![]));
    writer.wait_for_stderr("waiting for a reader on");
    let reader = our("reader", &path, vec![]).finish();
    reader
        .assert_success()
        .assert_stdout(format!("{BLOG_MESSAGE}\n").as_bytes());
    writer.finish().assert_success();
    assert!(
        !path.exists(),
        "PHP's writer made the FIFO, so it removes it"
    );
}
