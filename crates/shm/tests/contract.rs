//! The contract (docs/reliability.md) checked as invariants over generated schedules for shared
//! memory in PHP's sysvshm layout (a 1024-byte store holds one string of at most 943 bytes):
//! see `ipc_testkit::contract`. The writer's exit 0 means the segment holds the variable for
//! the reader. A schedule that breaks a promise fails with the seed that replays it.

use std::path::Path;

use ipc_testkit::contract::{self, Delivery, Mechanism};

#[test]
fn contract_schedules_sysvshm() {
    contract::check(&Mechanism {
        name: "shm-sysvshm",
        reader: env!("CARGO_BIN_EXE_shm-reader"),
        writer: env!("CARGO_BIN_EXE_shm-writer"),
        endpoint: |dir: &Path| {
            let key = ipc_testkit::key_file(dir);
            vec!["--key-file".into(), key.display().to_string()]
        },
        writer_can_start_first: true,
        delivery: Delivery::Queued,
        cut: false,
        limit: 943,
        refuses_over_limit: true,
        over_limit_says: "not enough shared memory left",
        sizes: &[512],
        writer_waits: "put variable",
        reader_ready: "waiting for",
        remove_leftovers: contract::remove_sysv_leftovers,
        leftovers: contract::sysv_leftovers,
    });
}
