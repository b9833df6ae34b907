//! Request/response over one queue: who pushes and who reads which messages. Every request goes
//! as type [`REQUEST_TYPE`] (1), the only type `mq-reader --serve` takes; each client reads only
//! its own type, its pid, which the request names. The body of a request is a PHP-serialized
//! array, as PHP's `msg_send($queue, 1, ['reply_type' => getmypid(), 'message' => $message])`
//! writes it; the answer is the message, serialized again, sent as type `reply_type`. See the
//! crate README, "Request/response".

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, anyhow, bail};
use clap::Args;
use ipc_common::php::{self, ArrayKey, Value};
use ipc_common::runtime::cleanup::Cleanup;
use ipc_common::runtime::cli::{CommonArgs, Mode};
use ipc_common::runtime::report;
use ipc_common::runtime::wait::{self, Deadline, TimedOut, Timeout};
use ipc_common::sysv::{self, MsgBuf};

use crate::{KeyArgs, Queue, Wanted};

/// The type every request is sent as, and the only type the server reads.
pub const REQUEST_TYPE: i64 = 1;

/// The `--help` heading of the request/response options.
pub const HEADING: &str = "Request/response";

/// `mq-reader --serve`.
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = HEADING)]
pub struct ServeArgs {
    /// Serve requests instead of reading one message: take each message of type 1 (a
    /// PHP-serialized array ['reply_type' => PID, 'message' => VALUE]), print it whole as one JSON
    /// line, and send VALUE back, serialized, as type PID. Creates the queue (--mode) if missing.
    #[arg(long, conflicts_with_all = ["desired_type", "raw", "format", "max_size"])]
    pub serve: bool,

    /// With --serve: how many requests to answer, 0 = until SIGINT/SIGTERM. Each wait for a
    /// request (unless 0) and for room for each answer is bounded by --timeout; so is the wait,
    /// at the end, for the answers to be read.
    #[arg(long, value_name = "N", default_value = "0", requires = "serve")]
    pub requests: u64,
}

/// `mq-writer --request`.
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = HEADING)]
pub struct RequestArgs {
    /// Send the message as a request to `mq-reader --serve` (type 1, the array
    /// ['reply_type' => our pid, 'message' => the message]) and print the answer, which comes as
    /// type <our pid>; both within --timeout.
    #[arg(long, conflicts_with_all = ["raw", "mtype"])]
    pub request: bool,

    /// With --request: the type to be answered on, 2 or more [default: our pid]. Pids are unique
    /// only within one PID namespace: clients in separate containers (each often pid 1) need
    /// types of their own.
    #[arg(long, value_name = "N", requires = "request",
        value_parser = clap::value_parser!(i64).range(2..))]
    pub reply_type: Option<i64>,
}

impl RequestArgs {
    /// The type our answer comes as, with `--request`: `--reply-type`, else our pid; but pid 1
    /// (a container's first process) is the requests' own type, and is refused.
    pub fn reply_type(&self) -> anyhow::Result<Option<i64>> {
        if !self.request {
            return Ok(None);
        }
        let pid = i64::from(std::process::id());
        match self.reply_type {
            Some(n) => Ok(Some(n)),
            None if pid == REQUEST_TYPE => bail!(
                "our pid is 1 (the first process of a PID namespace, a container's), and type 1 is \
                 the requests': pass --reply-type N, a type no other client uses"
            ),
            None => Ok(Some(pid)),
        }
    }
}

/// A deadline of its own for one step of a server: `--timeout` from now, or none at all.
pub fn step_deadline(common: &CommonArgs, forever: bool) -> Deadline {
    let deadline = match forever {
        true => Deadline::after(Timeout::FOREVER),
        false => Deadline::after(common.timeout),
    };
    match common.quiet {
        true => deadline,
        false => deadline.reporting(report::stderr_line),
    }
}

/// A request as the server took it.
#[derive(Debug)]
pub struct Request {
    /// The type the answer goes as: the client's pid.
    pub reply_type: i64,
    /// The request whole, as one JSON line for stdout.
    pub line: Vec<u8>,
    /// The answer's body: the message, serialized again.
    pub answer: Vec<u8>,
}

/// The body of a request from `reply_type` and the message.
pub fn request_body(reply_type: i64, message: Value) -> Vec<u8> {
    php::serialize(&Value::Array(vec![
        (
            ArrayKey::String(b"reply_type".to_vec()),
            Value::Int(reply_type),
        ),
        (ArrayKey::String(b"message".to_vec()), message),
    ]))
}

