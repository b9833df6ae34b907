//! The benchmark's machinery, used by the `ipc-bench` binary, in layers (each imports only the
//! ones above it in this list):
//! - [`plan`] (what one measurement is), [`link`] (the loops over any [`link::Link`]),
//!   [`stats`];
//! - [`session`]: the measurement's context, the peer process, watchdogs, the outcome, the
//!   shared setup;
//! - the implementations: [`ours`] (this workspace's code), [`raw`] (the same syscalls through
//!   libc, and the floors and wake-ups), [`peers`] (iceoryx2): their links and the steps that
//!   open one on each side;
//! - [`mechanism`]: the one table of mechanisms (`setup` once, `open(implementation, side)`);
//! - [`measure`]: one measurement through the table, and the peer subcommand;
//! - [`tools`] (iperf3, sockperf, perf bench), [`suite`] (a whole run), [`results`] (the derived
//!   figures, claims and targets) and [`output`] (the report: text, JSON, CSV, SVG).

pub mod link;
pub mod measure;
pub mod mechanism;
pub mod ours;
pub mod output;
pub mod peers;
pub mod plan;
pub mod progress;
pub mod raw;
pub mod redis;
pub mod results;
pub mod session;
pub mod stats;
pub mod suite;
pub mod tools;
