//! From two processes' strace logs to one exchange: which calls matter to the example, which
//! kernel object each one touches, and which send of one process the other's receive got.
//!
//! Calls are classified by what they do, never by an expected sequence, so the tracer keeps
//! working while the examples change their syscalls: a call is shown when it creates, uses or
//! removes an IPC object (a socket that is not a private `socketpair`, a FIFO, a SysV object);
//! a transfer is linked to its counterpart through the kernel object both name (the receiving
//! Unix socket's inode, the TCP connection's address pair, the UDP port, the FIFO's path, the
//! queue's msqid and message type), in order, by bytes.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::strace::{self, Call, Line, Ret};

/// Which process of the pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Side {
    Reader,
    Writer,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::Reader => "reader",
            Side::Writer => "writer",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// One thread's trace file.
#[derive(Debug, Clone)]
pub struct ThreadLog {
    pub tid: u32,
    pub lines: Vec<Line>,
}

/// One process's traces: its threads, and how many lines could not be parsed.
#[derive(Debug, Clone, Default)]
pub struct SideLog {
    /// What runs on this side, for the titles (`dgram-reader`, `php dgram-uds-listener.php`).
    pub label: String,
    pub pid: u32,
    pub threads: Vec<ThreadLog>,
    pub unparsed: usize,
}

impl SideLog {
    /// Parses per-thread trace texts; lines that do not parse are counted, never fatal.
    pub fn parse(label: &str, threads: Vec<(u32, String)>) -> SideLog {
        let mut log = SideLog {
            label: label.to_string(),
            ..SideLog::default()
        };
        let mut main = None;
        for (tid, text) in threads {
            let mut lines: Vec<Line> = Vec::new();
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                match strace::parse_line(line) {
                    Ok(Line::Resumed(end)) => merge_resumed(&mut lines, end),
                    Ok(parsed) => lines.push(parsed),
                    Err(_) => log.unparsed += 1,
                }
            }
            let execs = lines
                .iter()
                .any(|l| matches!(l, Line::Call(c) if c.name == "execve"));
            if execs && main.is_none_or(|m| tid < m) {
                main = Some(tid);
            }
            log.threads.push(ThreadLog { tid, lines });
        }
        log.threads.sort_by_key(|t| t.tid);
        log.pid = main
            .or_else(|| log.threads.first().map(|t| t.tid))
            .unwrap_or(0);
        log
    }
}

/// Joins `<... NAME resumed>` to the `<unfinished ...>` start of the same call, the latest of
/// the thread's calls with that name that did not return: one call, from its start to its end.
/// Without such a start it stands alone, timed from when it returned.
fn merge_resumed(lines: &mut Vec<Line>, end: Call) {
    let start = lines.iter_mut().rev().find_map(|line| match line {
        Line::Call(c) if c.name == end.name && c.dur_us.is_none() && c.ret == Ret::Unknown => {
            Some(c)
        }
        _ => None,
    });
    // `-T` on the resumed line is the whole call's time; its `-ttt` stamp is when it returned.
    match start {
        Some(start) => {
            start.args = format!("{}, {}", start.args.trim_end_matches(','), end.args)
                .trim_matches([' ', ','])
                .to_string();
            start.dur_us = match end.ret {
                Ret::Unknown => None,
                _ => Some(
                    end.dur_us
                        .unwrap_or_else(|| end.ts_us.saturating_sub(start.ts_us)),
                ),
            };
            start.ret = end.ret;
        }
        None => {
            let mut end = end;
            end.ts_us = end.ts_us.saturating_sub(end.dur_us.unwrap_or(0));
            lines.push(Line::Call(end));
        }
    }
}

/// A kernel object as `-yy` annotates a descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Obj {
    /// `UNIX-STREAM:[ino->peer,"path"]`, `UNIX:[ino,"path"]` (strace calls datagram sockets
    /// `UNIX`; some versions `UNIX-DGRAM`).
    Unix {
        stream: bool,
        ino: u64,
        peer: Option<u64>,
        path: Option<String>,
    },
    /// `TCP:[127.0.0.1:40000->127.0.0.1:9999]`, `UDP:[127.0.0.1:9999]`, `TCP:[22128]`.
    Ip {
        tcp: bool,
        local: Option<String>,
        remote: Option<String>,
    },
    /// A file system path (`/tmp/ipc-named-pipe`).
    Path(String),
    /// Anything else (`pipe:[123]`, `NETLINK:[...]`, `anon_inode:...`).
    Other(String),
}