/// Reads a request body; an error says what is wrong with it.
pub fn parse(body: &[u8]) -> anyhow::Result<Request> {
    let (value, _) = php::unserialize(body).map_err(|err| anyhow!("not PHP-serialized: {err}"))?;
    let Value::Array(entries) = &value else {
        bail!("not an array ['reply_type' => PID, 'message' => VALUE]");
    };
    let field = |name: &[u8]| {
        entries
            .iter()
            .find(|(key, _)| matches!(key, ArrayKey::String(k) if k == name))
            .map(|(_, v)| v)
    };
    let reply_type = match field(b"reply_type") {
        Some(Value::Int(n)) if *n > REQUEST_TYPE => *n,
        Some(other) => bail!(
            "its reply_type must be an integer of 2 or more (type 1 is the requests'), not {}",
            String::from_utf8_lossy(&php::serialize(other))
        ),
        None => bail!("it has no 'reply_type' (the type to answer on: the client's pid)"),
    };
    let message = field(b"message").context("it has no 'message'")?;
    let line = value
        .to_json()
        .map_err(|why| anyhow!("cannot be printed as JSON: {why}"))?;
    Ok(Request {
        reply_type,
        line: line.into_bytes(),
        answer: php::serialize(message),
    })
}

/// `msgrcv(MSG_COPY)` until a request is queued, then `msgrcv(1)` takes it. A message of type
/// 1 that is not a request is not taken (where the kernel has `MSG_COPY`): it and the queue
/// stay, and the server stops saying why.
pub fn take_request(
    buf: &mut MsgBuf,
    queue: Queue,
    deadline: &Deadline,
) -> anyhow::Result<Request> {
    let key = queue.key;
    let max_len = sysv::msgmax().context("read msgmax from /proc/sys/kernel/msgmax")?;
    let not_a_request = |err: anyhow::Error, taken: &str| {
        err.context(format!(
            "the message of type {REQUEST_TYPE} on queue {key} is not a request; {taken}"
        ))
    };
    let looked = crate::peek(buf, queue, max_len, REQUEST_TYPE, deadline)?;
    if let Some((_, copy)) = &looked {
        parse(copy).map_err(|err| not_a_request(err, "it was not taken: it and the queue stay"))?;
    }
    let wanted = Wanted {
        queue,
        desired_type: REQUEST_TYPE,
    };
    let mut text = Vec::new();
    crate::receive_announced(buf, wanted, max_len, &mut text, deadline)?;
    parse(&text).map_err(|err| {
        not_a_request(
            err,
            &format!(
                "it was taken (no MSG_COPY, or another server): its {} bytes began {}",
                text.len(),
                text[..text.len().min(200)].escape_ascii()
            ),
        )
    })
}

/// `msgsnd(reply_type)` of the answer, waiting for room until `deadline`. `Ok(false)`: the
/// queue stayed full, the client was not answered (the caller says so and goes on).
pub fn answer(
    buf: &mut MsgBuf,
    queue: Queue,
    request: &Request,
    deadline: &Deadline,
) -> anyhow::Result<bool> {
    match crate::send(buf, queue, request.reply_type, &request.answer, deadline) {
        Ok(()) => Ok(true),
        Err(err) if err.is::<TimedOut>() => Ok(false),
        Err(err) => Err(err),
    }
}

/// Waits until the queue is empty (every answer read) or `deadline` passes; returns the types
/// of the messages left, oldest first (read with `MSG_COPY`; where it is missing, a 0 for each).
pub fn wait_until_read(
    buf: &mut MsgBuf,
    queue: Queue,
    deadline: &Deadline,
) -> anyhow::Result<Vec<i64>> {
    let drained = wait::retry(deadline, "the answers to be read", || {
        let stat = sysv::msg_stat(queue.id).map_err(|errno| {
            crate::denied(errno, format!("msgctl(IPC_STAT) queue {}", queue.key))
        })?;
        Ok((stat.messages == 0).then_some(()))
    });
    match drained {
        Ok(()) => return Ok(Vec::new()),
        Err(err) if err.is::<TimedOut>() => {}
        Err(err) => return Err(err),
    }
    let max_len = sysv::msgmax().unwrap_or(8192);
    let mut types = Vec::new();
    while let Ok((mtype, _)) = buf.peek(queue.id, max_len, types.len() as i64) {
        types.push(mtype);
    }
    // Without MSG_COPY the types are unknown, not absent: 0 stands for each.
    if types.is_empty() {
        let left = sysv::msg_stat(queue.id).map_or(1, |stat| stat.messages.max(1));
        types.resize(usize::try_from(left).unwrap_or(1).min(100), 0);
    }
    Ok(types)
}

/// The pids a server did not answer, or whose answer was not read, for its final error.
#[derive(Debug)]
pub struct Pids<'a>(pub &'a [i64]);

impl fmt::Display for Pids<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, pid) in self.0.iter().enumerate() {
            write!(f, "{}{pid}", if i == 0 { "" } else { ", " })?;
        }
        Ok(())
    }
}

/// `mq-reader --serve`'s queue and what it keeps track of across requests.
#[derive(Debug)]
pub struct Server {
    pub queue: Queue,
    buf: MsgBuf,
    sent: Arc<AtomicU64>,
    guards: Vec<Cleanup>,
    unanswered: Vec<i64>,
}

