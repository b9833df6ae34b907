//! The message queue of the blog on Redis Streams, shared by `broker-writer` and `broker-reader`:
//! the same message bytes as the SysV queue (`mq`), carried by a Redis server instead of the
//! kernel, so writer and reader may be on different hosts.
//!
//! # The stream's entries
//!
//! One message is one stream entry with two fields, so that a PHP peer using phpredis reads and
//! writes the same stream: `type` (the SysV message type, as decimal text) and `body` (the
//! message's bytes: PHP-serialized as `msg_send` does, or raw).
//!
//! # Delivery: at least once
//!
//! Readers share a consumer group. `XREADGROUP` hands an entry to one reader and records it as
//! pending for that reader; the reader prints it, then acknowledges it (`XACK`). A reader that
//! dies between the two leaves the entry pending, and the next reader takes it over
//! (`XAUTOCLAIM`) once it has been idle for `--claim-after`: the message is printed again if the
//! first reader had printed it. Nothing acknowledged is delivered again; nothing unacknowledged is
//! dropped by a reader: an entry it cannot print stays pending until Redis has delivered it
//! `--max-deliveries` times, then is moved, whole, to a dead-letter stream
//! ([`Redis::receive_printable`]). Redis itself drops entries only
//! when they are trimmed (`XTRIM`, `XADD MAXLEN`) or the stream is deleted, and loses the last
//! second of writes on a crash unless `appendfsync always`: see the crate README.
//!
//! # Waiting
//!
//! Every wait is bounded by the run's [`Deadline`]: connecting is retried while Redis is not
//! there (refused, no socket file, loading its data), each command's reply is awaited at most
//! until the deadline, and `XREADGROUP BLOCK` waits in slices so a stop signal or the deadline
//! ends the wait within [`SLICE`]. A reader whose connection drops reconnects within the same
//! deadline (Redis restarted); a writer does not resend (it cannot know whether its `XADD` was
//! applied) and fails saying so.

use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use clap::Args;
use ipc_common::php;
use ipc_common::php::options::{Format, Printed};
use ipc_common::runtime::cleanup;
use ipc_common::runtime::wait::{self, Deadline, Timeout};
use redis::{ConnectionAddr, ConnectionInfo, ErrorKind, IntoConnectionInfo, RedisError};

pub mod cli;

/// The blog's message (the SysV queue's).
pub const MESSAGE: &str = "Hello from Writer: Message Queue";
/// Where Redis listens by default.
pub const DEFAULT_URL: &str = "redis://127.0.0.1:6379";
/// The stream: the blog's queue name.
pub const DEFAULT_STREAM: &str = "ipc-message-queues";
/// The readers' consumer group.
pub const DEFAULT_GROUP: &str = "ipc-readers";
/// The entry's fields.
pub const FIELD_TYPE: &str = "type";
pub const FIELD_BODY: &str = "body";
/// The environment variables that may hold the password (never the command line, where `ps`
/// shows it); `REDISCLI_AUTH` is the one `redis-cli` reads.
pub const PASSWORD_ENV: [&str; 2] = ["IPC_BROKER_PASSWORD", "REDISCLI_AUTH"];
/// Redis's own limit on one string (`proto-max-bulk-len`, 512 MiB by default).
pub const REDIS_MAX_BULK: usize = 512 << 20;
/// `XGROUP DELCONSUMER` only if nothing is pending for the consumer, in one step
/// ([`Redis::forget_consumer`]): 1 removed, 0 kept.
const FORGET_CONSUMER: &str = "\
if #redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2]) > 0 then return 0 end
redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
return 1";

/// Moves an entry nobody can print to the dead-letter stream ([`Redis::set_aside`]), in one step
/// so that a crash between the copy and the `XACK` can neither lose it nor leave it in both
/// places: only if it is still pending for us and has been delivered at least ARGV[4] times.
/// The copy keeps the original id unless the dead-letter stream already holds a later one
/// (entries set aside out of order, or from several streams): then Redis gives it a new one.
/// Replies `{1, id there, deliveries}` moved, `{2, deliveries}` below the limit, `{0}` no longer
/// pending for us, `{-1}` trimmed from the stream.
const SET_ASIDE: &str = "\
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if #p == 0 or p[1][2] ~= ARGV[3] then return {0} end
if p[1][4] < tonumber(ARGV[4]) then return {2, p[1][4]} end
local e = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])
if #e == 0 then return {-1} end
local id = redis.pcall('XADD', KEYS[2], ARGV[2], unpack(e[1][2]))
if type(id) == 'table' and id.err then id = redis.call('XADD', KEYS[2], '*', unpack(e[1][2])) end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
return {1, id, p[1][4]}";

