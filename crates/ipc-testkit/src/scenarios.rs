//! The reliability scenarios two crates share: for the SysV pairs (`mq`, `shm`) a peer killed
//! mid-run, a key file removed while the reader waits, a key file or object another user put
//! under our key; for the socket pairs (`dgram`, `stream`) a symlink in the way and a writer
//! killed while it waits; and for the SysV pairs' PHP interop, payloads and values both ways
//! through PHP's scripts. Each crate keeps its own `#[test]` functions, which call these with its
//! binaries and the words its binaries say, so a failure still names the mechanism.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use ipc_common::sysv::{self, Key};

use crate::other_user::{self, NOBODY};
use crate::php::{Php, payloads};
use crate::{Finished, Proc, Signal, assert_no_sysv_objects, temp_dir};

/// Messages in a run that is killed long before its end.
pub const ENDLESS: &str = "10000000";

/// A SysV writer/reader pair under test.
#[derive(Debug)]
pub struct SysvPair {
    /// `env!("CARGO_BIN_EXE_<mech>-reader")`.
    pub reader: &'static str,
    /// `env!("CARGO_BIN_EXE_<mech>-writer")`.
    pub writer: &'static str,
    /// `mq` or `shm`: the label of each child is `<name>-reader` or `<name>-writer`.
    pub name: &'static str,
    /// What the writer sends by default (the blog's message).
    pub message: &'static str,
    /// Removes whatever the pair may have left under `key`; only called when a test panics.
    pub remove_leftovers: fn(Key),
}

impl SysvPair {
    /// `<name>-reader` (`side` "reader") or `<name>-writer` with `--key-file KEY --timeout 5
    /// EXTRA...`, for the PHP interop tests.
    pub fn our_command(&self, side: &str, key_file: &Path, extra: &[OsString]) -> Command {
        let binary = match side {
            "reader" => self.reader,
            _ => self.writer,
        };
        let mut command = crate::ours(binary);
        command
            .arg("--key-file")
            .arg(key_file)
            .args(["--timeout", "5"])
            .args(extra);
        command
    }

    /// [`SysvPair::our_command`] run to completion.
    #[track_caller]
    pub fn our_run(&self, side: &str, key_file: &Path, extra: &[OsString]) -> Finished {
        let mut command = self.our_command(side, key_file, extra);
        Proc::spawn(&format!("{}-{side}", self.name), &mut command).finish()
    }

    /// A fresh key file in `dir`, the test's own.
    pub fn keyed(&self, dir: &Path) -> Keyed<'_> {
        Keyed {
            pair: self,
            dir: dir.to_path_buf(),
            key_file: crate::key_file(dir),
        }
    }
}

/// One test's key file in its private directory; if the test fails half-way, what is left under
/// its key goes too (only this test uses the key), so one red test does not leak into others.
/// Declare it after the directory, so it drops first.
#[derive(Debug)]
pub struct Keyed<'p> {
    pub pair: &'p SysvPair,
    pub dir: PathBuf,
    pub key_file: PathBuf,
}

impl Drop for Keyed<'_> {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        if let Ok(key) = sysv::ftok(&self.key_file, b'T') {
            (self.pair.remove_leftovers)(key);
        }
    }
}

impl Keyed<'_> {
    /// `program --key-file KEY ARGS`, waiting at most 5 s unless `args` say otherwise, without
    /// the caller's `IPC_*` settings.
    fn command(&self, mut command: Command, args: &[&str]) -> Command {
        command.arg("--key-file").arg(&self.key_file);
        crate::bounded(command, args)
    }

    pub fn reader(&self, args: &[&str]) -> Proc {
        let mut command = self.command(crate::ours(self.pair.reader), args);
        Proc::spawn(&format!("{}-reader", self.pair.name), &mut command)
    }

    pub fn writer(&self, args: &[&str]) -> Proc {
        let mut command = self.command(crate::ours(self.pair.writer), args);
        Proc::spawn(&format!("{}-writer", self.pair.name), &mut command)
    }

    /// Our reader run to completion as the user nobody.
    pub fn reader_as_nobody(&self, args: &[&str]) -> Finished {
        self.as_nobody(self.pair.reader, args)
    }

    /// Our writer run to completion as the user nobody.
    pub fn writer_as_nobody(&self, args: &[&str]) -> Finished {
        self.as_nobody(self.pair.writer, args)
    }

    fn as_nobody(&self, program: &str, args: &[&str]) -> Finished {
        let mut nobody = self.command(other_user::as_nobody(program), args);
        crate::run("as nobody", &mut nobody, None)
    }

    /// The blog's message goes through a fresh pair keyed on this key file, which leaves
    /// nothing.
    #[track_caller]
    pub fn a_fresh_pair_works(&self, args: &[&str]) {
        self.writer(args).finish().assert_success();
        self.reader(args)
            .finish()
            .assert_success()
            .assert_stdout(&line(self.pair.message));
        assert_no_sysv_objects(&self.key_file, b'T');
    }
}

