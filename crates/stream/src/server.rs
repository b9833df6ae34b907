//! Serving many clients at once from one thread: a [`Server`] keeps one [`sock::Exchange`] per
//! connection (the same steps, and the same end-of-stream rules, as a single client's
//! [`crate::Conn::exchange`]) and waits for all of them, the listening socket and the stop
//! signals' pipe in one `poll(2)`. Why a poll loop and not a thread per client: the crate's
//! README, "Many clients".

use std::collections::VecDeque;
use std::fmt;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use anyhow::Context;
use ipc_common::runtime::cleanup::{self, Interrupted};
use ipc_common::runtime::wait::{Deadline, Timeout};
use ipc_common::sockets::sock::{self, EndOfStream, Exchange, Exchanged, OneMessage, Step};
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use socket2::Socket;

use crate::{Listener, READ_CHUNK};

/// How many clients a [`Server`] serves, and how.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Clients to count (served or failed) before the server ends; 0: until a stop signal.
    pub connections: u64,
    /// Connections in their exchange at once; the next clients wait in the listen backlog,
    /// not accepted.
    pub max_clients: usize,
    /// How long one connection may take from `accept(2)` to the end of its exchange before it
    /// is dropped, uncounted.
    pub client_timeout: Timeout,
}

/// Where a connection's bytes go as they arrive: the whole message in a `Vec<u8>` (the blog's
/// server), or a check that keeps none of them (`ipc-load`'s framed messages).
pub trait Receive {
    /// Takes the next bytes; an error ends the exchange, the client failed.
    fn receive(&mut self, bytes: &[u8]) -> anyhow::Result<()>;
}

impl Receive for Vec<u8> {
    fn receive(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        crate::keep(self, bytes)
    }
}

/// What happened to one connection, in the order the connections ended.
#[derive(Debug)]
pub enum Event<R = Vec<u8>> {
    /// A client's whole message arrived and our whole greeting went out; print it.
    Served(Served<R>),
    /// A client's exchange failed (it went away before taking our greeting, ...): counted, and
    /// [`Server::close`] fails the run. `received` has what it sent.
    Failed {
        number: u64,
        of: u64,
        error: String,
        received: R,
    },
    /// A connection that left without a word before taking our greeting: another server's
    /// stale-socket probe or a port scan ([`crate::left_without_a_word`]), not counted.
    NotAClient,
    /// The process ran out of file descriptors accepting a connection: the server serves the
    /// `serving` connections it has, and the next clients wait in the listen backlog until one of
    /// them ends (as past `max_clients`). Once a run, however often it happens.
    OutOfDescriptors { serving: usize },
    /// A connection dropped in the middle of its exchange, not counted: what it sent so far is
    /// not a whole message, and is not printed.
    Dropped {
        connection: u64,
        received: u64,
        why: Dropped,
    },
}

/// One client served.
#[derive(Debug)]
pub struct Served<R = Vec<u8>> {
    /// Its place among the clients counted (1, 2, ...), and how many the run counts (0: no end).
    pub number: u64,
    pub of: u64,
    /// Its whole message.
    pub message: R,
    /// It reset the connection after our whole greeting went out (see [`Exchanged`]).
    pub reset_after_sending: bool,
}

/// Why a connection was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dropped {
    /// Its exchange did not end within `--client-timeout`.
    ClientTimeout(Timeout),
    /// The run ended first (its count reached, or a stop signal with no count).
    RunEnded,
}

impl<R> fmt::Display for Event<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let of = |of: u64| match of {
            0 => String::new(),
            n => format!(" of {n}"),
        };
        match self {
            Event::Served(served) => {
                write!(f, "served client {}{}", served.number, of(served.of))?;
                if served.reset_after_sending {
                    f.write_str(
                        "; it reset the connection after our whole greeting went out: it closed \
                         without reading all of it (as PHP's single socket_read does), which \
                         ended its message",
                    )?;
                }
                Ok(())
            }
            Event::Failed {
                number,
                of: total,
                error,
                ..
            } => write!(f, "client {number}{} failed: {error}", of(*total)),
            Event::NotAClient => f.write_str(
                "a connection left without a word before taking our greeting: not a client",
            ),
            Event::OutOfDescriptors { serving } => write!(
                f,
                "out of file descriptors (`ulimit -n`) with {serving} connections open: the next \
                 clients wait in the listen backlog until one ends (lower --max-clients or raise \
                 `ulimit -n`)"
            ),
            Event::Dropped {
                connection,
                received,
                why,
            } => {
                write!(f, "dropped connection {connection} ")?;
                match why {
                    Dropped::ClientTimeout(timeout) => write!(
                        f,
                        "at its --client-timeout ({timeout}) before its message ended"
                    )?,
                    Dropped::RunEnded => f.write_str("still in its exchange as the run ended")?,
                }
                write!(
                    f,
                    ": not counted, the {received} bytes it sent not printed (not a whole message)"
                )
            }
        }
    }
}

