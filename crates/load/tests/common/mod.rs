//! What every load test file needs besides ipc-load: the example binaries, for the run after a
//! fault ("the next run works").

use std::path::Path;
use std::process::Command;
use std::sync::{Mutex, OnceLock};

/// `ipc-load` itself.
pub(crate) const IPC_LOAD: &str = env!("CARGO_BIN_EXE_ipc-load");

/// The example binary `name` of `package`, next to `ipc-load` in the same target directory and
/// profile; built (once per package and test binary, bounded by `timeout 600`) so that it is
/// never missing or stale, also under `cargo test -p load` alone.
pub(crate) fn example(package: &str, name: &str) -> &'static str {
    static BUILT: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    let profile_dir = Path::new(IPC_LOAD)
        .parent()
        .expect("ipc-load is in a directory");
    let built = BUILT.get_or_init(|| Mutex::new(Vec::new()));
    let mut built = built
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if !built.iter().any(|done| done == package) {
        let mut command = Command::new("timeout");
        command
            .args([
                "600",
                env!("CARGO"),
                "build",
                "--quiet",
                "--bins",
                "-p",
                package,
            ])
            .arg("--target-dir")
            .arg(profile_dir.parent().expect("a target directory"));
        if profile_dir.file_name().is_some_and(|dir| dir == "release") {
            command.arg("--release");
        }
        let status = command.status().expect("run cargo build");
        assert!(status.success(), "cargo build -p {package}: {status}");
        built.push(package.to_owned());
    }
    let path = profile_dir.join(name);
    Box::leak(path.to_string_lossy().into_owned().into_boxed_str())
}
