//! What the IPC examples of this workspace share, written once, grouped by concept so that
//! each part has one reason to change:
//!
//! - [`runtime`]: what every binary needs to run, whatever its mechanism: shared options,
//!   the one deadline of a run and its waits, stdout/stderr and exit codes, cleanup (also on
//!   SIGINT/SIGTERM/SIGHUP), the owner policy (`--trust-uid`), files in shared directories;
//! - [`sockets`]: the datagram and stream examples' URL schemes, binding, connecting and the
//!   stream exchange, and what the kernel still holds for a peer;
//! - [`sysv`]: the thin libc wrapper for `ftok(3)`, SysV shared memory, message queues and
//!   semaphores (nix has none);
//! - [`php`]: PHP's formats: `serialize()`, `echo` and `json_encode` of its values, the sysvshm
//!   variable-store layout and the `sem_get` lock;
//! - [`seq`]: sequence-stamped messages and the loss/duplicate/reorder check of load runs;
//!
//! `unsafe` lives in three modules only, each block with its `SAFETY` line: `sysv`,
//! `sockets::queued`, and `runtime::report`'s constructor that notes a closed stdout.

pub mod php;
pub mod runtime;
pub mod seq;
pub mod sockets;
pub mod sysv;
