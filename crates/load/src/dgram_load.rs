//! Load runs over the dgram mechanism: `ipc-load dgram-reader` and `ipc-load dgram-writer`.
//! (Moved here from the dgram binaries' `--count` mode by the redesign of issue 10.)

use clap::Subcommand;

/// `dgram-reader` and `dgram-writer` load runs.
#[derive(Subcommand, Debug)]
pub(crate) enum Command {}

pub(crate) fn run(command: Command) -> anyhow::Result<()> {
    match command {}
}
