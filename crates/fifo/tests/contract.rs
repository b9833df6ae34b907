//! The contract (docs/reliability.md) checked as invariants over generated schedules for the
//! named pipe: see `ipc_testkit::contract`. The writer's exit 0 means a reader read every byte.
//! A schedule that breaks a promise fails with the seed that replays it.

use std::path::Path;

use ipc_testkit::contract::{self, Delivery, Mechanism};

const FIFO: Mechanism = Mechanism {
    name: "fifo",
    reader: env!("CARGO_BIN_EXE_fifo-reader"),
    writer: env!("CARGO_BIN_EXE_fifo-writer"),
    endpoint: |dir: &Path| vec![dir.join("fifo").display().to_string()],
    writer_can_start_first: true,
    delivery: Delivery::Consumed,
    cut: true,
    // A pipe has no message limit; these cross its 64 KiB buffer.
    limit: 1 << 20,
    refuses_over_limit: false,
    over_limit_says: "the most this can send",
    sizes: &[65_535, 65_536, 65_537],
    writer_waits: "waiting for a reader",
    reader_ready: "waiting for a writer",
    remove_leftovers: contract::remove_files_in,
    leftovers: contract::files_in,
};

#[test]
fn contract_schedules_fifo() {
    contract::check(&FIFO);
}