/// `text` and a newline, as a reader prints it.
pub fn line(text: &str) -> Vec<u8> {
    format!("{text}\n").into_bytes()
}

/// The number before `lost` in a summary line.
#[track_caller]
pub fn lost(summary: &Finished) -> u64 {
    let text = String::from_utf8_lossy(&summary.stdout);
    let (before, _) = text
        .split_once(" lost")
        .unwrap_or_else(|| panic!("no loss count in {text:?}"));
    before.rsplit(' ').next().unwrap().parse().unwrap()
}

/// The writer is killed after the first message of an endless run: the reader (`--timeout 2`)
/// gives up saying `gives_up`, reports a loss, and removes the object. `waiting` is the reader's
/// readiness line.
pub fn writer_killed_mid_run(pair: &SysvPair, dir: &Path, waiting: &str, gives_up: &str) {
    let t = pair.keyed(dir);
    let mut read = t.reader(&["--count", ENDLESS, "--timeout", "2"]);
    read.wait_for_stderr(waiting);
    let write = t.writer(&["--count", ENDLESS]);
    read.wait_for_stderr("first message arrived");
    write.signal(Signal::SIGKILL);
    write.finish();
    let read = read.finish();
    read.assert_failure(124, gives_up);
    assert!(lost(&read) > 0, "{read:?}");
    assert_no_sysv_objects(&t.key_file, b'T');
    t.a_fresh_pair_works(&[]);
}

/// The reader is killed after the first message of an endless run: the writer (`--timeout 2`)
/// times out saying each of `gives_up`, and removes the object it created.
pub fn reader_killed_mid_run(pair: &SysvPair, dir: &Path, waiting: &str, gives_up: &[&str]) {
    let t = pair.keyed(dir);
    let mut read = t.reader(&["--count", ENDLESS]);
    read.wait_for_stderr(waiting);
    let write = t.writer(&["--count", ENDLESS, "--timeout", "2"]);
    read.wait_for_stderr("first message arrived");
    read.signal(Signal::SIGKILL);
    read.finish();
    let write = write.finish();
    for needle in gives_up {
        write.assert_failure(124, needle);
    }
    assert_no_sysv_objects(&t.key_file, b'T');
    t.a_fresh_pair_works(&[]);
}

/// The key file goes while the reader (`--timeout 20`) waits after saying `waiting`: it stops
/// at once, prints nothing, and a new key file works.
pub fn key_file_removed_while_the_reader_waits(pair: &SysvPair, dir: &Path, waiting: &str) {
    let t = pair.keyed(dir);
    let mut read = t.reader(&["--timeout", "20"]);
    read.wait_for_stderr(waiting);
    std::fs::remove_file(&t.key_file).unwrap();
    read.finish()
        .assert_failure(
            1,
            "was removed while we waited for the object under its key",
        )
        .assert_stdout(b"");
    std::fs::write(&t.key_file, b"").unwrap();
    t.a_fresh_pair_works(&[]);
}

/// A key file owned by nobody is refused by both sides, unless `--trust-uid nobody`.
/// Does nothing (passes) where the tests cannot act as another user.
pub fn another_users_key_file_is_refused_unless_trusted(pair: &SysvPair, dir: &Path) {
    if !other_user::available() {
        return;
    }
    let t = pair.keyed(dir);
    other_user::give_to_nobody(&t.key_file);
    let refused = format!("key file {}: belongs to uid {NOBODY}", t.key_file.display());
    t.writer(&[]).finish().assert_failure(1, &refused);
    t.reader(&[]).finish().assert_failure(1, &refused);
    assert_no_sysv_objects(&t.key_file, b'T');
    t.a_fresh_pair_works(&["--trust-uid", "nobody"]);
}

/// nobody gets in first and creates the object under our key, open to everyone: both sides
/// refuse it; trusted, the reader prints the planted message and removes it.
/// Does nothing (passes) where the tests cannot act as another user.
pub fn another_users_object_under_our_key_is_refused_unless_trusted(pair: &SysvPair, dir: &Path) {
    if !other_user::available() {
        return;
    }
    let t = pair.keyed(dir);
    other_user::open_dir(&t.dir);
    t.writer_as_nobody(&["--mode", "0666", "--message", "planted"])
        .assert_success();
    let refused = format!("belongs to uid {NOBODY}");
    t.writer(&[]).finish().assert_failure(1, &refused);
    t.reader(&[])
        .finish()
        .assert_failure(1, &refused)
        .assert_stdout(b"");
    t.reader(&["--trust-uid", "nobody"])
        .finish()
        .assert_success()
        .assert_stdout(b"planted\n");
    assert_no_sysv_objects(&t.key_file, b'T');
}