impl Obj {
    /// Reads an annotation (the text between `N<` and `>`).
    pub fn parse(annotation: &str) -> Obj {
        if let Some(path) = annotation.strip_prefix('/').map(|_| annotation) {
            // Devices carry a suffix: `/dev/null<char 1:3>`; unlinked files ` (deleted)`.
            let path = path.split('<').next().unwrap_or(path);
            return Obj::Path(path.trim_end_matches(" (deleted)").to_string());
        }
        let Some((kind, rest)) = annotation.split_once(':') else {
            return Obj::Other(annotation.to_string());
        };
        let inner = rest
            .strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .unwrap_or(rest);
        match kind {
            "UNIX" | "UNIX-STREAM" | "UNIX-DGRAM" | "UNIX-SEQPACKET" => {
                let (ids, path) = match inner.split_once(',') {
                    Some((ids, path)) => (ids, Some(unquote(path))),
                    None => (inner, None),
                };
                let (ino, peer) = match ids.split_once("->") {
                    Some((a, b)) => (a.parse().ok(), b.parse().ok()),
                    None => (ids.parse().ok(), None),
                };
                match ino {
                    Some(ino) => Obj::Unix {
                        stream: kind == "UNIX-STREAM",
                        ino,
                        peer,
                        path: path.filter(|p| !p.is_empty()),
                    },
                    None => Obj::Other(annotation.to_string()),
                }
            }
            "TCP" | "TCPv6" | "UDP" | "UDPv6" => {
                let tcp = kind.starts_with("TCP");
                if inner.bytes().all(|b| b.is_ascii_digit()) {
                    return Obj::Ip {
                        tcp,
                        local: None,
                        remote: None,
                    };
                }
                let (local, remote) = match inner.split_once("->") {
                    Some((l, r)) => (l.to_string(), Some(r.to_string())),
                    None => (inner.to_string(), None),
                };
                Obj::Ip {
                    tcp,
                    local: Some(local),
                    remote,
                }
            }
            _ => Obj::Other(annotation.to_string()),
        }
    }
}

/// `"path"` → `path` (C escapes kept as strace printed them).
fn unquote(text: &str) -> String {
    let text = text.trim();
    text.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text)
        .to_string()
}

/// The port at the end of `127.0.0.1:9999` or `[::1]:9999`.
fn port_of(addr: &str) -> Option<u16> {
    addr.rsplit(':').next()?.parse().ok()
}

/// What a shown call does, for the pictures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Creates, names, connects or opens an IPC object.
    Setup,
    /// Hands bytes to the kernel object (`sendto`, `write`, `msgsnd`).
    Send,
    /// Takes bytes from it (`recvfrom`, `read`, `msgrcv`).
    Recv,
    /// A receive that found the end of the stream (returned 0).
    Eof,
    /// Waits for the object to be ready (`poll`, `select`).
    Wait,
    /// Maps or unmaps shared memory (`shmat`, `shmdt`).
    Attach,
    /// A semaphore operation: the lock around shared memory.
    Sync,
    /// Closes or removes what was created (`close`, `unlink`, `IPC_RMID`).
    Teardown,
    /// Shown only with `--all`.
    Noise,
}

/// The kernel object through which bytes travel, as both sides name it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChannelKey {
    /// The receiving Unix socket's inode.
    Unix(u64),
    /// A sender's unconnected `sendto` to a socket path, resolved to [`ChannelKey::Unix`].
    UnixPath(String),
    /// A TCP connection, from sender address to receiver address.
    Tcp(String, String),
    /// The UDP port datagrams are sent to.
    Udp(u16),
    /// A FIFO's path.
    Fifo(String),
    /// A SysV queue's msqid and the message type.
    Msg(i64, i64),
}

/// One call of one process, as shown.
#[derive(Debug, Clone)]
pub struct Event {
    pub side: Side,
    pub tid: u32,
    pub start_us: u64,
    /// `None` when the call did not return (the process ended in it).
    pub dur_us: Option<u64>,
    pub name: String,
    pub args: String,
    pub ret: Ret,
    pub class: Class,
    /// Bytes handed over or taken (sends and receives that succeeded).
    pub bytes: Option<u64>,
    pub channel: Option<ChannelKey>,
    /// Whether the channel keeps message boundaries (datagrams, queue messages).
    pub messages: bool,
    /// How many identical failing calls in a row this one stands for (retry loops).
    pub repeat: u32,
    /// End of the last of those repeats.
    pub last_end_us: u64,
}

impl Event {
    pub fn end_us(&self) -> u64 {
        self.last_end_us
    }

    /// The call's result as the terminal shows it: `37`, `-1 ENOENT`, `?`.
    pub fn ret_text(&self) -> String {
        match &self.ret {
            Ret::Value { value, .. } if self.name == "shmat" || *value > 0xffff_ffff => {
                format!("{value:#x}")
            }
            Ret::Value { value, .. } => value.to_string(),
            Ret::Error { errno } => format!("-1 {errno}"),
            Ret::Unknown => "?".to_string(),
        }
    }
}

