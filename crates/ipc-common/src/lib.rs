//! What every IPC example in this workspace shares, written once.
//!
//! Each module has one job:
//! - [`endpoint`]: the blog's URL schemes (`udg://`, `udp://`, `unix://`, `tcp://`), parsed once;
//! - [`wait`]: `--timeout`, deadlines, retry with backoff and readiness (`poll(2)`);
//! - [`cli`]: the options every binary shares, flattened into each binary's `Args`;
//! - [`paths`]: creating and removing filesystem objects without following symlinks or deleting
//!   what we did not create (socket files, key files);
//! - [`sysv`]: the thin libc wrapper for `ftok(3)`, SysV shared memory, message queues and
//!   semaphores;
//! - [`php`]: PHP's `serialize()` format and the sysvshm variable-store layout;
//! - [`queued`]: what the kernel still holds on the way to a peer (`SIOCOUTQ`, `FIONREAD`), so
//!   a sender knows when its peer took everything; one `unsafe` per `ioctl(2)`;
//! - [`sock`]: sockets: binding with the final mode from birth, connecting through the checked
//!   file, the full-duplex exchange of a stream and its delivery check;
//! - [`cleanup`]: guards that remove what this process created, also on SIGINT/SIGTERM;
//! - [`seq`]: sequence-stamped messages and the loss/duplicate/reorder check of `--count` runs;
//! - [`report`]: `main`'s error reporting, stdout payload writing and stderr progress;
//! - [`trust`]: whose objects a run uses when it finds rather than creates them (ourselves,
//!   root, `--trust-uid`);
//! - [`ring`]: a message ring buffer in a SysV segment with futex hand-off (the benchmark's
//!   shared-memory mechanism); besides `sysv`, the one module with `unsafe` (bulk copies into
//!   the segment and its shared words, each with its `SAFETY` line).
//!
//! `unsafe` lives in three modules only, each block with its `SAFETY` line: `sysv`, `ring` and
//! `queued`.

pub mod cleanup;
pub mod cli;
pub mod endpoint;
pub mod paths;
pub mod php;
pub mod queued;
pub mod report;
pub mod ring;
pub mod seq;
pub mod sock;
pub mod sysv;
pub mod trust;
pub mod wait;