/// The longest a `BLOCK` lasts before we look at signals and the deadline again.
pub const SLICE: Duration = Duration::from_millis(250);

/// The environment variables of the server's options, for `--help`.
pub const ENVIRONMENT: &str = "  IPC_BROKER_URL, IPC_BROKER_STREAM, IPC_BROKER_TLS_CA (--url, \
--stream, --tls-ca)\n  IPC_BROKER_PASSWORD, else REDISCLI_AUTH: the password (AUTH), never an \
option";

/// The options that name the server and the stream, the same for both sides.
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Redis server")]
pub struct ServerArgs {
    /// The Redis server: redis://[USER@]HOST[:PORT][/DB], rediss://... for TLS, or
    /// unix:///path/to/redis.sock. No password in it: see IPC_BROKER_PASSWORD.
    #[arg(long, value_name = "URL", default_value = DEFAULT_URL, value_parser = UrlParser,
        env = "IPC_BROKER_URL", hide_env = true)]
    pub url: Url,

    /// The stream the messages go through.
    #[arg(long, value_name = "KEY", default_value = DEFAULT_STREAM, env = "IPC_BROKER_STREAM",
        hide_env = true)]
    pub stream: String,

    /// For rediss://: trust this CA certificate (PEM) instead of the system's.
    #[arg(long, value_name = "FILE", env = "IPC_BROKER_TLS_CA", hide_env = true)]
    pub tls_ca: Option<PathBuf>,
}

/// `--url`'s parser: [`parse_url`], failing with clap's usage error (exit 2) in words of its
/// own, where clap's would repeat the value, and with it a password.
#[derive(Clone, Copy, Debug)]
pub struct UrlParser;

impl clap::builder::TypedValueParser for UrlParser {
    type Value = Url;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<Url, clap::Error> {
        let name = arg.map_or_else(|| "--url".to_owned(), ToString::to_string);
        let invalid = |why: String| {
            let why = format!("invalid value for '{name}': {why}");
            cmd.clone().error(clap::error::ErrorKind::InvalidValue, why)
        };
        let text = value.to_str().ok_or_else(|| invalid("not UTF-8".into()))?;
        parse_url(text).map_err(invalid)
    }
}

/// A parsed `--url`, and how it reads in messages (it holds no password).
#[derive(Clone, Debug)]
pub struct Url {
    pub info: ConnectionInfo,
    pub text: String,
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// What the redis crate accepts as a URL, without a password (it would be visible to every
/// user in `ps`). The error does not repeat `text`: it may hold one.
pub fn parse_url(text: &str) -> Result<Url, String> {
    let info = text
        .into_connection_info()
        .map_err(|err| format!("not a Redis URL: {err}"))?;
    if info.redis.password.is_some() {
        return Err(format!(
            "the URL holds a password, which every user on this host can read in `ps`: remove \
             it and set {} instead",
            PASSWORD_ENV[0]
        ));
    }
    Ok(Url {
        info,
        text: text.to_owned(),
    })
}

/// A connection to the server, and what it takes to make it again.
pub struct Redis {
    client: redis::Client,
    pub url: Url,
    con: redis::Connection,
    /// When [`Redis::receive`] next looks for entries other readers left pending: at once on
    /// the first receive, then every `claim_after` (a quarter second to a second), so that a
    /// reader taking many messages does not pay an `XAUTOCLAIM` round trip for each.
    next_claim: Instant,
}

impl fmt::Debug for Redis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redis").field("url", &self.url).finish()
    }
}

/// The password from the environment, if any.
fn password() -> Option<String> {
    PASSWORD_ENV
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|p| !p.is_empty()))
}

/// Connects, waiting while Redis is not there yet (refused, no socket file, loading its data
/// after a restart), until `deadline`. A refused password or a TLS failure ends the wait at once.
pub fn connect(args: &ServerArgs, deadline: &Deadline) -> anyhow::Result<Redis> {
    let url = args.url.clone();
    let mut info = url.info.clone();
    info.redis.password = password();
    let client = match (&info.addr, &args.tls_ca) {
        (ConnectionAddr::TcpTls { .. }, Some(ca)) => {
            let root_cert = std::fs::read(ca)
                .with_context(|| format!("read the CA certificate {}", ca.display()))?;
            let certs = redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(root_cert),
            };
            redis::Client::build_with_tls(info, certs)
        }
        (_, Some(_)) => bail!("--tls-ca is for rediss:// URLs, and {url} is not one"),
        (_, None) => redis::Client::open(info),
    }
    .with_context(|| format!("set up a client for {url}"))?;
    let con = open(&client, &url, deadline)?;
    Ok(Redis {
        client,
        url,
        con,
        next_claim: Instant::now(),
    })
}