/// Another user's object that its mode keeps us out of (0600): the denied reader's error says
/// what admits it (`--mode`, `--trust-uid`); ours then takes the message and removes the object.
pub fn eacces_names_mode_and_trust_uid(pair: &SysvPair, dir: &Path) {
    if !other_user::available() {
        return;
    }
    let t = pair.keyed(dir);
    other_user::open_dir(&t.dir);
    t.writer(&[]).finish().assert_success();
    t.reader_as_nobody(&[])
        .assert_failure(1, "Permission denied")
        .assert_failure(1, "--mode 0660 (sharing a group) or 0666")
        .assert_failure(1, "--trust-uid");
    t.reader(&[])
        .finish()
        .assert_success()
        .assert_stdout(&line(pair.message));
    assert_no_sysv_objects(&t.key_file, b'T');
}

/// A pair left at its default mode keeps nobody out: their reader is denied, ours then takes
/// the message and removes the object. The caller checks [`other_user::available`] first.
pub fn another_user_is_refused_by_default(t: &Keyed<'_>) {
    other_user::open_dir(&t.dir);
    t.writer(&[]).finish().assert_success();
    t.reader_as_nobody(&[])
        .assert_failure(1, "Permission denied");
    t.reader(&[]).finish().assert_success();
    assert_no_sysv_objects(&t.key_file, b'T');
}

/// A socket reader/writer pair under test (`dgram` over `udg://`, `stream` over `unix://`).
#[derive(Debug)]
pub struct SocketPair {
    /// `env!("CARGO_BIN_EXE_<mech>-reader")`.
    pub reader: &'static str,
    /// `env!("CARGO_BIN_EXE_<mech>-writer")`.
    pub writer: &'static str,
    /// `dgram` or `stream`: the label of each child is `<name>-reader` or `<name>-writer`.
    pub name: &'static str,
    /// The URL scheme of a socket file: `udg` or `unix`.
    pub scheme: &'static str,
}

impl SocketPair {
    /// Our reader with `args`, waiting at most 5 s unless they say otherwise.
    pub fn reader(&self, args: &[&str]) -> Proc {
        let mut command = crate::bounded(crate::ours(self.reader), args);
        Proc::spawn(&format!("{}-reader", self.name), &mut command)
    }

    /// Our writer with `args`, waiting at most 5 s unless they say otherwise.
    pub fn writer(&self, args: &[&str]) -> Proc {
        let mut command = crate::bounded(crate::ours(self.writer), args);
        Proc::spawn(&format!("{}-writer", self.name), &mut command)
    }

    /// A reader that listens; returns it with the URL it really listens on.
    #[track_caller]
    pub fn listening(&self, args: &[&str]) -> (Proc, String) {
        let mut proc = self.reader(args);
        let url = proc.listening_url();
        (proc, url)
    }

    /// The URL of a socket file at `path`.
    pub fn url(&self, path: &Path) -> String {
        format!("{}://{}", self.scheme, path.display())
    }
}

/// A symlink to a live socket (`bind` makes one at the path it is given, kept open meanwhile):
/// the writer will not follow it, the reader will not replace it, and it stays.
pub fn a_symlink_to_a_live_socket_is_not_followed<S>(
    pair: &SocketPair,
    dir: &Path,
    bind: impl FnOnce(&Path) -> S,
) {
    let real = dir.join("real.sock");
    let link = dir.join("link.sock");
    let _live = bind(&real);
    std::os::unix::fs::symlink(&real, &link).unwrap();
    pair.writer(&[&pair.url(&link)])
        .finish()
        .assert_failure(1, "the path is a symlink; refusing to follow it");
    pair.reader(&[&pair.url(&link)])
        .finish()
        .assert_failure(1, "holds a symlink, not a socket");
    assert!(link.symlink_metadata().unwrap().file_type().is_symlink());
}

