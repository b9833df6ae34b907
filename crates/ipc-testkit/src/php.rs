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

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::{Finished, Proc};

/// What a test prints, once, when it skips because `php` is missing outside CI.
pub const SKIP_LINE: &str =
    "skipping PHP interop: php not installed (apt-get install -y php-cli php-mbstring)";

/// The extensions the peers call into; Debian's `php-cli` has them all.
const EXTENSIONS: [&str; 5] = ["sockets", "posix", "sysvshm", "sysvmsg", "shmop"];

/// A multi-byte UTF-8 payload: PHP's `strlen` counts its bytes, `mb_strlen` its characters.
pub const UTF8: &str = "Grüße aus Köln, 東京, Привет 🦀";

/// A binary payload: every byte value, NULs first and last, invalid UTF-8 included.
pub fn binary() -> Vec<u8> {
    let mut bytes = vec![0u8, 0];
    bytes.extend(0..=255u8);
    bytes.extend([0xff, 0xfe, 0]);
    bytes
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
                println!("{SKIP_LINE}");
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
