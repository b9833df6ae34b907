//! A redis-server of the test's own: a private temporary directory (its data, its AOF, its Unix
//! socket), a TCP port on loopback picked by binding port 0, `appendfsync always`, stopped (and
//! its directory removed) when dropped. Nothing here talks to a Redis the test did not start.
//!
//! Skip rule: without `redis-server`, a test outside CI prints one line and passes; with
//! `CI=true` it fails.
#![allow(dead_code, unreachable_pub)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ipc_testkit::{STEP, skipped};

pub const WRITER: &str = env!("CARGO_BIN_EXE_broker-writer");
pub const READER: &str = env!("CARGO_BIN_EXE_broker-reader");
pub const REDIS_SERVER: &str = "/usr/bin/redis-server";
pub const SKIP_LINE: &str =
    "skipping Redis tests: redis-server not installed (apt-get install -y redis-server)";

/// Whether the tests can start a Redis; `false` after the visible skip line, a panic in CI.
#[track_caller]
pub fn available() -> bool {
    if Path::new(REDIS_SERVER).is_file() {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("the Redis tests must run in CI (CI is set): {REDIS_SERVER} is missing");
    }
    skipped(SKIP_LINE);
    false
}

#[derive(Debug)]
pub struct Server {
    pub dir: tempfile::TempDir,
    pub port: u16,
    extra: Vec<String>,
    /// A command redis-server runs under (`ip netns exec NAME`), if any.
    pub prefix: Vec<String>,
    child: Option<Child>,
}

impl Server {
    /// A server with `extra` configuration (`--requirepass x`, ...), started and answering.
    pub fn start(extra: &[&str]) -> Server {
        let mut server = Server::new(extra);
        server.launch();
        server
    }

    /// A server not started yet: its URLs are known, nothing listens there.
    pub fn new(extra: &[&str]) -> Server {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("pick a free port on loopback")
            .port();
        Server {
            dir: ipc_testkit::temp_dir(),
            port,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            prefix: Vec::new(),
            child: None,
        }
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("redis.sock")
    }

    pub fn unix_url(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    pub fn tcp_url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn command(&self) -> Command {
        let mut command = match self.prefix.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(REDIS_SERVER);
                command
            }
            None => Command::new(REDIS_SERVER),
        };
        let dir = self.dir.path();
        command
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .arg("--unixsocket")
            .arg(self.socket())
            .args(["--unixsocketperm", "700", "--dir"])
            .arg(dir)
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ])
            .args(["--logfile"])
            .arg(dir.join("redis.log"))
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        command
    }

    /// Starts redis-server and waits (at most [`STEP`]) until it answers PING on its socket.
    pub fn launch(&mut self) {
        assert!(self.child.is_none(), "already running");
        self.child = Some(self.command().spawn().expect("start redis-server"));
        let until = Instant::now() + STEP;
        loop {
            if let Ok(mut con) = self.admin_try() {
                if redis::cmd("PING").query::<String>(&mut con).is_ok() {
                    return;
                }
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("redis-server exited {status}: {}", self.log());
            }
            assert!(
                Instant::now() < until,
                "redis-server did not answer: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }

    /// Stops it with SIGTERM (Redis flushes its AOF and exits) and waits for it.
    pub fn stop(&mut self) {
        self.end(nix::sys::signal::Signal::SIGTERM);
    }

    /// Kills it with SIGKILL: only what reached the AOF survives.
    pub fn crash(&mut self) {
        self.end(nix::sys::signal::Signal::SIGKILL);
    }

    /// Sends `signal` to the running server (SIGSTOP: a server that no longer answers).
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let child = self.child.as_ref().expect("running");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal)
            .expect("signal redis-server");
    }

    fn end(&mut self, signal: nix::sys::signal::Signal) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, signal);
        let until = Instant::now() + STEP;
        while child.try_wait().expect("wait for redis-server").is_none() {
            if Instant::now() > until {
                let _ = child.kill();
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn admin_try(&self) -> redis::RedisResult<redis::Connection> {
        let client = redis::Client::open(self.unix_url().as_str())?;
        let mut info = client.get_connection_info().clone();
        info.redis.password = self.password();
        let con = redis::Client::open(info)?.get_connection_with_timeout(STEP)?;
        con.set_read_timeout(Some(STEP))?;
        Ok(con)
    }

    fn password(&self) -> Option<String> {
        let at = self.extra.iter().position(|a| a == "--requirepass")?;
        self.extra.get(at + 1).cloned()
    }

    /// A connection of the test's own, to look at and arrange the stream.
    pub fn admin(&self) -> redis::Connection {
        self.admin_try()
            .expect("connect to the test's redis-server")
    }

    /// One command of the test's own.
    pub fn query<T: redis::FromRedisValue>(&self, args: &[&str]) -> T {
        let mut cmd = redis::cmd(args[0]);
        for arg in &args[1..] {
            cmd.arg(*arg);
        }
        cmd.query(&mut self.admin())
            .unwrap_or_else(|err| panic!("{args:?}: {err}"))
    }

    /// How many entries of `stream`'s group are pending (received, not acknowledged).
    pub fn pending(&self, stream: &str, group: &str) -> usize {
        let summary = redis::cmd("XPENDING")
            .arg(stream)
            .arg(group)
            .query(&mut self.admin());
        match summary {
            Err(err) if err.code() == Some("NOGROUP") => 0,
            Err(err) => panic!("XPENDING: {err}"),
            Ok(summary) => match summary {
                redis::Value::Array(items) => match items.first() {
                    Some(redis::Value::Int(n)) => *n as usize,
                    other => panic!("XPENDING: {other:?}"),
                },
                other => panic!("XPENDING: {other:?}"),
            },
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One of our binaries against `url`, bounded (`--timeout 5` unless given), password cleared.
pub fn ours(binary: &str, url: &str, args: &[&str]) -> Command {
    let mut command = ipc_testkit::ours(binary);
    command.env_remove("REDISCLI_AUTH").args(["--url", url]);
    ipc_testkit::bounded(command, args)
}

/// The blog's message as the reader prints it.
pub const PRINTED: &[u8] = b"Hello from Writer: Message Queue\n";
pub const STREAM: &str = "ipc-message-queues";
pub const GROUP: &str = "ipc-readers";