/// A transfer linked to its counterpart: `bytes` of the send at `send` arrived in the receive
/// at `recv` (indices into [`Exchange::events`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub id: usize,
    pub send: usize,
    pub recv: usize,
    pub bytes: u64,
    /// What the channel is, in words: `Unix datagram socket /tmp/x.sock`.
    pub via: String,
}

/// Both processes' calls in time order, and the links between them.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub labels: [String; 2],
    pub pids: [u32; 2],
    pub events: Vec<Event>,
    pub links: Vec<Link>,
    /// Sends and receives no counterpart was found for (a peer that never came, a lost datagram).
    pub unlinked: Vec<usize>,
    /// Shared memory was attached: the bytes moved with no system call.
    pub shared_memory: bool,
    /// Lines of strace output that could not be parsed (skipped).
    pub unparsed: usize,
    /// Time zero of the pictures: the first shown call.
    pub origin_us: u64,
}

const SENDS: [&str; 8] = [
    "sendto", "sendmsg", "sendmmsg", "send", "write", "writev", "pwrite64", "pwritev",
];
const RECVS: [&str; 8] = [
    "recvfrom", "recvmsg", "recvmmsg", "recv", "read", "readv", "pread64", "preadv",
];
const SOCKET_SETUP: [&str; 7] = [
    "socket", "bind", "listen", "accept", "accept4", "connect", "shutdown",
];
const WAITS: [&str; 7] = [
    "poll",
    "ppoll",
    "select",
    "pselect6",
    "epoll_wait",
    "epoll_pwait",
    "epoll_pwait2",
];

/// What one process knows about its objects before its calls are classified.
#[derive(Debug, Default)]
struct Known {
    /// Inodes of `socketpair`s: private to one process (our signal thread's), never IPC.
    private: HashSet<u64>,
    fifos: HashSet<String>,
    socket_paths: HashSet<String>,
    /// A bound, unconnected Unix socket's path → its inode (for unconnected `sendto`).
    unix_by_path: HashMap<String, u64>,
    /// A Unix socket's inode → its path, for the words describing a channel.
    path_by_ino: HashMap<u64, String>,
    /// Paths whose every use is shown (the SysV examples' key file).
    watched: HashSet<String>,
    /// A connected Unix socket's inode → its peer's, from any annotation of either process:
    /// strace may print a socket without its peer just after `connect`.
    peer_of: HashMap<u64, u64>,
}

impl Known {
    fn learn(&mut self, call: &Call) {
        let all = [call.args.as_str(), ret_rest(&call.ret)];
        if call.name == "socketpair" {
            for (_, ann) in strace::annotated_fds(&call.args) {
                if let Obj::Unix { ino, peer, .. } = Obj::parse(ann) {
                    self.private.insert(ino);
                    self.private.extend(peer);
                }
            }
            return;
        }
        for text in all {
            for (_, ann) in strace::annotated_fds(text) {
                if let Obj::Unix {
                    ino,
                    peer: Some(peer),
                    ..
                } = Obj::parse(ann)
                {
                    self.peer_of.insert(ino, peer);
                    self.peer_of.insert(peer, ino);
                }
                if let Obj::Unix {
                    ino,
                    peer,
                    path: Some(path),
                    ..
                } = Obj::parse(ann)
                {
                    self.socket_paths.insert(path.clone());
                    self.path_by_ino.insert(ino, path.clone());
                    if peer.is_none() {
                        self.unix_by_path.insert(path, ino);
                    }
                }
            }
        }
        if matches!(call.name.as_str(), "bind" | "connect") {
            self.socket_paths.extend(field(&call.args, "sun_path="));
        }
        if call.args.contains("S_IFIFO") && !matches!(call.ret, Ret::Error { .. }) {
            let by_fd = || match strace::annotated_fds(&call.args).first() {
                Some((_, ann)) => match Obj::parse(ann) {
                    Obj::Path(path) => Some(path),
                    _ => None,
                },
                None => None,
            };
            self.fifos.extend(call_path(call).or_else(by_fd));
        }
        if call.name.starts_with("mknod") && call.args.contains("S_IFIFO") {
            // Also when it failed with EEXIST: the path is a FIFO somebody made.
            self.fifos.extend(call_path(call));
        }
    }

    fn is_ipc(&self, obj: &Obj) -> bool {
        match obj {
            Obj::Unix { ino, peer, .. } => {
                !self.private.contains(ino) && !peer.is_some_and(|p| self.private.contains(&p))
            }
            Obj::Ip { .. } => true,
            Obj::Path(path) => self.fifos.contains(path),
            Obj::Other(_) => false,
        }
    }
}

fn ret_rest(ret: &Ret) -> &str {
    match ret {
        Ret::Value { rest, .. } => rest,
        _ => "",
    }
}

