//! The contract (docs/reliability.md) checked as invariants over generated schedules for the
//! datagram pair, over a Unix socket and over UDP: see `ipc_testkit::contract`. A schedule that
//! breaks a promise fails with the seed that replays it.

use std::path::Path;

use ipc_testkit::contract::{self, Delivery, Mechanism};

const UDG: Mechanism = Mechanism {
    name: "dgram-udg",
    reader: env!("CARGO_BIN_EXE_dgram-reader"),
    writer: env!("CARGO_BIN_EXE_dgram-writer"),
    endpoint: |dir: &Path| vec![format!("udg://{}", dir.join("s.sock").display())],
    writer_can_start_first: true,
    delivery: Delivery::Queued,
    cut: false,
    limit: dgram::UNIX_KERNEL_MAX,
    refuses_over_limit: true,
    over_limit_says: "the most this can send",
    sizes: &[212_960, 212_961, 65_536],
    writer_waits: "waiting for a reader",
    reader_ready: "listening on",
    remove_leftovers: contract::remove_files_in,
    leftovers: contract::files_in,
};

const UDP: Mechanism = Mechanism {
    name: "dgram-udp",
    endpoint: |_: &Path| vec!["udp://127.0.0.1:0".into()],
    writer_can_start_first: false,
    limit: dgram::UDP_MAX_IPV4,
    sizes: &[1472, 1473, 9000],
    ..UDG
};

#[test]
fn contract_schedules_unix_datagrams() {
    contract::check(&UDG);
}

#[test]
fn contract_schedules_udp() {
    contract::check(&UDP);
}