fn open(
    client: &redis::Client,
    url: &Url,
    deadline: &Deadline,
) -> anyhow::Result<redis::Connection> {
    let mut announced = false;
    wait::retry(deadline, format_args!("Redis at {url}"), || {
        let left = deadline.remaining().unwrap_or(Duration::from_secs(3600));
        let ready = client
            .get_connection_with_timeout(left.max(Duration::from_millis(1)))
            .and_then(|mut con| {
                // Connected is not ready: a Redis loading its data after a restart accepts the
                // connection and answers every command with LOADING until it is done.
                con.set_read_timeout(Some(left.max(Duration::from_millis(1))))?;
                redis::cmd("PING").query::<()>(&mut con)?;
                Ok(con)
            });
        match ready {
            Ok(con) => Ok(Some(con)),
            // A stop signal's SIGCONT cut a read short (EINTR on a socket with a timeout): the
            // connection is in an unknown state, so a new one.
            Err(err) if interrupted(&err) => Ok(None),
            Err(err) if not_there_yet(&err) => {
                if !announced {
                    deadline.say(format_args!("waiting for Redis at {url} ({err})"));
                    announced = true;
                }
                Ok(None)
            }
            // The deadline ran out mid-connect (a host that does not answer).
            Err(err) if err.is_timeout() => Err(deadline.timed_out(format_args!("Redis at {url}"))),
            Err(err) => Err(explain(err, url)),
        }
    })
}

/// Whether a failed connect means "try again": nobody listening yet, the socket file not yet
/// there, the server loading its data, or a connection cut while it restarts.
fn not_there_yet(err: &RedisError) -> bool {
    err.is_connection_refusal()
        || err.is_connection_dropped()
        || err.kind() == ErrorKind::BusyLoadingError
}

/// Whether Redis refused a script: an ACL without `@scripting` (NOPERM), or `EVAL` renamed away.
fn scripts_refused(err: &RedisError) -> bool {
    err.code() == Some("NOPERM") || err.to_string().contains("unknown command")
}

/// Whether a call failed with `EINTR`.
fn interrupted(err: &RedisError) -> bool {
    std::error::Error::source(err)
        .and_then(|source| source.downcast_ref::<std::io::Error>())
        .is_some_and(|io| io.kind() == std::io::ErrorKind::Interrupted)
}

/// [`explain`], except that a reply that did not come before the deadline is a timeout (124).
fn failure(err: RedisError, url: &Url, deadline: &Deadline) -> anyhow::Error {
    match err.is_timeout() {
        true => deadline.timed_out(format_args!("Redis at {url} to answer")),
        false => explain(err, url),
    }
}

/// One line for an error from Redis, with what to do where we know it.
fn explain(err: RedisError, url: &Url) -> anyhow::Error {
    let hint = match err.kind() {
        ErrorKind::AuthenticationFailed => format!(
            ": Redis refused the password (set the right one in {}, or none if the server has \
             no requirepass)",
            PASSWORD_ENV[0]
        ),
        _ if err.code() == Some("NOAUTH") => format!(
            ": the server requires a password: set it in {}",
            PASSWORD_ENV[0]
        ),
        _ => String::new(),
    };
    anyhow!("Redis at {url}: {err}{hint}")
}

impl Redis {
    /// Runs one command, waiting for its reply at most until `deadline` (plus `extra`, for a
    /// command that itself blocks).
    fn query<T: redis::FromRedisValue>(
        &mut self,
        cmd: &redis::Cmd,
        deadline: &Deadline,
        extra: Duration,
    ) -> redis::RedisResult<T> {
        let left = deadline
            .remaining()
            .map(|d| d.max(Duration::from_millis(1)) + extra);
        self.con.set_read_timeout(left)?;
        self.con.set_write_timeout(left)?;
        cmd.query(&mut self.con)
    }

    /// An idempotent command, sent again on a new connection when the reply was cut off: Redis
    /// restarted, or a stop signal (SIGSTOP/SIGTSTP, then SIGCONT) interrupted the read, which a
    /// socket with a receive timeout reports as `EINTR` whatever `SA_RESTART` says (signal(7)).
    /// Redis's answer (or its error), and whether the command went out more than once.
    fn query_idempotent<T: redis::FromRedisValue>(
        &mut self,
        cmd: &redis::Cmd,
        deadline: &Deadline,
    ) -> anyhow::Result<(redis::RedisResult<T>, bool)> {
        let mut resent = false;
        loop {
            match self.query(cmd, deadline, Duration::ZERO) {
                Err(err) if err.is_io_error() && !err.is_timeout() => {
                    self.reconnect(deadline)?;
                    resent = true;
                }
                done => return Ok((done, resent)),
            }
        }
    }

