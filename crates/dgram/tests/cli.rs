//! The command line as a user meets it (issue 9's list): the binary's own name in `--version`
//! and usage errors, environment variables that parse as people write them and never beat an
//! option typed on the command line, a message that starts with `-`, and a message input that
//! is bounded in size and in time.

use std::time::{Duration, Instant};

use ipc_testkit::scenarios::SocketPair;
use ipc_testkit::{Proc, ours, temp_dir};

const DGRAM: SocketPair = SocketPair {
    reader: env!("CARGO_BIN_EXE_dgram-reader"),
    writer: env!("CARGO_BIN_EXE_dgram-writer"),
    name: "dgram",
    scheme: "udg",
};

#[test]
fn version_and_usage_name_the_binary() {
    ipc_testkit::assert_names_itself(DGRAM.reader, "dgram-reader");
    ipc_testkit::assert_names_itself(DGRAM.writer, "dgram-writer");
}

#[test]
fn environment_parses_as_people_write_it_and_options_win() {
    let dir = temp_dir();
    let url = DGRAM.url(&dir.path().join("s.sock"));
    let file = dir.path().join("message");
    std::fs::write(&file, b"from the file").unwrap();
    for quiet in ["1", "", "yes", "0"] {
        let (reader, _) = DGRAM.listening(&[&url]);
        let mut command = ours(DGRAM.writer);
        command
            .env("IPC_QUIET", quiet)
            .env("IPC_MESSAGE", "from the environment")
            .args([&url, "--timeout", "5", "--message-file"])
            .arg(&file);
        let wrote = Proc::spawn("dgram-writer", &mut command).finish();
        wrote.assert_success();
        let silent = matches!(quiet, "1" | "yes");
        assert_eq!(
            wrote.stderr.is_empty(),
            silent,
            "IPC_QUIET={quiet:?}: {wrote:?}"
        );
        reader
            .finish()
            .assert_success()
            .assert_stdout(b"from the file\n");
    }
}

#[test]
fn a_message_may_start_with_a_dash() {
    let dir = temp_dir();
    let url = DGRAM.url(&dir.path().join("s.sock"));
    let (reader, _) = DGRAM.listening(&[&url]);
    DGRAM
        .writer(&[&url, "--message", "-hello"])
        .finish()
        .assert_success();
    reader.finish().assert_success().assert_stdout(b"-hello\n");
}

#[test]
fn an_endless_message_file_is_refused_at_the_limit() {
    let dir = temp_dir();
    let url = DGRAM.url(&dir.path().join("s.sock"));
    DGRAM
        .writer(&[&url, "--message-file", "/dev/zero"])
        .finish()
        .assert_failure(1, "the most this can send");
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
}

#[test]
fn stdin_that_never_ends_is_waited_for_only_until_the_timeout() {
    let dir = temp_dir();
    let url = DGRAM.url(&dir.path().join("s.sock"));
    let mut command = ours(DGRAM.writer);
    command.args([&url, "--message-file", "-", "--timeout", "1"]);
    let started = Instant::now();
    let mut writer = Proc::spawn_piped_stdin("dgram-writer", &mut command, false);
    // Held open, never written: `sleep 4 | dgram-writer --message-file - --timeout 1`.
    let stdin = writer.take_stdin();
    writer
        .finish()
        .assert_failure(124, "timed out after 1s waiting for the message on stdin");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    drop(stdin);
}

/// `dgram-writer --message-file - <&-`: Rust's runtime puts /dev/null on a closed fd 0, which
/// would read as an empty message sent with exit 0; refused, before anything is sent.
#[test]
fn fault_closed_stdin_is_refused_not_sent_as_an_empty_message() {
    let dir = temp_dir();
    let url = DGRAM.url(&dir.path().join("s.sock"));
    let mut command = ours("/bin/sh");
    command.args(["-c", "exec \"$0\" \"$@\" <&-", DGRAM.writer]);
    command.args([&url, "--message-file", "-", "--timeout", "1"]);
    ipc_testkit::run("dgram-writer <&-", &mut command, None).assert_failure(1, "stdin is closed");
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
}
