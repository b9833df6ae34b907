//! What every binary needs to run, whatever its mechanism: the shared options ([`cli`]), the
//! one deadline every wait shares and the waits themselves ([`wait`]), what goes to stdout and
//! stderr and the exit code ([`report`]), removing what the run created, also on a signal
//! ([`cleanup`]), whose objects a run may use ([`trust`]), and creating and removing files in
//! shared directories without following symlinks or deleting what is not ours ([`paths`]).

pub mod cleanup;
pub mod cli;
pub mod paths;
pub mod report;
pub mod trust;
pub mod wait;