/// A listening socket and the connections in their exchange.
pub struct Server<'g, R = Vec<u8>> {
    listener: Listener,
    /// "the client on URL", as a single client's connection names it.
    peer: String,
    greeting: &'g [u8],
    limits: Limits,
    /// Out of file descriptors at this many connections: no more until one of them ends.
    fd_room: Option<usize>,
    /// [`Event::OutOfDescriptors`] came already: it comes once a run.
    said_out_of_fds: bool,
    /// A new connection's [`Receive`].
    new_receiver: Box<dyn FnMut() -> R + 'g>,
    clients: Vec<Client<'g, R>>,
    /// One read buffer for all connections: a step reads until the socket would block.
    read_buf: Vec<u8>,
    accepted: u64,
    counted: u64,
    /// How many counted clients failed, and the first one's error.
    failed: Option<(u64, anyhow::Error)>,
    events: VecDeque<Event<R>>,
    ended: bool,
}

impl<R> fmt::Debug for Server<'_, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("listener", &self.listener)
            .field("limits", &self.limits)
            .field("clients", &self.clients.len())
            .field("counted", &self.counted)
            .finish_non_exhaustive()
    }
}

/// One accepted connection in its exchange.
struct Client<'g, R> {
    /// Accept order, 1, 2, ...: names it in a dropped line.
    connection: u64,
    socket: Connection,
    exchange: Exchange,
    greeting: OneMessage<'g>,
    message: R,
    /// `None`: no per-client limit (then only the run's `--timeout`).
    expires: Option<Instant>,
    wants: PollFlags,
}

impl<'g> Server<'g> {
    /// Serves `greeting` to every client of `listener`, within `limits`, keeping each client's
    /// message.
    pub fn new(listener: Listener, greeting: &'g [u8], limits: Limits) -> Self {
        Server::with_receiver(listener, greeting, limits, Vec::new)
    }
}

impl<'g, R: Receive> Server<'g, R> {
    /// Serves as [`Server::new`] does, handing each client's bytes to its own receiver from
    /// `new_receiver`.
    pub fn with_receiver(
        listener: Listener,
        greeting: &'g [u8],
        limits: Limits,
        new_receiver: impl FnMut() -> R + 'g,
    ) -> Self {
        Server {
            new_receiver: Box::new(new_receiver),
            peer: format!("the client on {}", listener.url()),
            listener,
            greeting,
            limits: Limits {
                max_clients: limits.max_clients.max(1),
                ..limits
            },
            fd_room: None,
            said_out_of_fds: false,
            clients: Vec::new(),
            read_buf: vec![0; READ_CHUNK],
            accepted: 0,
            counted: 0,
            failed: None,
            events: VecDeque::new(),
            ended: false,
        }
    }

    /// The next connection that ended, waiting for it (until `deadline`); `None` once the run
    /// is over: its count reached, or (with no count) a stop signal arrived. Connections still
    /// in their exchange then come as [`Dropped::RunEnded`] first.
    ///
    /// A stop signal with a count is an [`Interrupted`] error, the deadline a timeout.
    pub fn next(&mut self, deadline: &Deadline) -> anyhow::Result<Option<Event<R>>> {
        loop {
            if let Some(event) = self.events.pop_front() {
                return Ok(Some(event));
            }
            if self.ended {
                return Ok(None);
            }
            if self.count_reached() {
                self.end();
                continue;
            }
            match self.round(deadline) {
                Err(err) if self.limits.connections == 0 && err.is::<Interrupted>() => self.end(),
                other => other?,
            }
        }
    }

    /// Closes the listener (removing its socket file) and the connections left; an error if
    /// any client counted failed (the first one's error, with how many).
    pub fn close(self) -> anyhow::Result<()> {
        let Server {
            listener,
            clients,
            failed,
            counted,
            ..
        } = self;
        drop(clients);
        listener.close()?;
        match failed {
            None => Ok(()),
            Some((failed, first)) => Err(first.context(format!(
                "{failed} of the {counted} clients counted failed, the first"
            ))),
        }
    }