    /// Connects again after the connection dropped (Redis restarted), within `deadline`.
    fn reconnect(&mut self, deadline: &Deadline) -> anyhow::Result<()> {
        deadline.say(format_args!(
            "lost the connection to {}, connecting again",
            self.url
        ));
        self.con = open(&self.client, &self.url, deadline)?;
        Ok(())
    }

    /// `XADD stream * type T body B`: the entry's id once Redis has it. Not retried: after a
    /// dropped connection nobody knows whether Redis applied it.
    pub fn add(
        &mut self,
        stream: &str,
        mtype: i64,
        body: &[u8],
        deadline: &Deadline,
    ) -> anyhow::Result<String> {
        let mut cmd = redis::cmd("XADD");
        cmd.arg(stream)
            .arg("*")
            .arg(FIELD_TYPE)
            .arg(mtype)
            .arg(FIELD_BODY)
            .arg(body);
        self.query(&cmd, deadline, Duration::ZERO).map_err(|err| {
            let url = &self.url;
            if err.is_timeout() {
                return deadline.timed_out(format_args!(
                    "Redis at {url} to answer XADD to stream {stream}: the message may or may \
                     not be in the stream (XRANGE shows it)"
                ));
            }
            let fate = if err.is_io_error() {
                "the connection failed mid-command, so the message may or may not be in the \
                 stream (XRANGE shows it); not sent again, to send no duplicate"
            } else {
                "the message is not in the stream"
            };
            let size = if body.len() > 1 << 20 {
                format!(
                    " (the message is {} bytes: the server's proto-max-bulk-len may be lower; \
                     CONFIG GET proto-max-bulk-len shows it)",
                    body.len()
                )
            } else {
                String::new()
            };
            explain(err, url).context(format!("XADD to stream {stream}: {fate}{size}"))
        })
    }

    /// `XGROUP CREATE stream group 0 MKSTREAM`: the group, reading from the stream's first entry
    /// (messages written before any reader came are delivered); `false` if it existed.
    pub fn create_group(
        &mut self,
        stream: &str,
        group: &str,
        deadline: &Deadline,
    ) -> anyhow::Result<bool> {
        let mut cmd = redis::cmd("XGROUP");
        cmd.arg("CREATE")
            .arg(stream)
            .arg(group)
            .arg("0")
            .arg("MKSTREAM");
        match self.query_idempotent::<()>(&cmd, deadline)?.0 {
            Ok(()) => Ok(true),
            Err(err) if err.code() == Some("BUSYGROUP") => Ok(false),
            Err(err) => Err(failure(err, &self.url, deadline)
                .context(format!("XGROUP CREATE {stream} {group} 0 MKSTREAM"))),
        }
    }

    /// The next message for `consumer`: one another reader left pending for `claim_after`
    /// (`XAUTOCLAIM`, on the first receive and then every `claim_after`, clamped to a quarter
    /// second to a second), else a new one (`XREADGROUP ... BLOCK`, in slices), until `deadline`.
    /// Reconnects when Redis restarts. Entries that were pending but had been trimmed from the
    /// stream before anyone acknowledged them are lost: their ids go to `lost` as they are found.
    pub fn receive(
        &mut self,
        from: &Group<'_>,
        deadline: &Deadline,
        lost: &mut dyn FnMut(&str),
    ) -> anyhow::Result<Entry> {
        let received = self.wait_for_entry(from, deadline, lost);
        if received.is_err() {
            // Timed out or stopped: our consumer (made by the first read) is not left in the
            // group, unless something is pending for it. A quarter second past --timeout for
            // that at most (two round trips; a Redis that does not answer keeps the consumer).
            let grace = Deadline::after(Timeout::from_duration(Duration::from_millis(250)));
            let _ = self.forget_consumer(from, &grace);
        }
        received
    }