/// The value of `name="..."` or `name=N` in `args`.
fn field(args: &str, name: &str) -> Option<String> {
    let at = args.find(name)? + name.len();
    let rest = &args[at..];
    if let Some(quoted) = rest.strip_prefix('"') {
        let mut out = String::new();
        let mut escaped = false;
        for c in quoted.chars() {
            if escaped {
                out.push('\\');
                out.push(c);
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                return Some(out);
            } else {
                out.push(c);
            }
        }
        return None;
    }
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .unwrap_or(rest.len());
    Some(rest[..end].to_string())
}

/// The path a path-taking call names: its first quoted argument, joined to the directory of a
/// `*at` call's descriptor when relative.
fn call_path(call: &Call) -> Option<String> {
    let args = strace::split_args(&call.args);
    let (index, quoted) = args.iter().enumerate().find(|(_, a)| a.starts_with('"'))?;
    let path = unquote(quoted);
    if path.is_empty() {
        return None;
    }
    if path.starts_with('/') || index == 0 {
        return Some(path);
    }
    match strace::annotated_fds(args[0])
        .first()
        .map(|(_, a)| Obj::parse(a))
    {
        Some(Obj::Path(dir)) => Some(format!("{}/{path}", dir.trim_end_matches('/'))),
        _ => Some(path),
    }
}

/// The first IPC object a call touches, through its arguments or its returned descriptor.
fn ipc_object(call: &Call, known: &Known) -> Option<Obj> {
    strace::annotated_fds(&call.args)
        .into_iter()
        .chain(strace::annotated_fds(&format!("0{}", ret_rest(&call.ret))))
        .map(|(_, ann)| Obj::parse(ann))
        .find(|obj| known.is_ipc(obj))
}

/// Classifies one call; `None` when it has nothing to do with the exchange.
fn classify(call: &Call, known: &Known) -> Option<(Class, Option<ChannelKey>, bool, Option<u64>)> {
    let name = call.name.as_str();
    // A watched path (an ftok key file: ftok(3) is a stat(2) of it).
    if !known.watched.is_empty() {
        // By the path it names (not a write of the path's text to stderr), or a close or
        // fchmod of a descriptor opened on it.
        let by_path = !SENDS.contains(&name)
            && !RECVS.contains(&name)
            && call_path(call).is_some_and(|p| known.watched.contains(&p));
        let by_fd = matches!(name, "close" | "fchmod")
            && strace::annotated_fds(&call.args)
                .into_iter()
                .any(|(_, a)| matches!(Obj::parse(a), Obj::Path(p) if known.watched.contains(&p)));
        let named = by_path || by_fd;
        if named {
            let class = if name.starts_with("unlink") || name == "close" {
                Class::Teardown
            } else {
                Class::Setup
            };
            return Some((class, None, false, None));
        }
    }
    let ok_value = call.ret.value().filter(|v| *v >= 0);
    let obj = ipc_object(call, known);
    match name {
        "shmget" | "shmctl" | "msgget" | "msgctl" | "semget" => {
            let class = if call.args.contains("IPC_RMID") {
                Class::Teardown
            } else {
                Class::Setup
            };
            return Some((class, None, false, None));
        }
        "semctl" if call.args.contains("IPC_RMID") => {
            return Some((Class::Teardown, None, false, None));
        }
        "shmat" | "shmdt" => return Some((Class::Attach, None, false, None)),
        "semop" | "semtimedop" => return Some((Class::Sync, None, false, None)),
        "msgsnd" => {
            let args = strace::split_args(&call.args);
            let msqid = args.first().and_then(|a| a.parse::<i64>().ok())?;
            let mtype = field(&call.args, "mtype=").and_then(|t| t.parse().ok())?;
            let size = args.get(2).and_then(|a| a.parse::<u64>().ok());
            let sent = ok_value.and(size);
            return Some((Class::Send, Some(ChannelKey::Msg(msqid, mtype)), true, sent));
        }
        // mq-reader looks at a copy before taking a message (MSG_COPY): nothing moves.
        "msgrcv" if call.args.contains("MSG_COPY") => {
            return Some((Class::Wait, None, true, None));
        }
        "msgrcv" => {
            let msqid = strace::split_args(&call.args)
                .first()
                .and_then(|a| a.parse::<i64>().ok())?;
            let got = ok_value.map(|v| v as u64);
            let channel = field(&call.args, "mtype=")
                .and_then(|t| t.parse().ok())
                .filter(|_| got.is_some())
                .map(|mtype| ChannelKey::Msg(msqid, mtype));
            return Some((Class::Recv, channel, true, got));
        }
        _ => {}
    }
    if name.starts_with("mknod") {
        let fifo = call.args.contains("S_IFIFO") || call.args.contains("S_IFSOCK");
        return fifo.then_some((Class::Setup, None, false, None));
    }
    if name == "unlink" || name == "unlinkat" {
        let path = call_path(call)?;
        let ours = known.fifos.contains(&path) || known.socket_paths.contains(&path);
        return ours.then_some((Class::Teardown, None, false, None));
    }
    if name == "open" || name == "openat" || name == "openat2" {
        if call.args.contains("O_PATH") {
            return None;
        }
        let path = call_path(call)?;
        return known
            .fifos
            .contains(&path)
            .then_some((Class::Setup, None, false, None));
    }
    let obj = obj?;
    if SOCKET_SETUP.contains(&name) {
        return Some((Class::Setup, None, false, None));
    }
    if WAITS.contains(&name) {
        return Some((Class::Wait, None, false, None));
    }
    if name == "close" {
        return Some((Class::Teardown, None, false, None));
    }
    let send = SENDS.contains(&name);
    if !send && !RECVS.contains(&name) {
        return None;
    }
    // sendmmsg/recvmmsg return how many messages, not bytes: shown, never linked.
    let bytes = ok_value
        .map(|v| v as u64)
        .filter(|_| !name.ends_with("mmsg"));
    if !send && bytes == Some(0) {
        return Some((Class::Eof, None, false, None));
    }
    let class = if send { Class::Send } else { Class::Recv };
    let (channel, messages) = match obj {
        Obj::Unix {
            stream, ino, peer, ..
        } => {
            let key = if send {
                match peer.or_else(|| known.peer_of.get(&ino).copied()) {
                    Some(peer) => Some(ChannelKey::Unix(peer)),
                    None => field(&call.args, "sun_path=").map(ChannelKey::UnixPath),
                }
            } else {
                Some(ChannelKey::Unix(ino))
            };
            (key, !stream)
        }
        Obj::Ip {
            tcp: true,
            local,
            remote,
        } => match (local, remote) {
            (Some(l), Some(r)) if send => (Some(ChannelKey::Tcp(l, r)), false),
            (Some(l), Some(r)) => (Some(ChannelKey::Tcp(r, l)), false),
            _ => (None, false),
        },
        Obj::Ip {
            tcp: false,
            local,
            remote,
        } => {
            let port = if send {
                remote
                    .as_deref()
                    .and_then(port_of)
                    .or_else(|| field(&call.args, "sin6_port=htons(").and_then(|p| p.parse().ok()))
                    .or_else(|| field(&call.args, "sin_port=htons(").and_then(|p| p.parse().ok()))
            } else {
                local.as_deref().and_then(port_of)
            };
            (port.map(ChannelKey::Udp), true)
        }
        Obj::Path(path) => (Some(ChannelKey::Fifo(path)), false),
        Obj::Other(_) => (None, false),
    };
    Some((class, channel.filter(|_| bytes.is_some()), messages, bytes))
}

