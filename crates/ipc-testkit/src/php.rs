//! Running the PHP test peers of `tests/php/` (the blog's scripts, made bounded and
//! binary-safe) against our binaries, for the `tests/php.rs` interop test of each crate.
//!
//! The skip rule: without `php`, a test outside CI prints [`SKIP_LINE`] and passes; in CI
//! (`CI=true`) a missing `php` fails the test, so interop is never silently skipped there.
//!
//! ```no_run
//! use ipc_testkit::php::Php;
//! let Some(php) = Php::find() else { return };
//! php.run("mq-writer.php", ["--key-file", "/tmp/ipct-x/key"]).assert_success();
//! ```

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::{Finished, Proc};

/// What a test prints, once, when it skips because `php` is missing outside CI.
pub const SKIP_LINE: &str =
    "skipping PHP interop: php not installed (apt-get install -y php-cli php-mbstring)";

/// The extensions the peers call into; Debian's `php-cli` has them all.
const EXTENSIONS: [&str; 5] = ["sockets", "posix", "sysvshm", "sysvmsg", "shmop"];

/// One message an interop test sends through a mechanism, in either direction.
#[derive(Clone, Debug)]
pub struct Payload {
    /// What the case is, for the test's output ("binary", "largest (1024 bytes)").
    pub name: String,
    pub bytes: Vec<u8>,
    /// The blog's default message: senders get no message argument at all.
    blog_default: bool,
}

impl Payload {
    /// A sender's arguments, the same for our binaries and the PHP peers: none for the blog's
    /// default, else `--message-file FILE`, FILE written with the bytes (argv cannot carry NULs).
    #[track_caller]
    pub fn sender_args(&self, file: &Path) -> Vec<OsString> {
        if self.blog_default {
            return Vec::new();
        }
        std::fs::write(file, &self.bytes)
            .unwrap_or_else(|err| panic!("write {}: {err}", file.display()));
        vec!["--message-file".into(), file.into()]
    }

    /// What a receiver prints: the bytes, then one newline.
    pub fn printed(&self) -> Vec<u8> {
        let mut out = self.bytes.clone();
        out.push(b'\n');
        out
    }
}

/// The payloads of every interop test: the blog's default message (sent by default, so both
/// sides' defaults are checked too), multi-byte UTF-8 (PHP's `strlen` counts its bytes,
/// `mb_strlen` its characters), binary (every byte value, NULs at both ends, invalid UTF-8),
/// empty, and the largest message the path allows (printable, without NULs).
pub fn payloads(blog_message: &str, largest: usize) -> Vec<Payload> {
    let mut binary = vec![0u8, 0];
    binary.extend(0..=255u8);
    binary.extend([0xff, 0xfe, 0]);
    let pattern = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let case = |name: String, bytes: Vec<u8>| Payload {
        name,
        bytes,
        blog_default: false,
    };
    vec![
        Payload {
            name: "the blog's default message".into(),
            bytes: blog_message.as_bytes().to_vec(),
            blog_default: true,
        },
        case(
            "UTF-8".into(),
            "Grüße aus Köln, 東京, Привет 🦀".as_bytes().to_vec(),
        ),
        case("binary with NULs".into(), binary),
        case("empty".into(), Vec::new()),
        case(
            format!("largest ({largest} bytes)"),
            pattern.iter().copied().cycle().take(largest).collect(),
        ),
    ]
}

/// The `php` interpreter that runs the peers.
#[derive(Clone, Debug)]
pub struct Php {
    binary: PathBuf,
}

impl Php {
    /// The `php` on `PATH`, checked once per test binary. `None` (after printing
    /// [`SKIP_LINE`]) when it is missing outside CI; panics when it is missing in CI or lacks an
    /// extension the peers need.
    #[track_caller]
    pub fn find() -> Option<Php> {
        static FOUND: OnceLock<Result<PathBuf, String>> = OnceLock::new();
        match FOUND.get_or_init(locate) {
            Ok(binary) => Some(Php {
                binary: binary.clone(),
            }),
            Err(why) if in_ci() => panic!("PHP interop must run in CI (CI is set): {why}"),
            Err(_) => {
                crate::skipped(SKIP_LINE);
                None
            }
        }
    }

    /// A command running the peer `script` (a file name in `tests/php/`) with `args`. PHP's
    /// warnings go to stderr whatever the local php.ini says, so stdout carries only the payload.
    #[track_caller]
    pub fn command<I, S>(&self, script: &str, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let path = peers_dir().join(script);
        assert!(path.is_file(), "no PHP peer {}", path.display());
        let mut command = Command::new(&self.binary);
        command
            .args(["-d", "display_errors=stderr", "-d", "log_errors=0"])
            .args(["-d", "error_reporting=-1"])
            .arg(path)
            .args(args);
        command
    }

    /// Starts the peer `script` with `args`; it is killed if the test drops it unfinished.
    #[track_caller]
    pub fn spawn<I, S>(&self, script: &str, args: I) -> Proc
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Proc::spawn(&format!("php {script}"), &mut self.command(script, args))
    }

    /// Runs the peer `script` with `args` to completion (at most [`crate::STEP`]).
    #[track_caller]
    pub fn run<I, S>(&self, script: &str, args: I) -> Finished
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.spawn(script, args).finish()
    }
}

/// `tests/php/` at the workspace root, where the peers live.
pub fn peers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/php")
}

/// `CI` set to anything but empty, `0` or `false`.
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|ci| !matches!(ci.as_str(), "" | "0" | "false"))
}

/// Finds `php` on `PATH` and checks its extensions.
fn locate() -> Result<PathBuf, String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let binary = std::env::split_paths(&path)
        .map(|dir| dir.join("php"))
        .find(|candidate| candidate.is_file())
        .ok_or("php is not on PATH (apt-get install -y php-cli php-mbstring)")?;
    let check = format!("foreach ({EXTENSIONS:?} as $e) if (!extension_loaded($e)) echo \"$e \";");
    let out = Command::new(&binary)
        .args(["-r", &check])
        .output()
        .map_err(|err| format!("run {}: {err}", binary.display()))?;
    let missing = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || !missing.trim().is_empty() {
        // Present but incomplete is a broken setup, not a reason to skip.
        panic!(
            "{} lacks the extensions {missing}(status {}); Debian's php-cli has them all",
            binary.display(),
            out.status
        );
    }
    Ok(binary)
}