    fn wait_for_entry(
        &mut self,
        from: &Group<'_>,
        deadline: &Deadline,
        lost: &mut dyn FnMut(&str),
    ) -> anyhow::Result<Entry> {
        let mut announced = false;
        // After a cut reply, what Redis may have handed us before the cut comes first.
        let mut recover = false;
        loop {
            cleanup::check_interrupted()?;
            let attempt = if std::mem::take(&mut recover) {
                self.own_pending(from, lost, deadline)
            } else if Instant::now() >= self.next_claim {
                self.next_claim =
                    Instant::now() + from.claim_after.clamp(SLICE, Duration::from_secs(1));
                self.claim(from, lost, deadline)
            } else {
                Ok(None)
            };
            let attempt = match attempt {
                Ok(None) => self.read_new(from, deadline),
                other => other,
            };
            match attempt {
                Ok(Some(entry)) => return Ok(entry),
                Ok(None) if deadline.expired() => {
                    return Err(deadline.timed_out(format_args!(
                        "a message on stream {} at {}",
                        from.stream, self.url
                    )));
                }
                Ok(None) if !announced => {
                    deadline.say(format_args!(
                        "waiting for a message on stream {} (group {}, consumer {})",
                        from.stream, from.group, from.consumer
                    ));
                    announced = true;
                }
                Ok(None) => {}
                Err(err)
                    if (err.is_io_error() && !err.is_timeout())
                        || err.kind() == ErrorKind::BusyLoadingError =>
                {
                    self.reconnect(deadline)?;
                    recover = true;
                }
                // The stream or group went away (deleted, or Redis restarted without its data):
                // made again, reading from the start of what is there.
                Err(err) if err.code() == Some("NOGROUP") => {
                    deadline.say(format_args!(
                        "group {} is gone: creating it again",
                        from.group
                    ));
                    self.create_group(from.stream, from.group, deadline)?;
                }
                Err(err) => {
                    return Err(failure(err, &self.url, deadline).context(format!(
                        "read from stream {} (group {})",
                        from.stream, from.group
                    )));
                }
            }
        }
    }

    /// The oldest entry pending for our own consumer (`XPENDING ... 1 consumer`, then `XCLAIM`
    /// it to ourselves): when a reply is cut off (Redis restarted, or a stop signal's `EINTR`
    /// on the read), `XREADGROUP ... >` may have delivered an entry whose reply we never read;
    /// `>` will not deliver it again, and `XAUTOCLAIM` only after `claim_after`. Delivered more
    /// than once: it may have been printed before (by a reader of ours that had our name).
    fn own_pending(
        &mut self,
        from: &Group<'_>,
        lost: &mut dyn FnMut(&str),
        deadline: &Deadline,
    ) -> redis::RedisResult<Option<Entry>> {
        let mut pending = redis::cmd("XPENDING");
        pending
            .arg(from.stream)
            .arg(from.group)
            .arg("-")
            .arg("+")
            .arg(1)
            .arg(from.consumer);
        let ours: redis::streams::StreamPendingCountReply =
            self.query(&pending, deadline, Duration::ZERO)?;
        let Some(oldest) = ours.ids.into_iter().next() else {
            return Ok(None);
        };
        let mut claim = redis::cmd("XCLAIM");
        claim
            .arg(from.stream)
            .arg(from.group)
            .arg(from.consumer)
            .arg(0)
            .arg(&oldest.id);
        let reply: redis::streams::StreamClaimReply =
            self.query(&claim, deadline, Duration::ZERO)?;
        match reply.ids.into_iter().next() {
            Some(id) => Ok(Some(Entry::from(id, oldest.times_delivered > 1))),
            // Trimmed from the stream before anyone acknowledged it (XCLAIM drops its id).
            None => {
                lost(&oldest.id);
                Ok(None)
            }
        }
    }

    /// `XAUTOCLAIM stream group consumer min-idle 0-0 COUNT 1`, through the whole pending list.
    fn claim(
        &mut self,
        from: &Group<'_>,
        lost: &mut dyn FnMut(&str),
        deadline: &Deadline,
    ) -> redis::RedisResult<Option<Entry>> {
        let mut start = "0-0".to_owned();
        loop {
            let mut cmd = redis::cmd("XAUTOCLAIM");
            cmd.arg(from.stream).arg(from.group).arg(from.consumer);
            cmd.arg(from.claim_after.as_millis() as u64)
                .arg(&start)
                .arg("COUNT")
                .arg(1);
            let reply: redis::streams::StreamAutoClaimReply =
                self.query(&cmd, deadline, Duration::ZERO)?;
            reply.deleted_ids.iter().for_each(|id| lost(id));
            if let Some(id) = reply.claimed.into_iter().next() {
                return Ok(Some(Entry::from(id, true)));
            }
            if reply.next_stream_id == "0-0" {
                return Ok(None);
            }
            start = reply.next_stream_id;
        }
    }

