//! The contract (docs/reliability.md) checked as invariants over generated schedules for the
//! stream pair, over a Unix socket and over TCP: see `ipc_testkit::contract`. The writer is the
//! client: its exit 0 means the server read all of its message. A schedule that breaks a
//! promise fails with the seed that replays it.

use std::path::Path;

use ipc_testkit::contract::{self, Delivery, Mechanism};

const UNIX: Mechanism = Mechanism {
    name: "stream-unix",
    reader: env!("CARGO_BIN_EXE_stream-reader"),
    writer: env!("CARGO_BIN_EXE_stream-writer"),
    endpoint: |dir: &Path| vec![format!("unix://{}", dir.join("s.sock").display())],
    writer_can_start_first: true,
    delivery: Delivery::Consumed,
    cut: true,
    // Streams have no message limit of their own; these cross the socket buffers.
    limit: 1 << 20,
    refuses_over_limit: false,
    over_limit_says: "the most this can send",
    sizes: &[65_535, 65_536, 212_993],
    writer_waits: "waiting for a server",
    reader_ready: "listening on",
    remove_leftovers: contract::remove_files_in,
    leftovers: contract::files_in,
};

const TCP: Mechanism = Mechanism {
    name: "stream-tcp",
    endpoint: |_: &Path| vec!["tcp://127.0.0.1:0".into()],
    writer_can_start_first: false,
    ..UNIX
};

#[test]
fn contract_schedules_unix_streams() {
    contract::check(&UNIX);
}

#[test]
fn contract_schedules_tcp() {
    contract::check(&TCP);
}