impl Exchange {
    /// Builds the exchange from both sides' logs. With `all`, every call is kept (the ones
    /// that do not matter as [`Class::Noise`]) and no retries are folded.
    /// `watch` lists paths whose every use is shown too (an ftok key file).
    pub fn build(reader: &SideLog, writer: &SideLog, all: bool, watch: &[String]) -> Exchange {
        let mut known = Known {
            watched: watch.iter().cloned().collect(),
            ..Known::default()
        };
        for log in [reader, writer] {
            let mut private_here = Known::default();
            for thread in &log.threads {
                for line in &thread.lines {
                    if let Line::Call(call) = line {
                        private_here.learn(call);
                    }
                }
            }
            known.private.extend(private_here.private);
            known.fifos.extend(private_here.fifos);
            known.socket_paths.extend(private_here.socket_paths);
            known.unix_by_path.extend(private_here.unix_by_path);
            known.path_by_ino.extend(private_here.path_by_ino);
            known.peer_of.extend(private_here.peer_of);
        }
        let mut events = Vec::new();
        for (side, log) in [(Side::Reader, reader), (Side::Writer, writer)] {
            // Descriptors opened with O_PATH only to look at a path: their close is no step of
            // the exchange.
            let mut path_only: HashSet<String> = HashSet::new();
            for thread in &log.threads {
                for line in &thread.lines {
                    let Line::Call(call) = line else { continue };
                    let mut classified = classify(call, &known);
                    if call.name.starts_with("open") && call.args.contains("O_PATH") {
                        if let Some(fd) = call.ret.value() {
                            path_only.insert(fd.to_string());
                        }
                    } else if call.name == "close" {
                        let fd = call.args.split('<').next().unwrap_or("").trim().to_string();
                        if path_only.remove(&fd) {
                            classified = None;
                        }
                    }
                    if classified.is_none() && !all {
                        continue;
                    }
                    let (class, channel, messages, bytes) =
                        classified.unwrap_or((Class::Noise, None, false, None));
                    let channel = match channel {
                        Some(ChannelKey::UnixPath(path)) => known
                            .unix_by_path
                            .get(&path)
                            .map(|ino| ChannelKey::Unix(*ino))
                            .or(Some(ChannelKey::UnixPath(path))),
                        other => other,
                    };
                    events.push(Event {
                        side,
                        tid: thread.tid,
                        start_us: call.ts_us,
                        dur_us: call.dur_us,
                        name: call.name.clone(),
                        args: call.args.clone(),
                        ret: call.ret.clone(),
                        class,
                        bytes,
                        channel,
                        messages,
                        repeat: 1,
                        last_end_us: call.ts_us.saturating_add(call.dur_us.unwrap_or(0)),
                    });
                }
            }
        }
        events.sort_by_key(|e| (e.start_us, e.side, e.tid));
        if !all {
            events = fold_retries(events);
        }
        let origin_us = events.first().map_or(0, |e| e.start_us);
        let (links, unlinked) = link(&events, &known);
        Exchange {
            labels: [reader.label.clone(), writer.label.clone()],
            pids: [reader.pid, writer.pid],
            shared_memory: events
                .iter()
                .any(|e| e.name == "shmat" && e.ret.value().is_some()),
            unparsed: reader.unparsed + writer.unparsed,
            events,
            links,
            unlinked,
            origin_us,
        }
    }