    /// `XREADGROUP GROUP group consumer COUNT 1 BLOCK ms STREAMS stream >`, one slice.
    fn read_new(
        &mut self,
        from: &Group<'_>,
        deadline: &Deadline,
    ) -> redis::RedisResult<Option<Entry>> {
        let slice = deadline.remaining().map_or(SLICE, |left| left.min(SLICE));
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(from.group)
            .arg(from.consumer)
            .arg("COUNT")
            .arg(1);
        // BLOCK 0 would block forever: at least 1 ms.
        cmd.arg("BLOCK").arg((slice.as_millis() as u64).max(1));
        cmd.arg("STREAMS").arg(from.stream).arg(">");
        let reply: Option<redis::streams::StreamReadReply> =
            self.query(&cmd, deadline, Duration::from_millis(100))?;
        Ok(reply
            .and_then(|r| r.keys.into_iter().next())
            .and_then(|key| key.ids.into_iter().next())
            .map(|id| Entry::from(id, false)))
    }

    /// `XACK stream group id`: `false` if the entry was no longer pending for us (another reader
    /// claimed it meanwhile, or it was trimmed): it may be printed twice.
    pub fn ack(&mut self, from: &Group<'_>, id: &str, deadline: &Deadline) -> anyhow::Result<bool> {
        let mut cmd = redis::cmd("XACK");
        cmd.arg(from.stream).arg(from.group).arg(id);
        match self.query_idempotent::<u64>(&cmd, deadline)?.0 {
            Ok(n) => Ok(n == 1),
            Err(err) => Err(failure(err, &self.url, deadline).context(format!(
                "XACK {} {} {id}: the message stays pending and will be delivered again",
                from.stream, from.group
            ))),
        }
    }

    /// Removes our consumer from the group if nothing is pending for it (`XGROUP DELCONSUMER`
    /// would drop its pending entries): consumers named per process would otherwise pile up.
    /// The look and the removal are one script, which Redis runs without anything in between:
    /// a reader sharing our consumer name (`--consumer`, or HOST-PID alike in two containers)
    /// may receive an entry under it at any moment, and separate XPENDING and DELCONSUMER
    /// dropped that entry from the pending list, for good. A Redis that refuses scripts (an
    /// ACL without `@scripting`, or `EVAL` renamed away) keeps the consumer: `false`, as when
    /// something is pending.
    pub fn forget_consumer(
        &mut self,
        from: &Group<'_>,
        deadline: &Deadline,
    ) -> anyhow::Result<bool> {
        let mut forget = redis::cmd("EVAL");
        forget
            .arg(FORGET_CONSUMER)
            .arg(1)
            .arg(from.stream)
            .arg(from.group)
            .arg(from.consumer);
        match self.query_idempotent::<i64>(&forget, deadline)?.0 {
            Ok(removed) => Ok(removed == 1),
            Err(err) if scripts_refused(&err) => Ok(false),
            Err(err) => Err(failure(err, &self.url, deadline)),
        }
    }