impl Server {
    /// The key file (created if missing) and the queue (`msgget(IPC_CREAT | IPC_EXCL | mode)`
    /// if missing): the server is the long-lived side, so either may start first. What it
    /// created is removed if its run fails or is stopped, as far as only its answers are in it.
    pub fn open(key: &KeyArgs, mode: Mode) -> anyhow::Result<Server> {
        let created_key_file = crate::cli::create_key_file(&key.key_file, mode)?.ok();
        let keyed = crate::key_of(&key.key_file, key.proj)?;
        let sent = Arc::<AtomicU64>::default();
        let (queue, created) = crate::open_or_create(&keyed, mode, Arc::clone(&sent))?;
        Ok(Server {
            queue,
            buf: MsgBuf::new(),
            sent,
            guards: created.into_iter().chain(created_key_file).collect(),
            unanswered: Vec::new(),
        })
    }

    /// `msgrcv(MSG_COPY)` then `msgrcv(1)`: the next request ([`take_request`]).
    pub fn take(&mut self, deadline: &Deadline) -> anyhow::Result<Request> {
        take_request(&mut self.buf, self.queue, deadline)
    }

    /// `msgsnd(reply_type)` of the answer ([`answer`]); `false`: the queue stayed full until
    /// `deadline`, that client is not answered, and [`Server::finish`] will fail saying so.
    pub fn answer(&mut self, request: &Request, deadline: &Deadline) -> anyhow::Result<bool> {
        let answered = answer(&mut self.buf, self.queue, request, deadline)?;
        match answered {
            true => self.sent.fetch_add(1, Ordering::Relaxed),
            false => {
                self.unanswered.push(request.reply_type);
                0
            }
        };
        Ok(answered)
    }

    /// After the last request: fails if a client was not answered; waits until `deadline` for
    /// the answers to be read, and fails naming those that were not (a client gone: the queue is
    /// then removed only if nothing but our answers is in it); else the blog's reader's
    /// `msgctl(IPC_RMID)`, unless `keep`.
    pub fn finish(mut self, keep: bool, deadline: &Deadline) -> anyhow::Result<String> {
        let key = self.queue.key;
        anyhow::ensure!(
            self.unanswered.is_empty(),
            "queue {key} stayed full for --timeout: no answer was sent for type {}",
            Pids(&self.unanswered)
        );
        let unread = wait_until_read(&mut self.buf, self.queue, deadline)?;
        anyhow::ensure!(
            unread.is_empty(),
            "queue {key}: messages of type {} were not read within --timeout (the answers of \
             clients gone?); the queue is removed only if nothing but our answers is in it",
            Pids(&unread)
        );
        self.guards.into_iter().for_each(Cleanup::keep);
        let removal = crate::cli::remove_unless_kept(self.queue, keep)?;
        Ok(crate::cli::removal_line(key, removal).1)
    }
}

/// `1..=requests`, or without end for 0.
pub fn counting(requests: u64) -> impl Iterator<Item = u64> {
    (1..).take_while(move |n| requests == 0 || *n <= requests)
}

/// `msgrcv(reply_type)` until the answer to our request is there or `deadline` passes; returns
/// it as PHP's `echo` prints it. `request` is the body we sent: an answer is ours only if it is
/// the echo of its message. Another message on our type (an answer left for a client gone whose
/// pid we have now, or sent for a request that named our type) is not printed as ours: it goes
/// to `stray`, its bytes with it (taken off the queue, it must not vanish, `--quiet` or not),
/// and the wait goes on.
pub fn receive_answer(
    buf: &mut MsgBuf,
    queue: Queue,
    reply_type: i64,
    request: &[u8],
    deadline: &Deadline,
    stray: &mut dyn FnMut(fmt::Arguments<'_>),
) -> anyhow::Result<Vec<u8>> {
    let expected = parse(request)
        .context("our own request (a bug: it should have been a request)")?
        .answer;
    let max_len = sysv::msgmax().context("read msgmax from /proc/sys/kernel/msgmax")?;
    let wanted = Wanted {
        queue,
        desired_type: reply_type,
    };
    let mut answer = Vec::new();
    loop {
        crate::receive_announced(buf, wanted, max_len, &mut answer, deadline)
            .context("the answer to our request (is `mq-reader --serve` running on this queue?)")?;
        if is_echo(&answer, &expected) {
            return Ok(crate::decode(&answer, queue.key, crate::Format::Echo)?.bytes);
        }
        stray(format_args!(
            "took a message of type {reply_type} from queue {} that is not the answer to our \
             request (not the echo of our message): one left for a client gone whose pid we \
             have now, or sent for a request that named our type; its {} bytes: {}; waiting on \
             for ours (--reply-type N: a type nobody else uses)",
            queue.key,
            answer.len(),
            answer.escape_ascii()
        ));
    }
}

/// Whether `answer` is the message we sent, serialized again (by us or by PHP, whose text for
/// the same value may differ: compared as we serialize the value it holds).
fn is_echo(answer: &[u8], expected: &[u8]) -> bool {
    answer == expected
        || php::unserialize(answer).is_ok_and(|(value, _)| php::serialize(&value) == expected)
}
