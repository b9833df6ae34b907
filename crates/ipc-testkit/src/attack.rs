//! Attackers for the contract tests: small Perl scripts (`tests/attack/*.pl`; Perl's base
//! package is on every Debian system) run as `nobody` while our pairs run, looping as fast as
//! they can for a few seconds on the races a check-then-use would leave open. A test runs pairs
//! while the attacker runs and then requires that it got nothing.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::other_user;
use crate::{Proc, temp_dir};

/// The attack script `name` in the repository's `tests/attack/`.
pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/attack")
        .join(name)
}

/// An attacker process running as `nobody`.
#[derive(Debug)]
pub struct Attacker {
    proc: Proc,
}

impl Attacker {
    /// Starts `perl SCRIPT ARGS` as nobody and waits until it says (on stderr) that it is
    /// attacking; `None`
    /// (with the skip line printed) where no other user can be had.
    #[track_caller]
    pub fn start(name: &str, args: &[&Path]) -> Option<Attacker> {
        if !other_user::available() {
            return None;
        }
        let mut command: Command = other_user::as_nobody("perl");
        command.arg(script(name)).args(args);
        let mut proc = Proc::spawn(&format!("attacker {name}"), &mut command);
        proc.wait_for_stderr("attacking");
        Some(Attacker { proc })
    }

    /// Whether it is still attacking.
    pub fn running(&mut self) -> bool {
        self.proc.is_running()
    }

    /// Waits for its end and returns its closing line (`0 of 81234 got in`).
    #[track_caller]
    pub fn finish(self) -> String {
        let finished = self.proc.finish();
        finished.assert_success();
        let out = String::from_utf8_lossy(&finished.stdout).into_owned();
        out.lines().last().unwrap_or_default().to_string()
    }
}

/// A directory as `/tmp` is: world-writable and sticky (everyone may create entries, only an
/// entry's owner may remove or replace it), with a subdirectory of nobody's own. Returns the
/// temp dir guard, the shared directory and nobody's.
#[track_caller]
pub fn sticky_shared_dir() -> (tempfile::TempDir, PathBuf, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir();
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let nobodys = other_user::nobodys_dir(dir.path());
    (dir, shared, nobodys)
}

/// The most pair runs one attack test makes (and it stops when the attacker does).
const MAX_RUNS: usize = 300;

/// How long each attacker loops, in whole seconds (its clock is Perl's `time`).
const ATTACK_SECONDS: &str = "2";

/// Promise 3 at bind time: under `umask 000`, nobody, connecting in a tight loop to the path a
/// reader binds with `--mode 0600`, never gets in, in any of the runs while it attacks. Each run
/// is the blog's exchange of `ours`, checked by `exchange(reader_url)`, which returns once both
/// sides finished successfully.
pub fn bind_race_lets_nobody_in(kind: &str, path: &Path, mut exchange: impl FnMut()) {
    let Some(mut attacker) = Attacker::start(
        "connect-loop.pl",
        &[Path::new(kind), path, Path::new(ATTACK_SECONDS)],
    ) else {
        return;
    };
    let mut runs = 0;
    while attacker.running() && runs < MAX_RUNS {
        exchange();
        runs += 1;
    }
    let verdict = attacker.finish();
    println!("bind race ({kind}): {runs} runs under attack: {verdict}");
    assert!(runs > 0, "no run happened while the attacker ran");
    assert!(
        verdict.starts_with("0 of "),
        "another user got into a 0600 socket: {verdict}"
    );
}

/// Promise 3 at connect time: in a sticky shared directory, nobody puts its own socket at the
/// path a writer connects to and takes it away again, in a tight loop. Every writer run must
/// refuse nobody's socket or find nothing (exit 1 or 124, never 0), and the attacker must catch
/// nothing. `write(target)` runs one writer with a short `--timeout` and returns its exit code.
pub fn connect_swap_sends_nobody_anything(mut write: impl FnMut(&Path) -> i32) {
    let (_dir, shared, nobodys) = sticky_shared_dir();
    let target = shared.join("s.sock");
    let theirs = nobodys.join("theirs.sock");
    let Some(mut attacker) = Attacker::start(
        "swap-loop.pl",
        &[&theirs, &target, Path::new(ATTACK_SECONDS)],
    ) else {
        return;
    };
    let (mut runs, mut refused) = (0, 0);
    while attacker.running() && runs < MAX_RUNS {
        let code = write(&target);
        assert_ne!(
            code, 0,
            "a writer reported success with only nobody's socket there"
        );
        refused += usize::from(code == 1);
        runs += 1;
    }
    let verdict = attacker.finish();
    println!("connect swap: {runs} writer runs ({refused} refused nobody's socket): {verdict}");
    assert!(runs > 0, "no run happened while the attacker ran");
    assert!(
        verdict.starts_with("0 caught"),
        "nobody caught a datagram: {verdict}"
    );
}