/// A writer killed while it waits for its peer (after saying `waiting`) leaves nothing in `dir`,
/// and then `a_fresh_pair_works` on the same URL.
pub fn a_writer_killed_while_waiting_leaves_nothing(
    pair: &SocketPair,
    dir: &Path,
    waiting: &str,
    a_fresh_pair_works: impl FnOnce(&str),
) {
    let url = pair.url(&dir.join("s.sock"));
    let mut write = pair.writer(&[&url]);
    write.wait_for_stderr(waiting);
    write.signal(Signal::SIGKILL);
    write.finish();
    assert_eq!(std::fs::read_dir(dir).unwrap().count(), 0);
    a_fresh_pair_works(&url);
}

/// The PHP peers of a SysV pair (scripts in `tests/php/`).
#[derive(Debug)]
pub struct PhpPeers {
    /// The blog's writer, e.g. `mq-writer.php`.
    pub writer: &'static str,
    /// The blog's reader, e.g. `mq-reader.php`.
    pub reader: &'static str,
    /// What every call of a peer gets after `--key-file KEY` (mq's: `--timeout 5`).
    pub common: &'static [&'static str],
}

impl PhpPeers {
    /// `--key-file KEY COMMON... EXTRA...` for a PHP peer.
    pub fn args(&self, key_file: &Path, extra: &[OsString]) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec!["--key-file".into(), key_file.into()];
        args.extend(self.common.iter().map(OsString::from));
        args.extend_from_slice(extra);
        args
    }
}

/// `args` as owned OS strings.
pub fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

/// A non-string value: the writer's flag, what PHP's `echo` prints, what `json_encode` prints.
pub type PhpValue = (&'static [&'static str], &'static str, &'static str);

/// PHP's writer sends each payload (strings up to `largest` bytes); our reader unserializes and
/// prints it exactly, and removes the object.
pub fn php_writer_to_our_reader(pair: &SysvPair, php: &Php, peers: &PhpPeers, largest: usize) {
    for payload in payloads(pair.message, largest) {
        println!("case: {}", payload.name);
        let dir = temp_dir();
        let key = crate::key_file(dir.path());
        let message = payload.sender_args(&dir.path().join("message"));
        php.run(peers.writer, peers.args(&key, &message))
            .assert_success()
            .assert_stdout(b"");
        pair.our_run("reader", &key, &[])
            .assert_success()
            .assert_stdout(&payload.printed());
        assert_no_sysv_objects(&key, b'T');
    }
}

/// Our writer sends each payload (strings up to `largest` bytes); PHP's reader, given
/// `reader_extra` too, unserializes and prints it exactly, and removes the object.
pub fn our_writer_to_php_reader(
    pair: &SysvPair,
    php: &Php,
    peers: &PhpPeers,
    largest: usize,
    reader_extra: &[&str],
) {
    for payload in payloads(pair.message, largest) {
        println!("case: {}", payload.name);
        let dir = temp_dir();
        let key = crate::key_file(dir.path());
        let message = payload.sender_args(&dir.path().join("message"));
        pair.our_run("writer", &key, &message)
            .assert_success()
            .assert_stdout(b"");
        php.run(peers.reader, peers.args(&key, &os(reader_extra)))
            .assert_success()
            .assert_stdout(&payload.printed());
        assert_no_sysv_objects(&key, b'T');
    }
}

/// PHP's writer sends each of `values`; our reader prints it as `echo` would, and with
/// `--format json` as `json_encode` would.
pub fn php_values_read_by_our_reader(
    pair: &SysvPair,
    php: &Php,
    peers: &PhpPeers,
    values: &[PhpValue],
) {
    for (flag, echoed, json) in values {
        println!("case: {flag:?}");
        for (reader_args, printed) in [(vec![], echoed), (os(&["--format", "json"]), json)] {
            let dir = temp_dir();
            let key = crate::key_file(dir.path());
            php.run(peers.writer, peers.args(&key, &os(flag)))
                .assert_success();
            pair.our_run("reader", &key, &reader_args)
                .assert_success()
                .assert_stdout(format!("{printed}\n").as_bytes());
            assert_no_sysv_objects(&key, b'T');
        }
    }
}

/// Our writer sends each of `values`; PHP's reader, given `reader_extra` too, echoes it.
pub fn our_values_read_by_php(
    pair: &SysvPair,
    php: &Php,
    peers: &PhpPeers,
    values: &[PhpValue],
    reader_extra: &[&str],
) {
    for (flag, echoed, _) in values {
        println!("case: {flag:?}");
        let dir = temp_dir();
        let key = crate::key_file(dir.path());
        pair.our_run("writer", &key, &os(flag)).assert_success();
        php.run(peers.reader, peers.args(&key, &os(reader_extra)))
            .assert_success()
            .assert_stdout(format!("{echoed}\n").as_bytes());
        assert_no_sysv_objects(&key, b'T');
    }
}
