//! The contract (docs/reliability.md) checked as invariants over generated schedules for the
//! queue on Redis Streams, raw (`--raw`: any bytes, up to the --max-size the test gives): see
//! `ipc_testkit::contract`. One redis-server of the test's own serves every schedule, each on a
//! stream of its own (its directory's name). The writer's exit 0 means Redis holds the message
//! for the reader; no consumer of ours is left in the group unless something is pending for it
//! (a reader the schedule killed), which the engine then removes with the stream.

mod common;

use std::path::Path;
use std::sync::OnceLock;

use common::{GROUP, READER, Server, WRITER, available};
use ipc_testkit::contract::{self, Delivery, Mechanism};

/// The URL of the test's server, for the endpoint functions (plain `fn`s).
static URL: OnceLock<String> = OnceLock::new();
const LIMIT: usize = 65536;

fn stream(dir: &Path) -> String {
    dir.file_name().unwrap().to_string_lossy().into_owned()
}

fn connection() -> redis::Connection {
    let con = redis::Client::open(URL.get().unwrap().as_str())
        .and_then(|c| c.get_connection_with_timeout(ipc_testkit::STEP))
        .expect("connect to the test's redis-server");
    con.set_read_timeout(Some(ipc_testkit::STEP)).unwrap();
    con
}

fn endpoint(dir: &Path) -> Vec<String> {
    [
        "--url",
        URL.get().unwrap(),
        "--stream",
        &stream(dir),
        "--raw",
    ]
    .into_iter()
    .chain(["--max-size", &LIMIT.to_string()])
    .map(String::from)
    .collect()
}

/// Our consumers still in the stream's group (a reader leaves its own only while something is
/// pending for it), and files in the directory.
fn leftovers(dir: &Path) -> Vec<String> {
    let mut left = contract::files_in(dir);
    let consumers: redis::RedisResult<Vec<redis::Value>> = redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg(stream(dir))
        .arg(GROUP)
        .query(&mut connection());
    if let Ok(consumers) = consumers {
        left.extend(consumers.iter().map(|c| format!("consumer {c:?}")));
    }
    left
}

fn remove_leftovers(dir: &Path) {
    contract::remove_files_in(dir);
    let _: redis::RedisResult<u64> = redis::cmd("DEL").arg(stream(dir)).query(&mut connection());
}

#[test]
fn contract_schedules_redis_streams() {
    if !available() {
        return;
    }
    let server = Server::start(&[]);
    URL.set(server.unix_url()).unwrap();
    contract::check(&Mechanism {
        name: "broker",
        reader: READER,
        writer: WRITER,
        endpoint,
        writer_can_start_first: true,
        delivery: Delivery::Queued,
        cut: false,
        limit: LIMIT,
        refuses_over_limit: true,
        over_limit_says: "the most this can send",
        sizes: &[4096, 4097],
        writer_waits: "added",
        reader_ready: "waiting for a message",
        remove_leftovers,
        leftovers,
    });
}