    /// How many connections may be in their exchange now.
    fn room(&self) -> usize {
        self.fd_room.map_or(self.limits.max_clients, |room| {
            room.min(self.limits.max_clients)
        })
    }

    fn count_reached(&self) -> bool {
        self.limits.connections != 0 && self.counted >= self.limits.connections
    }

    /// Drops every connection still in its exchange, each an event.
    fn end(&mut self) {
        for client in std::mem::take(&mut self.clients) {
            self.events.push_back(client.drop_as(Dropped::RunEnded));
        }
        self.ended = true;
    }

    /// One `poll(2)` and what it found ready.
    fn round(&mut self, deadline: &Deadline) -> anyhow::Result<()> {
        cleanup::check_interrupted()?;
        let now = Instant::now();
        let (expired, live) = std::mem::take(&mut self.clients)
            .into_iter()
            .partition(|client: &Client<R>| client.expires.is_some_and(|at| at <= now));
        self.clients = live;
        for client in expired {
            let why = Dropped::ClientTimeout(self.limits.client_timeout);
            self.events.push_back(client.drop_as(why));
        }
        if !self.events.is_empty() {
            return Ok(());
        }
        if deadline.expired() {
            return Err(deadline.timed_out(self.waiting_for()));
        }

        // The listener is polled only while there is room: the rest wait in the backlog. A
        // connection that ended since we ran out of descriptors freed one: try again.
        if self.fd_room.is_some_and(|room| self.clients.len() < room) {
            self.fd_room = None;
        }
        let accepting = self.clients.len() < self.room();
        let wake = cleanup::wake_fd();
        let mut fds = Vec::with_capacity(self.clients.len() + 2);
        fds.extend(wake.map(|fd| PollFd::new(fd, PollFlags::POLLIN)));
        let listening = if accepting {
            PollFlags::POLLIN
        } else {
            PollFlags::empty()
        };
        fds.push(PollFd::new(self.listener.socket.as_fd(), listening));
        fds.extend(
            self.clients
                .iter()
                .map(|client| PollFd::new(client.socket.socket.as_fd(), client.wants)),
        );
        match poll(&mut fds, self.poll_timeout(deadline, now)) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(errno) => {
                return Err(anyhow::Error::new(errno)
                    .context(format!("poll while waiting for {}", self.waiting_for())));
            }
        }
        let ready = |fd: &PollFd| fd.revents().is_some_and(|events| !events.is_empty());
        let first = usize::from(wake.is_some());
        let new_client = accepting && ready(&fds[first]);
        let ready: Vec<bool> = fds[first + 1..].iter().map(ready).collect();
        drop(fds);

