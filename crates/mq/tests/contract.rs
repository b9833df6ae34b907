//! The contract (docs/reliability.md) checked as invariants over generated schedules for the
//! message queue, raw (`--raw`: any bytes, up to msgmax): see `ipc_testkit::contract`. The
//! writer's exit 0 means the queue holds the message for the reader. A schedule that breaks a
//! promise fails with the seed that replays it.

use std::path::Path;

use ipc_testkit::contract::{self, Delivery, Mechanism};

#[test]
fn contract_schedules_message_queue() {
    let msgmax = ipc_common::sysv::msgmax().expect("read msgmax");
    contract::check(&Mechanism {
        name: "mq",
        reader: env!("CARGO_BIN_EXE_mq-reader"),
        writer: env!("CARGO_BIN_EXE_mq-writer"),
        endpoint: |dir: &Path| {
            let key = ipc_testkit::key_file(dir);
            vec![
                "--key-file".into(),
                key.display().to_string(),
                "--raw".into(),
            ]
        },
        writer_can_start_first: true,
        delivery: Delivery::Queued,
        cut: false,
        limit: msgmax,
        refuses_over_limit: true,
        over_limit_says: "over msgmax",
        sizes: &[4096, 4097],
        writer_waits: "left queue",
        reader_ready: "waiting for",
        remove_leftovers: contract::remove_sysv_leftovers,
        leftovers: contract::sysv_leftovers,
    });
}
