//! `broker-bench`: what crossing a host costs, one message at a time: the SysV queue
//! (`msgsnd` + `msgrcv`) beside Redis Streams over its Unix socket and over TCP on loopback
//! (`XADD`, then `XREADGROUP` + `XACK` on a second connection, as broker-writer and
//! broker-reader do), each message sent only after the previous one was taken. Starts its own
//! redis-server (a temporary directory, a private socket and port; AOF off, or
//! `appendfsync always` with `--aof`) and stops it at the end; an IPC_PRIVATE queue, removed.
//!
//! ```text
//! cargo run --release -p broker --example broker-bench [-- --count 5000 --aof]
//! ```
//! Kept apart from ipc-bench (its own tool, no shared code), to be folded into its mechanism
//! table later. Timings on a shared machine are indications, not assertions.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ipc_common::php::{self, Value};
use ipc_common::sysv::{self, Key, MsgBuf};

struct Redis {
    child: Child,
    _dir: tempfile::TempDir,
    socket: String,
    port: u16,
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_redis(aof: bool) -> anyhow::Result<Redis> {
    let dir = tempfile::Builder::new().prefix("broker-bench-").tempdir()?;
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let socket = dir.path().join("redis.sock").display().to_string();
    let (appendonly, fsync) = if aof {
        ("yes", "always")
    } else {
        ("no", "everysec")
    };
    let child = Command::new("redis-server")
        .args([
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--unixsocket",
            &socket,
        ])
        .args([
            "--unixsocketperm",
            "700",
            "--save",
            "",
            "--appendonly",
            appendonly,
        ])
        .args(["--appendfsync", fsync, "--dir"])
        .arg(dir.path())
        .stdout(Stdio::null())
        .spawn()
        .context("start redis-server (apt-get install -y redis-server)")?;
    let redis = Redis {
        child,
        _dir: dir,
        socket,
        port,
    };
    let until = Instant::now() + Duration::from_secs(10);
    while connect(&redis.unix_url()).is_err() {
        if Instant::now() > until {
            bail!("redis-server did not answer within 10 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(redis)
}

impl Redis {
    fn unix_url(&self) -> String {
        format!("unix://{}", self.socket)
    }
    fn tcp_url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

fn connect(url: &str) -> redis::RedisResult<redis::Connection> {
    let con = redis::Client::open(url)?.get_connection_with_timeout(Duration::from_secs(5))?;
    con.set_read_timeout(Some(Duration::from_secs(5)))?;
    Ok(con)
}

/// One message at a time through the stream: the time of each XADD + XREADGROUP + XACK.
fn redis_round(url: &str, body: &[u8], count: usize) -> anyhow::Result<Vec<Duration>> {
    let (mut writer, mut reader) = (connect(url)?, connect(url)?);
    let stream = format!("bench-{}", std::process::id());
    redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&stream)
        .arg("g")
        .arg("$")
        .arg("MKSTREAM")
        .query::<()>(&mut reader)?;
    let mut times = Vec::with_capacity(count);
    for _ in 0..count {
        let start = Instant::now();
        redis::cmd("XADD")
            .arg(&stream)
            .arg("*")
            .arg("type")
            .arg(1)
            .arg("body")
            .arg(body)
            .query::<String>(&mut writer)?;
        let reply: redis::streams::StreamReadReply = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg("g")
            .arg("c")
            .arg("COUNT")
            .arg(1)
            .arg("BLOCK")
            .arg(1000)
            .arg("STREAMS")
            .arg(&stream)
            .arg(">")
            .query(&mut reader)?;
        let id = &reply.keys[0].ids[0].id;
        redis::cmd("XACK")
            .arg(&stream)
            .arg("g")
            .arg(id)
            .query::<u64>(&mut reader)?;
        times.push(start.elapsed());
    }
    redis::cmd("DEL").arg(&stream).query::<u64>(&mut writer)?;
    Ok(times)
}

/// The same through a private SysV queue: msgsnd + msgrcv.
fn sysv_round(body: &[u8], count: usize) -> anyhow::Result<Vec<Duration>> {
    let id = sysv::msg_create(Key(libc::IPC_PRIVATE), 0o600)?;
    let (mut out, mut inb) = (MsgBuf::new(), MsgBuf::new());
    let mut times = Vec::with_capacity(count);
    let result = (|| {
        for _ in 0..count {
            let start = Instant::now();
            out.send(id, 1, body, 0)?;
            inb.receive(id, body.len(), 0, 0)?;
            times.push(start.elapsed());
        }
        anyhow::Ok(())
    })();
    sysv::msg_remove(id)?;
    result.map(|()| times)
}

fn report(name: &str, size: usize, mut times: Vec<Duration>) {
    times.sort();
    let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
    let total: Duration = times.iter().sum();
    println!(
        "| {name} | {size} | {:.1} | {:.1} | {:.0} |",
        at(0.5),
        at(0.99),
        times.len() as f64 / total.as_secs_f64()
    );
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let count = match args.iter().position(|a| a == "--count") {
        Some(i) => args.get(i + 1).context("--count N")?.parse()?,
        None => 5000,
    };
    let aof = args.iter().any(|a| a == "--aof");
    let redis = start_redis(aof)?;
    let blog = php::serialize(&Value::String(broker::MESSAGE.as_bytes().to_vec()));
    let page = vec![b'x'; 4096];
    println!("| one message at a time | bytes | median µs | p99 µs | messages/s (mean) |");
    println!("|---|---|---|---|---|");
    let redis_name = |how: &str| {
        format!(
            "Redis Streams, {how}{}",
            if aof { ", AOF always" } else { "" }
        )
    };
    for body in [&blog[..], &page[..]] {
        report("SysV queue", body.len(), sysv_round(body, count)?);
        report(
            &redis_name("Unix socket"),
            body.len(),
            redis_round(&redis.unix_url(), body, count)?,
        );
        report(
            &redis_name("TCP loopback"),
            body.len(),
            redis_round(&redis.tcp_url(), body, count)?,
        );
    }
    Ok(())
}
