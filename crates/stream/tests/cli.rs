//! The command line as a user meets it: the binary's own name in `--version` and in usage
//! errors (not the package's).

use ipc_testkit::ours;

#[test]
fn version_and_usage_name_the_binary() {
    for (binary, name) in [
        (env!("CARGO_BIN_EXE_stream-reader"), "stream-reader"),
        (env!("CARGO_BIN_EXE_stream-writer"), "stream-writer"),
    ] {
        let version = ours(binary).arg("--version").output().unwrap();
        assert!(
            String::from_utf8_lossy(&version.stdout).starts_with(&format!("{name} ")),
            "{version:?}"
        );
        let usage = ours(binary).arg("--no-such-option").output().unwrap();
        assert_eq!(usage.status.code(), Some(2));
        assert!(
            String::from_utf8_lossy(&usage.stderr).contains(&format!("Usage: {name}")),
            "{usage:?}"
        );
    }
}