    /// The link whose send or receive is event `index`.
    pub fn link_of(&self, index: usize) -> Option<&Link> {
        self.links
            .iter()
            .find(|l| l.send == index || l.recv == index)
    }
}

/// Folds retry loops: a block of one to three calls of a thread that failed at least once
/// (`newfstatat` = 0, `shmget` = ENOENT) and then repeats, call for call (same name, same
/// result, arguments differing only in numbers such as what is left of a timeout), is shown
/// once, each call counting its repeats. Only whole repeats fold, so the iteration that
/// succeeded stays visible; transfers never fold.
fn fold_retries(mut events: Vec<Event>) -> Vec<Event> {
    const LONGEST_LOOP: usize = 3;
    let mut per_thread: BTreeMap<(Side, u32), Vec<usize>> = BTreeMap::new();
    for (i, e) in events.iter().enumerate() {
        per_thread.entry((e.side, e.tid)).or_default().push(i);
    }
    let signatures: Vec<_> = events.iter().map(signature).collect();
    let foldable = |e: &Event| e.bytes.is_none() && e.dur_us.is_some();
    // (kept, folded into it)
    let mut folds: Vec<(usize, usize)> = Vec::new();
    for seq in per_thread.values() {
        let mut i = 0;
        while i < seq.len() {
            let mut next = i + 1;
            for period in 1..=LONGEST_LOOP {
                if i + 2 * period > seq.len() {
                    break;
                }
                let block = &seq[i..i + period];
                let failed = block
                    .iter()
                    .any(|&k| matches!(events[k].ret, Ret::Error { .. }));
                if !failed || !block.iter().all(|&k| foldable(&events[k])) {
                    continue;
                }
                let repeats = |at: usize| {
                    (0..period).all(|q| signatures[seq[at + q]] == signatures[block[q]])
                };
                let mut at = i + period;
                while at + period <= seq.len() && repeats(at) {
                    folds.extend((0..period).map(|q| (block[q], seq[at + q])));
                    at += period;
                }
                if at > i + period {
                    next = at;
                    break;
                }
            }
            i = next;
        }
    }
    let mut gone = vec![false; events.len()];
    for (kept, folded) in folds {
        gone[folded] = true;
        let end = events[folded].last_end_us;
        events[kept].repeat += 1;
        events[kept].last_end_us = events[kept].last_end_us.max(end);
    }
    events
        .into_iter()
        .zip(gone)
        .filter_map(|(e, gone)| (!gone).then_some(e))
        .collect()
}

/// What makes two calls the same step of a loop: name, result, arguments without numbers.
fn signature(e: &Event) -> (String, String, String) {
    let ret = match &e.ret {
        Ret::Error { errno } => errno.clone(),
        Ret::Value { value, .. } => value.to_string(),
        Ret::Unknown => "?".to_string(),
    };
    let args = e
        .args
        .chars()
        .filter(|c| !c.is_ascii_hexdigit())
        .collect::<String>();
    (e.name.clone(), ret, args)
}

