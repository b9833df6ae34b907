//! Load runs over the mq mechanism: `ipc-load mq-reader` and `ipc-load mq-writer`.
//! (Moved here from the mq binaries' `--count` mode by the redesign of issue 10.)

use clap::Subcommand;

/// `mq-reader` and `mq-writer` load runs.
#[derive(Subcommand, Debug)]
pub(crate) enum Command {}

pub(crate) fn run(command: Command) -> anyhow::Result<()> {
    match command {}
}
