//! Load runs over the stream mechanism: `ipc-load stream-reader` and `ipc-load stream-writer`.
//! (Moved here from the stream binaries' `--count` mode by the redesign of issue 10.)

use clap::Subcommand;

/// `stream-reader` and `stream-writer` load runs.
#[derive(Subcommand, Debug)]
pub(crate) enum Command {}

pub(crate) fn run(command: Command) -> anyhow::Result<()> {
    match command {}
}
