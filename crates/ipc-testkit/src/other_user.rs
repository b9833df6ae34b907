//! Running one of our binaries as another user, `nobody`, for the tests that show what our
//! permissions and owner checks let through: a peer under another uid is refused by default and
//! admitted with the right `--mode` (or `--trust-uid`).
//!
//! Switching users needs root (tests run as root in CI and in the containers) and `setpriv(1)`
//! from util-linux. Without them a test prints [`SKIP_LINE`] and passes.

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// `nobody`'s uid and gid on Debian and most distributions.
pub const NOBODY: u32 = 65534;

/// What a test prints when it cannot switch users.
pub const SKIP_LINE: &str =
    "skipping other-user test: needs root and setpriv(1) (util-linux) to run a peer as nobody";

/// Whether this process may start others as `nobody`; prints [`SKIP_LINE`] when not.
pub fn available() -> bool {
    let root = nix::unistd::geteuid().is_root();
    let setpriv = Command::new("setpriv")
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
    if !(root && setpriv) {
        crate::skipped(SKIP_LINE);
    }
    root && setpriv
}

/// A command that runs `program` as `nobody` (uid and gid 65534, no supplementary groups), with
/// the caller's `IPC_*` settings removed; the caller adds the arguments.
pub fn as_nobody(program: impl AsRef<OsStr>) -> Command {
    let mut command = crate::ours("setpriv");
    command
        .arg(format!("--reuid={NOBODY}"))
        .arg(format!("--regid={NOBODY}"))
        .args(["--clear-groups", "--"])
        .arg(program);
    command
}

/// Lets other users reach into the test's private directory (`0711`: they may use paths in it,
/// not list it), as they can in `/tmp`.
#[track_caller]
pub fn open_dir(dir: &Path) {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711))
        .unwrap_or_else(|err| panic!("chmod 0711 {}: {err}", dir.display()));
}

/// A directory inside `dir` that belongs to `nobody` (where a peer running as nobody creates
/// its files), reachable by everyone.
#[track_caller]
pub fn nobodys_dir(dir: &Path) -> std::path::PathBuf {
    open_dir(dir);
    let own = dir.join("nobody");
    std::fs::create_dir(&own).unwrap_or_else(|err| panic!("mkdir {}: {err}", own.display()));
    std::os::unix::fs::chown(&own, Some(NOBODY), Some(NOBODY))
        .unwrap_or_else(|err| panic!("chown nobody {}: {err}", own.display()));
    std::fs::set_permissions(&own, std::fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|err| panic!("chmod 0755 {}: {err}", own.display()));
    own
}

/// Gives the file at `path` (not following a symlink) to `nobody`, as if that user had made it.
#[track_caller]
pub fn give_to_nobody(path: &Path) {
    std::os::unix::fs::lchown(path, Some(NOBODY), Some(NOBODY))
        .unwrap_or_else(|err| panic!("chown nobody {}: {err}", path.display()));
}