/// Links sends to receives per channel: message channels one to one in order, byte streams by
/// the byte ranges each call covered.
fn link(events: &[Event], known: &Known) -> (Vec<Link>, Vec<usize>) {
    let mut sends: BTreeMap<&ChannelKey, Vec<usize>> = BTreeMap::new();
    let mut recvs: BTreeMap<&ChannelKey, Vec<usize>> = BTreeMap::new();
    let mut unlinked = Vec::new();
    for (i, e) in events.iter().enumerate() {
        // A call that moved nothing (a full queue's EAGAIN) takes no place in the order.
        match (&e.class, &e.channel) {
            (Class::Send, Some(key)) if e.bytes.is_some() => sends.entry(key).or_default().push(i),
            (Class::Recv, Some(key)) if e.bytes.is_some() => recvs.entry(key).or_default().push(i),
            (Class::Send | Class::Recv, None) if e.bytes.is_some() => unlinked.push(i),
            _ => {}
        }
    }
    let mut links = Vec::new();
    let none = Vec::new();
    let keys: Vec<&ChannelKey> = sends.keys().chain(recvs.keys()).copied().collect();
    let mut done = HashSet::new();
    for key in keys {
        if !done.insert(key) {
            continue;
        }
        let mut s = sends.get(key).unwrap_or(&none).clone();
        let mut r = recvs.get(key).unwrap_or(&none).clone();
        s.sort_by_key(|&i| events[i].start_us);
        r.sort_by_key(|&i| events[i].end_us());
        let via = describe(key, events, &s, &r, known);
        let messages = s.iter().chain(&r).any(|&i| events[i].messages);
        let before = links.len();
        if messages {
            for (&si, &ri) in s.iter().zip(&r) {
                let bytes = events[si]
                    .bytes
                    .unwrap_or(0)
                    .min(events[ri].bytes.unwrap_or(0));
                links.push((si, ri, bytes, via.clone()));
            }
            let n = s.len().min(r.len());
            unlinked.extend(&s[n..]);
            unlinked.extend(&r[n..]);
        } else {
            // Byte ranges: send k covers [a, b) of the stream, receive j covers [c, d).
            let ranges = |list: &[usize]| {
                let mut at = 0u64;
                list.iter()
                    .map(|&i| {
                        let n = events[i].bytes.unwrap_or(0);
                        at += n;
                        (i, at - n, at)
                    })
                    .collect::<Vec<_>>()
            };
            let (sr, rr) = (ranges(&s), ranges(&r));
            let mut linked = HashSet::new();
            for &(si, a, b) in &sr {
                for &(ri, c, d) in &rr {
                    let overlap = b.min(d).saturating_sub(a.max(c));
                    if overlap > 0 {
                        links.push((si, ri, overlap, via.clone()));
                        linked.insert(si);
                        linked.insert(ri);
                    }
                }
            }
            unlinked.extend(s.iter().chain(&r).filter(|i| !linked.contains(*i)));
        }
        let _ = before;
    }
    links.sort_by_key(|(s, r, _, _)| (events[*s].start_us, events[*r].end_us()));
    let links = links
        .into_iter()
        .enumerate()
        .map(|(k, (send, recv, bytes, via))| Link {
            id: k + 1,
            send,
            recv,
            bytes,
            via,
        })
        .collect();
    unlinked.sort_unstable();
    unlinked.dedup();
    (links, unlinked)
}

