//! The command line as a user meets it: the binary's own name in `--version` and in usage
//! errors (not the package's).

#[test]
fn version_and_usage_name_the_binary() {
    ipc_testkit::assert_names_itself(env!("CARGO_BIN_EXE_stream-reader"), "stream-reader");
    ipc_testkit::assert_names_itself(env!("CARGO_BIN_EXE_stream-writer"), "stream-writer");
}