    /// The next message `print` accepts, with what it printed: [`Redis::receive`], and an entry
    /// `print` refuses is set aside ([`Redis::set_aside`]) once delivered
    /// `dead.max_deliveries` times, and the next one taken, within the same `deadline`; below
    /// the limit, `print`'s error with how many deliveries are left. `warn` gets one line for
    /// each entry set aside or found trimmed.
    pub fn receive_printable(
        &mut self,
        from: &Group<'_>,
        dead: &DeadLetter,
        deadline: &Deadline,
        warn: &mut dyn FnMut(fmt::Arguments<'_>),
        print: &mut dyn FnMut(&Entry) -> anyhow::Result<Printed>,
    ) -> anyhow::Result<(Entry, Printed)> {
        loop {
            let entry = self.receive(from, deadline, &mut |id| {
                warn(format_args!(
                    "entry {id} was received by a reader that never acknowledged it, and has \
                     since been trimmed from stream {}: that message is lost",
                    from.stream
                ));
            })?;
            let stream = from.stream;
            deadline.say(format_args!(
                "received {} from stream {stream}",
                entry.describe()
            ));
            let why = match print(&entry) {
                Ok(printed) => return Ok((entry, printed)),
                Err(why) => why,
            };
            let there = self.set_aside(from, dead, &entry.id, deadline)?;
            let (id, key) = (&entry.id, &dead.key);
            match there {
                SetAside::Moved {
                    id: there,
                    deliveries,
                } => warn(format_args!(
                    "{why:#}; delivered {}, so moved to stream {key} as entry {there} and \
                     acknowledged: it no longer blocks stream {stream} (redis-cli XRANGE {key} \
                     {there} {there} shows it)",
                    times(deliveries)
                )),
                SetAside::Below(n) => bail!(
                    "{why:#}: left pending, not acknowledged; delivered {}: after {} it is moved \
                     to stream {key} (--max-deliveries {})",
                    times(n),
                    match dead.max_deliveries.saturating_sub(n).max(1) {
                        1 => "1 more delivery".to_owned(),
                        more => format!("{more} more deliveries"),
                    },
                    dead.max_deliveries
                ),
                SetAside::Never => bail!(
                    "{why:#}: left pending, not acknowledged; never moved aside \
                     (--max-deliveries 0): another reader may print it, or remove it by hand"
                ),
                SetAside::NotOurs => bail!(
                    "{why:#}: not acknowledged; no longer pending for us (another reader took it \
                     over, or it was acknowledged), so not moved aside"
                ),
                SetAside::Unknown => bail!(
                    "{why:#}: the connection dropped while moving it to stream {key}, and it is \
                     no longer pending for us: either it was moved (redis-cli XRANGE {key} - + \
                     shows it) or another reader took it over"
                ),
                SetAside::Trimmed => bail!(
                    "{why:#}: not acknowledged; since trimmed from stream {stream}: nothing to \
                     move aside"
                ),
                SetAside::Refused(err) => bail!(
                    "{why:#}: left pending, not acknowledged; cannot be moved aside to stream \
                     {key}: Redis refused the script that moves and acknowledges it in one step \
                     ({err}); allow EVAL (@scripting) or remove entry {id} by hand"
                ),
            }
        }
    }

    /// Moves entry `id`, which we could not print, to the dead-letter stream and acknowledges
    /// it, in one `EVAL` (`SET_ASIDE`), if it is still pending for us and has been delivered
    /// `dead.max_deliveries` times (Redis counts: `XREADGROUP` 1, each `XAUTOCLAIM` or `XCLAIM`
    /// one more). Never `XDEL`: the entry stays in the stream, as every acknowledged one.
    pub fn set_aside(
        &mut self,
        from: &Group<'_>,
        dead: &DeadLetter,
        id: &str,
        deadline: &Deadline,
    ) -> anyhow::Result<SetAside> {
        if dead.max_deliveries == 0 {
            return Ok(SetAside::Never);
        }
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(SET_ASIDE)
            .arg(2)
            .arg(from.stream)
            .arg(&dead.key)
            .arg(from.group)
            .arg(id)
            .arg(from.consumer)
            .arg(dead.max_deliveries);
        // Sent again when the reply was cut off: if the first one ran, the entry is no longer
        // pending for us and the second does nothing.
        let (reply, resent) = self.query_idempotent::<Vec<redis::Value>>(&cmd, deadline)?;
        let reply = match reply {
            Ok(reply) => reply,
            Err(err) if scripts_refused(&err) => return Ok(SetAside::Refused(err.to_string())),
            Err(err) => {
                return Err(failure(err, &self.url, deadline).context(format!(
                    "move entry {id} of stream {} to stream {}: it stays pending",
                    from.stream, dead.key
                )));
            }
        };
        let text = |v: Option<&redis::Value>| match v {
            Some(redis::Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
            Some(redis::Value::SimpleString(s)) => s.clone(),
            other => format!("{other:?}"),
        };
        Ok(match reply.first() {
            Some(redis::Value::Int(1)) => SetAside::Moved {
                id: text(reply.get(1)),
                deliveries: match reply.get(2) {
                    Some(redis::Value::Int(n)) => (*n).max(0) as u64,
                    _ => dead.max_deliveries,
                },
            },
            Some(redis::Value::Int(2)) => match reply.get(1) {
                Some(redis::Value::Int(n)) => SetAside::Below((*n).max(0) as u64),
                other => bail!("EVAL moving entry {id} aside answered {other:?}"),
            },
            Some(redis::Value::Int(-1)) => SetAside::Trimmed,
            Some(redis::Value::Int(0)) if resent => SetAside::Unknown,
            Some(redis::Value::Int(0)) => SetAside::NotOurs,
            other => bail!("EVAL moving entry {id} aside answered {other:?}"),
        })
    }
}

/// "once", "2 times".
fn times(n: u64) -> String {
    match n {
        1 => "once".into(),
        n => format!("{n} times"),
    }
}

/// Where entries nobody can print go ([`Redis::set_aside`]), and after how many deliveries.
#[derive(Clone, Debug)]
pub struct DeadLetter {
    /// The dead-letter stream.
    pub key: String,
    /// Deliveries after which an entry that cannot be printed is moved; 0: never.
    pub max_deliveries: u64,
}

/// What [`Redis::set_aside`] did with an entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SetAside {
    /// Moved to the dead-letter stream, where it has this `id`, and acknowledged, after this
    /// many `deliveries`.
    Moved { id: String, deliveries: u64 },
    /// Left pending: delivered this many times, fewer than the limit.
    Below(u64),
    /// Left pending: `max_deliveries` is 0.
    Never,
    /// No longer pending for us: another reader took it over, or it was acknowledged.
    NotOurs,
    /// No longer pending for us after the connection dropped mid-`EVAL`: either that `EVAL`
    /// moved it, or another reader took it over.
    Unknown,
    /// Trimmed from the stream: nothing to move.
    Trimmed,
    /// Left pending: Redis refused `EVAL` (this error).
    Refused(String),
}

/// Where a reader reads: the stream, its group, its own consumer name, and how long another
/// reader's pending entry must have been idle before it is taken over.
#[derive(Clone, Copy, Debug)]
pub struct Group<'a> {
    pub stream: &'a str,
    pub group: &'a str,
    pub consumer: &'a str,
    pub claim_after: Duration,
}