/// The channel in words, for the legend.
fn describe(key: &ChannelKey, events: &[Event], s: &[usize], r: &[usize], known: &Known) -> String {
    let messages = s.iter().chain(r).any(|&i| events[i].messages);
    match key {
        ChannelKey::Unix(ino) => {
            let kind = if messages { "datagram" } else { "stream" };
            match known.path_by_ino.get(ino) {
                Some(path) => format!("Unix {kind} socket {path} (inode {ino})"),
                None => format!("Unix {kind} socket (inode {ino})"),
            }
        }
        ChannelKey::UnixPath(path) => format!("Unix datagram socket {path}"),
        ChannelKey::Tcp(from, to) => format!("TCP connection {from} -> {to}"),
        ChannelKey::Udp(port) => format!("UDP port {port}"),
        ChannelKey::Fifo(path) => format!("FIFO {path}"),
        ChannelKey::Msg(msqid, mtype) => format!("message queue msqid {msqid}, type {mtype}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(lines: &[&str]) -> SideLog {
        SideLog::parse("x", vec![(7, lines.join("\n"))])
    }

    #[test]
    fn a_stream_is_linked_by_byte_ranges() {
        let writer = log(&[
            r#"1.000001 write(3<UNIX-STREAM:[10->20]>, "0123456789", 10) = 10 <0.000010>"#,
            r#"1.000100 write(3<UNIX-STREAM:[10->20]>, "abcde", 5) = 5 <0.000010>"#,
        ]);
        let reader = log(&[
            r#"1.000200 read(4<UNIX-STREAM:[20->10,"/s"]>, "0123456789abc", 13) = 13 <0.000010>"#,
            r#"1.000300 read(4<UNIX-STREAM:[20->10,"/s"]>, "de", 13) = 2 <0.000010>"#,
            r#"1.000400 read(4<UNIX-STREAM:[20->10,"/s"]>, "", 13) = 0 <0.000010>"#,
        ]);
        let x = Exchange::build(&reader, &writer, false, &[]);
        let bytes: Vec<u64> = x.links.iter().map(|l| l.bytes).collect();
        assert_eq!(bytes, [10, 3, 2], "{:?}", x.links);
        assert!(x.unlinked.is_empty());
        assert!(x.events.iter().any(|e| e.class == Class::Eof));
    }

    #[test]
    fn a_socketpair_is_private_and_an_unconnected_sendto_finds_the_bound_socket() {
        let reader = log(&[
            "1.0 socketpair(AF_UNIX, SOCK_STREAM, 0, [3<UNIX-STREAM:[1->2]>, 4<UNIX-STREAM:[2->1]>]) = 0 <0.000010>",
            r#"1.1 bind(5<UNIX:[30]>, {sa_family=AF_UNIX, sun_path="/s"}, 5) = 0 <0.000010>"#,
            r#"1.3 recvfrom(5<UNIX:[30,"/s"]>, "hi", 9, 0, NULL, NULL) = 2 <0.000010>"#,
            r#"1.4 recvfrom(3<UNIX-STREAM:[1->2]>, "x", 1, 0, NULL, NULL) = 1 <0.000010>"#,
        ]);
        let writer = log(&[
            r#"1.2 sendto(6<UNIX:[40]>, "hi", 2, 0, {sa_family=AF_UNIX, sun_path="/s"}, 5) = 2 <0.000010>"#,
        ]);
        let x = Exchange::build(&reader, &writer, false, &[]);
        assert_eq!(x.links.len(), 1, "{:?}", x.links);
        assert_eq!(x.links[0].bytes, 2);
        assert!(
            !x.events
                .iter()
                .any(|e| e.args.contains("UNIX-STREAM:[1->2]"))
        );
        let all = Exchange::build(&reader, &writer, true, &[]);
        assert!(all.events.iter().any(|e| e.name == "socketpair"));
    }

    #[test]
    fn a_resumed_call_joins_its_start() {
        let reader = log(&[
            r#"1.0 recvfrom(5<UNIX:[30,"/s"]>,  <unfinished ...>) = ?"#,
            "1.1 --- SIGCHLD {si_signo=SIGCHLD} ---",
            r#"1.5 <... recvfrom resumed>"hi", 9, 0, NULL, NULL) = 2 <0.500000>"#,
        ]);
        let writer = log(&[r#"1.2 sendto(6<UNIX:[40->30]>, "hi", 2, 0, NULL, 0) = 2 <0.000010>"#]);
        let x = Exchange::build(&reader, &writer, false, &[]);
        assert_eq!(x.links.len(), 1, "{:?}", x.events);
        let recv = &x.events[x.links[0].recv];
        assert_eq!((recv.start_us, recv.dur_us), (1_000_000, Some(500_000)));
        assert_eq!(reader.unparsed, 0);
    }

    #[test]
    fn a_failed_msgsnd_takes_no_place_in_the_queue() {
        let writer = log(&[
            r#"1.0 msgsnd(3, {mtype=1, mtext="a"}, 1, IPC_NOWAIT) = -1 EAGAIN (Resource temporarily unavailable) <0.000010>"#,
            r#"1.1 msgsnd(3, {mtype=1, mtext="bc"}, 2, IPC_NOWAIT) = 0 <0.000010>"#,
        ]);
        let reader = log(&[r#"1.2 msgrcv(3, {mtype=1, mtext="bc"}, 8192, 0, 0) = 2 <0.000010>"#]);
        let x = Exchange::build(&reader, &writer, false, &[]);
        assert_eq!(x.links.len(), 1, "{:?}", x.links);
        assert_eq!(x.links[0].bytes, 2);
        assert_eq!(
            x.events[x.links[0].send].args,
            r#"3, {mtype=1, mtext="bc"}, 2, IPC_NOWAIT"#
        );
    }

    #[test]
    fn retry_loops_fold_whole_iterations() {
        let reader = log(&[
            r#"1.00 newfstatat(AT_FDCWD, "/k", {st_mode=S_IFREG|0600}, 0) = 0 <0.000010>"#,
            "1.01 shmget(0x54, 0, 000) = -1 ENOENT (No such file or directory) <0.000010>",
            r#"1.02 newfstatat(AT_FDCWD, "/k", {st_mode=S_IFREG|0600}, 0) = 0 <0.000010>"#,
            "1.03 shmget(0x54, 0, 000) = -1 ENOENT (No such file or directory) <0.000010>",
            r#"1.04 newfstatat(AT_FDCWD, "/k", {st_mode=S_IFREG|0600}, 0) = 0 <0.000010>"#,
            "1.05 shmget(0x54, 0, 000) = 7 <0.000010>",
        ]);
        let x = Exchange::build(&reader, &log(&[]), false, &["/k".to_string()]);
        let shown: Vec<(String, u32)> = x
            .events
            .iter()
            .map(|e| (e.name.clone(), e.repeat))
            .collect();
        assert_eq!(
            shown,
            [
                ("newfstatat".to_string(), 2),
                ("shmget".to_string(), 2),
                ("newfstatat".to_string(), 1),
                ("shmget".to_string(), 1),
            ]
        );
    }
}