        // Once the count is reached no other exchange is advanced: a client we end our stream
        // to takes that as "the server read all of it", and must then be printed.
        let mut live = Vec::with_capacity(self.clients.len());
        for (client, ready) in std::mem::take(&mut self.clients).into_iter().zip(ready) {
            if !ready || self.count_reached() {
                live.push(client);
            } else if let Some(client) = self.step(client) {
                live.push(client);
            }
        }
        self.clients = live;
        if new_client {
            self.accept()?;
        }
        Ok(())
    }

    /// `accept4(2)`s while clients wait and there is room, each greeted at once.
    fn accept(&mut self) -> anyhow::Result<()> {
        while self.clients.len() < self.room() && !self.count_reached() {
            let socket = match self.listener.socket.accept() {
                Ok((socket, _)) => socket,
                Err(err) => match sock::errno_of(&err) {
                    // The client gave up meanwhile, or nobody else waits.
                    Some(Errno::ECONNABORTED | Errno::EINTR) => continue,
                    Some(Errno::EAGAIN) => return Ok(()),
                    // The connection stays queued: serve those we have, take it when one ends.
                    Some(Errno::EMFILE | Errno::ENFILE) if !self.clients.is_empty() => {
                        let serving = self.clients.len();
                        self.fd_room = Some(serving);
                        if !std::mem::replace(&mut self.said_out_of_fds, true) {
                            self.events.push_back(Event::OutOfDescriptors { serving });
                        }
                        return Ok(());
                    }
                    Some(Errno::EMFILE | Errno::ENFILE) => {
                        return Err(err).with_context(|| {
                            format!(
                                "accept {}: out of file descriptors (lower --max-clients or \
                                 raise `ulimit -n`)",
                                self.listener.waiting_for
                            )
                        });
                    }
                    _ => {
                        return Err(err)
                            .with_context(|| format!("accept {}", self.listener.waiting_for));
                    }
                },
            };
            // Linux does not pass O_NONBLOCK on from the listener.
            socket
                .set_nonblocking(true)
                .with_context(|| format!("set O_NONBLOCK on {}", self.peer))?;
            self.accepted += 1;
            let expires = (self.limits.client_timeout.duration())
                .and_then(|limit| Instant::now().checked_add(limit));
            let client = Client {
                connection: self.accepted,
                socket: Connection {
                    socket,
                    ended: false,
                },
                exchange: Exchange::new(EndOfStream::AfterPeer),
                greeting: OneMessage::new(self.greeting),
                message: (self.new_receiver)(),
                expires,
                wants: PollFlags::empty(),
            };
            if let Some(client) = self.step(client) {
                self.clients.push(client);
            }
        }
        Ok(())
    }

    /// Advances one exchange; the client back while it goes on, its event queued once it ended.
    fn step(&mut self, mut client: Client<'g, R>) -> Option<Client<'g, R>> {
        let message = &mut client.message;
        let outcome = client.exchange.step(
            &client.socket.socket,
            &mut client.greeting,
            &mut |bytes: &[u8]| message.receive(bytes),
            &mut self.read_buf,
            &self.peer,
        );
        let outcome: anyhow::Result<Exchanged> = match outcome {
            Ok(Step::Wait(wants)) => {
                client.wants = wants;
                return Some(client);
            }
            Ok(Step::Done(done)) => Ok(done),
            Err(err) => Err(err),
        };
        client.socket.ended = true;
        if crate::left_without_a_word(&outcome) {
            self.events.push_back(Event::NotAClient);
            return None;
        }
        self.counted += 1;
        let (number, of) = (self.counted, self.limits.connections);
        let event = match outcome {
            Ok(done) => Event::Served(Served {
                number,
                of,
                message: client.message,
                reset_after_sending: done.reset_after_sending,
            }),
            Err(err) => {
                let error = format!("{err:#}");
                match &mut self.failed {
                    Some((failed, _)) => *failed += 1,
                    None => self.failed = Some((1, err)),
                }
                Event::Failed {
                    number,
                    of,
                    error,
                    received: client.message,
                }
            }
        };
        self.events.push_back(event);
        None
    }

    /// Until the run's deadline or the first client's `--client-timeout`, rounded up (no
    /// spinning just before either).
    fn poll_timeout(&self, deadline: &Deadline, now: Instant) -> PollTimeout {
        let first_expiry = self
            .clients
            .iter()
            .filter_map(|client| client.expires)
            .min();
        let until_expiry = first_expiry.map(|at| at.saturating_duration_since(now));
        let left = match (deadline.remaining(), until_expiry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        match left {
            None => PollTimeout::NONE,
            Some(left) => {
                let millis = left.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
                PollTimeout::try_from(millis.max(1)).unwrap_or(PollTimeout::MAX)
            }
        }
    }

    /// What the server waits for, for a timeout's message.
    fn waiting_for(&self) -> String {
        match self.clients.as_slice() {
            [] => self.listener.waiting_for.clone(),
            [client] => client.exchange.waiting_for(&self.peer).to_string(),
            [oldest, ..] => format!(
                "{} clients to end their exchanges (the oldest: {})",
                self.clients.len(),
                oldest.exchange.waiting_for(&self.peer)
            ),
        }
    }
}

/// An accepted connection's socket. Closed before its exchange ended (dropped at its
/// `--client-timeout`, at the end of the run, or with the server on a stop signal or an
/// error) it closes with `SO_LINGER` 0: over TCP the client gets a reset, not an end of
/// stream it would take for the end of our greeting, and for "the server read all of it",
/// though its message was never printed.
struct Connection {
    socket: Socket,
    ended: bool,
}

impl Drop for Connection {
    fn drop(&mut self) {
        if !self.ended {
            let _ = self.socket.set_linger(Some(Duration::ZERO));
        }
    }
}

impl<R> Client<'_, R> {
    /// Closes the connection in the middle of its exchange (a reset over TCP: [`Connection`]).
    fn drop_as(self, why: Dropped) -> Event<R> {
        Event::Dropped {
            connection: self.connection,
            received: self.exchange.progress().received,
            why,
        }
    }
}