/// A message as the stream holds it.
#[derive(Clone, Debug)]
pub struct Entry {
    pub id: String,
    /// The `type` field, if it is a number.
    pub mtype: Option<i64>,
    /// The `body` field; `None`: not one of ours (no `body`, or not a string).
    pub body: Option<Vec<u8>>,
    /// Taken over from a reader that did not acknowledge it: possibly printed before.
    pub claimed: bool,
}

impl Entry {
    /// How the reader names it: id, type, and whether another reader had it first.
    pub fn describe(&self) -> String {
        let mtype = self.mtype.map_or("no type".into(), |t| format!("type {t}"));
        let claimed = match self.claimed {
            true => ", taken over from a reader that did not acknowledge it",
            false => "",
        };
        format!("entry {} ({mtype}){claimed}", self.id)
    }

    /// The body as the reader prints it ([`decode`]), if at most `max_size` bytes; an error says
    /// why not ([`Redis::receive_printable`] says what becomes of the entry).
    pub fn printed(
        &self,
        stream: &str,
        max_size: usize,
        raw: bool,
        format: Format,
    ) -> anyhow::Result<Printed> {
        let id = &self.id;
        let body = self.body.as_deref().with_context(|| {
            format!("entry {id} of stream {stream} has no `body` string field: not one of ours")
        })?;
        if body.len() > max_size {
            bail!(
                "entry {id} of stream {stream} is {} bytes, over --max-size {max_size}",
                body.len()
            );
        }
        decode(body, raw, format).with_context(|| format!("print entry {id} of stream {stream}"))
    }

    fn from(id: redis::streams::StreamId, claimed: bool) -> Entry {
        let bytes = |name: &str| match id.map.get(name) {
            Some(redis::Value::BulkString(b)) => Some(b.clone()),
            Some(redis::Value::SimpleString(s)) => Some(s.clone().into_bytes()),
            _ => None,
        };
        let mtype = bytes(FIELD_TYPE)
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.parse().ok());
        let body = bytes(FIELD_BODY);
        Entry {
            id: id.id,
            mtype,
            body,
            claimed,
        }
    }
}

/// The body as the reader prints it: unserialized as PHP's `msg_receive` does (trailing bytes
/// ignored, as there) and printed the chosen way; `raw`: as it is.
pub fn decode(body: &[u8], raw: bool, format: Format) -> anyhow::Result<Printed> {
    if raw {
        return Ok(Printed {
            bytes: body.to_vec(),
            array_echoed: false,
        });
    }
    let (value, _) = php::unserialize(body)
        .map_err(|err| anyhow!("not PHP-serialized: {err} (--raw prints it as it is)"))?;
    format.print(&value).map_err(|why| anyhow!("{why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_take_no_password() {
        assert!(parse_url("redis://127.0.0.1:6379").is_ok());
        assert!(parse_url("redis://user@127.0.0.1:6379/2").is_ok());
        assert!(parse_url("unix:///run/redis/redis.sock").is_ok());
        assert!(parse_url("rediss://localhost:6380").is_ok());
        let err = parse_url("redis://:secret@127.0.0.1").unwrap_err();
        assert!(
            err.contains("IPC_BROKER_PASSWORD") && !err.contains("secret"),
            "{err}"
        );
        assert!(parse_url("http://x").is_err());
    }

    #[test]
    fn decodes_as_the_sysv_reader_does() {
        let body = php::serialize(&php::Value::String(b"hi".to_vec()));
        assert_eq!(decode(&body, false, Format::Echo).unwrap().bytes, b"hi");
        assert_eq!(decode(&body, true, Format::Echo).unwrap().bytes, body);
        assert_eq!(decode(b"i:42;", false, Format::Json).unwrap().bytes, b"42");
        assert!(decode(b"not serialized", false, Format::Echo).is_err());
    }
}
