//! `stream-reader --connections N` serves its clients at once: hundreds of clients (in-process
//! sockets, `stream-writer`s and the blog's PHP client) are served, each with its exact bytes,
//! while silent and half-written clients hold their connections open; `--max-clients` leaves
//! the rest in the listen backlog; `--client-timeout` drops a client that does not finish;
//! `--connections 0` serves until SIGTERM. Facts of order only, never of timing: the clients
//! that hold on are dropped "as the run ended", not at their 60 s `--client-timeout`.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use ipc_testkit::php::Php;
use ipc_testkit::{Proc, STEP, Signal, bounded, ours, port_in, temp_dir};
use stream::{CLIENT_UDS, SERVER_IP, SERVER_UDS};

const READER: &str = env!("CARGO_BIN_EXE_stream-reader");
const WRITER: &str = env!("CARGO_BIN_EXE_stream-writer");

/// Clients of the big run, by kind.
const IN_PROCESS: usize = 480;
const WRITERS: usize = 10;
const PHP_CLIENTS: usize = 10;
const SILENT: usize = 5;
const HALF_WRITTEN: usize = 5;

/// A connected client socket of either family, blocking, every wait bounded by [`STEP`].
enum Client {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Client {
    fn connect(url: &str) -> Client {
        let client = match url.split_once("://") {
            Some(("unix", path)) => Client::Unix(UnixStream::connect(path).unwrap()),
            Some(("tcp", addr)) => Client::Tcp(TcpStream::connect(addr).unwrap()),
            _ => panic!("no client for {url}"),
        };
        match &client {
            Client::Unix(s) => s.set_read_timeout(Some(STEP)).unwrap(),
            Client::Tcp(s) => s.set_read_timeout(Some(STEP)).unwrap(),
        }
        client
    }

    fn stream(&mut self) -> &mut dyn ReadWrite {
        match self {
            Client::Unix(s) => s,
            Client::Tcp(s) => s,
        }
    }

    fn finish_sending(&self) {
        match self {
            Client::Unix(s) => s.shutdown(Shutdown::Write).unwrap(),
            Client::Tcp(s) => s.shutdown(Shutdown::Write).unwrap(),
        }
    }

    fn set_read_timeout(&self, timeout: Duration) {
        match self {
            Client::Unix(s) => s.set_read_timeout(Some(timeout)).unwrap(),
            Client::Tcp(s) => s.set_read_timeout(Some(timeout)).unwrap(),
        }
    }

    /// Sends `message`, ends it, and returns the server's whole answer.
    fn swap(mut self, message: &[u8]) -> Vec<u8> {
        self.stream().write_all(message).unwrap();
        self.finish_sending();
        let mut answer = Vec::new();
        self.stream().read_to_end(&mut answer).unwrap();
        answer
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

fn reader(args: &[&str]) -> (Proc, String) {
    let mut reader = Proc::spawn("stream-reader", &mut bounded(ours(READER), args));
    let url = reader.listening_url();
    (reader, url)
}

/// The message of in-process client `i`: a name, and for every 50th a body past the socket
/// buffers, so that the server interleaves partial reads of many connections.
fn message(i: usize) -> Vec<u8> {
    let mut message = format!("in-process client {i}").into_bytes();
    if i % 50 == 0 {
        message.extend((0..256 << 10).map(|n: usize| b'a' + (n % 26) as u8));
    }
    message
}

fn lines(stdout: &[u8]) -> Vec<Vec<u8>> {
    let mut lines: Vec<Vec<u8>> = stdout.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
    assert_eq!(lines.pop(), Some(Vec::new()), "stdout ends with a newline");
    lines.sort();
    lines
}

fn many_clients_at_once(url: &str) {
    let greeting = if url.starts_with("unix") {
        SERVER_UDS
    } else {
        SERVER_IP
    };
    let php = Php::find();
    let php_clients = if php.is_some() { PHP_CLIENTS } else { 0 };
    let live = IN_PROCESS + WRITERS + php_clients;
    let max_clients = (live + SILENT + HALF_WRITTEN).to_string();
    let (server, url) = reader(&[
        url,
        "--connections",
        &live.to_string(),
        "--max-clients",
        &max_clients,
        "--client-timeout",
        "60",
        "--timeout",
        "60",
    ]);

    // First the clients that hold on: queued first, they are accepted before any live client
    // (the backlog is first in, first out), and stay in their exchange to the end.
    let silent: Vec<Client> = (0..SILENT).map(|_| Client::connect(&url)).collect();
    let half = b"half a mess";
    let half_written: Vec<Client> = (0..HALF_WRITTEN)
        .map(|_| {
            let mut client = Client::connect(&url);
            client.stream().write_all(half).unwrap();
            client
        })
        .collect();

    // Then every live client at once: all in-process ones connect before any sends.
    let barrier = Arc::new(Barrier::new(IN_PROCESS));
    let threads: Vec<_> = (0..IN_PROCESS)
        .map(|i| {
            let (url, barrier) = (url.clone(), Arc::clone(&barrier));
            std::thread::spawn(move || {
                // A failed connect must not leave the others waiting at the barrier.
                let client = std::panic::catch_unwind(|| Client::connect(&url));
                barrier.wait();
                client.expect("connect").swap(&message(i))
            })
        })
        .collect();
    let writers: Vec<Proc> = (0..WRITERS)
        .map(|i| {
            let args = [url.as_str(), "--message", &format!("writer {i}")];
            Proc::spawn("stream-writer", &mut bounded(ours(WRITER), &args))
        })
        .collect();
    let port = if url.starts_with("tcp") {
        port_in(&url)
    } else {
        0
    };
    let phps: Vec<Proc> = php
        .iter()
        .flat_map(|php| {
            let url = url.clone();
            (0..PHP_CLIENTS).map(move |i| {
                let message = format!("php {i}");
                let mut args = vec!["--message", &message, "--timeout", "30"];
                let (script, port) = (url.strip_prefix("unix://"), port.to_string());
                match script {
                    Some(path) => {
                        args.extend(["--socket", path]);
                        php.spawn("stream-uds-client.php", &args)
                    }
                    None => {
                        args.extend(["--port", &port]);
                        php.spawn("stream-tcp-client.php", &args)
                    }
                }
            })
        })
        .collect();

    for (i, thread) in threads.into_iter().enumerate() {
        let answer = thread.join().expect("client thread");
        assert!(answer == greeting.as_bytes(), "client {i} got {answer:?}");
    }
    let line = format!("{greeting}\n");
    for client in writers.into_iter().chain(phps) {
        client
            .finish()
            .assert_success()
            .assert_stdout(line.as_bytes());
    }
    let finished = server.finish();
    finished.assert_success();

    let mut expected: Vec<Vec<u8>> = (0..IN_PROCESS).map(message).collect();
    expected.extend((0..WRITERS).map(|i| format!("writer {i}").into_bytes()));
    expected.extend((0..php_clients).map(|i| format!("php {i}").into_bytes()));
    expected.sort();
    let printed = lines(&finished.stdout);
    assert_eq!(printed.len(), live, "one line per client");
    assert!(printed == expected, "each line one client's whole message");

    // The clients that held on were dropped once all live ones were served, not at their
    // --client-timeout: the live clients did not wait for them.
    let stderr: Vec<&str> = finished.stderr.lines().collect();
    let last_served = format!("served client {live} of {live}");
    let served_at = stderr.iter().position(|l| *l == last_served);
    let served_at = served_at.unwrap_or_else(|| panic!("no {last_served:?}: {stderr:?}"));
    let dropped: Vec<&&str> = stderr.iter().filter(|l| l.contains("dropped")).collect();
    assert_eq!(dropped.len(), SILENT + HALF_WRITTEN, "{stderr:?}");
    assert!(
        stderr[served_at + 1..]
            .iter()
            .all(|l| l.contains("dropped"))
    );
    assert!(
        dropped.iter().all(|l| l.contains("as the run ended")),
        "{dropped:?}"
    );
    let with_bytes = |n: usize| {
        let needle = format!("the {n} bytes it sent not printed");
        dropped.iter().filter(|l| l.contains(&needle)).count()
    };
    assert_eq!(with_bytes(0), SILENT, "{dropped:?}");
    assert_eq!(with_bytes(half.len()), HALF_WRITTEN, "{dropped:?}");
    drop((silent, half_written));
}

#[test]
fn load_five_hundred_clients_at_once_over_uds_while_ten_hold_on() {
    let dir = temp_dir();
    let path = dir.path().join("s.sock");
    many_clients_at_once(&format!("unix://{}", path.display()));
    assert!(!path.exists(), "the server removes its socket file");
}

#[test]
fn load_five_hundred_clients_at_once_over_tcp_while_ten_hold_on() {
    many_clients_at_once("tcp://127.0.0.1:0");
}

fn unix_url(path: &Path) -> String {
    format!("unix://{}", path.display())
}

#[test]
fn clients_past_max_clients_wait_in_the_backlog() {
    let dir = temp_dir();
    let url = unix_url(&dir.path().join("s.sock"));
    let (server, url) = reader(&[
        &url,
        "--connections",
        "3",
        "--max-clients",
        "2",
        "--client-timeout",
        "0",
        "--timeout",
        "30",
    ]);
    // a and b take both places; c, queued after them, is not accepted, so not greeted.
    let a = Client::connect(&url);
    let b = Client::connect(&url);
    let mut c = Client::connect(&url);
    c.stream().write_all(b"c").unwrap();
    c.finish_sending();
    c.set_read_timeout(Duration::from_millis(300));
    // Another test's child exiting (SIGCHLD) may interrupt the read: read again.
    let err = loop {
        match c.stream().read(&mut [0; 64]) {
            Err(err) if err.kind() == ErrorKind::Interrupted => {}
            other => break other.unwrap_err(),
        }
    };
    assert!(
        matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{err}"
    );
    c.set_read_timeout(STEP);

    // a finishing frees a place: c is served then, and b last.
    assert_eq!(a.swap(b"a"), SERVER_UDS.as_bytes());
    let mut greeting = Vec::new();
    c.stream().read_to_end(&mut greeting).unwrap();
    assert_eq!(greeting, SERVER_UDS.as_bytes());
    assert_eq!(b.swap(b"b"), SERVER_UDS.as_bytes());
    server.finish().assert_success().assert_stdout(b"a\nc\nb\n");
}

#[test]
fn fault_client_that_does_not_finish_is_dropped_at_its_client_timeout() {
    let dir = temp_dir();
    let url = unix_url(&dir.path().join("s.sock"));
    let (mut server, url) = reader(&[&url, "--client-timeout", "0.2", "--timeout", "30"]);
    let mut half = Client::connect(&url);
    half.stream().write_all(b"half").unwrap();
    server.wait_for_stderr(
        "dropped connection 1 at its --client-timeout (0.2s) before its message ended: not \
         counted, the 4 bytes it sent not printed",
    );
    // It learns it was dropped: the rest of its message has nobody to go to.
    let mut rest = Ok(());
    for _ in 0..64 {
        rest = half.stream().write_all(&[b'x'; 4096]);
        if rest.is_err() {
            break;
        }
    }
    assert_eq!(rest.unwrap_err().kind(), ErrorKind::BrokenPipe);

    // It was not counted: the server still serves its one client.
    let writer = Proc::spawn("stream-writer", &mut bounded(ours(WRITER), &[&url]));
    writer.finish().assert_success();
    let finished = server.finish();
    finished
        .assert_success()
        .assert_stdout(format!("{CLIENT_UDS}\n").as_bytes());
    assert!(finished.stderr.contains("served client 1 of 1"));
}

#[test]
fn connections_0_serves_until_sigterm_then_exits_0_and_removes_its_socket() {
    let dir = temp_dir();
    let path = dir.path().join("s.sock");
    let (mut server, url) = reader(&[&unix_url(&path), "--connections", "0", "--timeout", "30"]);
    let _silent = Client::connect(&url);
    for i in 1..=3 {
        let args = [url.as_str(), "--message", &format!("client {i}")];
        Proc::spawn("stream-writer", &mut bounded(ours(WRITER), &args))
            .finish()
            .assert_success();
        server.wait_for_stderr(&format!("served client {i}"));
    }
    server.signal(Signal::SIGTERM);
    let finished = server.finish();
    finished
        .assert_success()
        .assert_stdout(b"client 1\nclient 2\nclient 3\n");
    assert!(
        finished
            .stderr
            .contains("dropped connection 1 still in its exchange as the run ended"),
        "{}",
        finished.stderr
    );
    assert!(
        finished.stderr.lines().any(|l| l == "served client 3"),
        "no count: {}",
        finished.stderr
    );
    assert!(!path.exists(), "the server removes its socket file");
}

#[test]
fn fault_failed_client_fails_the_run_but_not_the_other_clients() {
    let dir = temp_dir();
    let big = dir.path().join("big");
    std::fs::write(&big, vec![b'g'; 4 << 20]).unwrap();
    let url = unix_url(&dir.path().join("s.sock"));
    let args = [url.as_str(), "--connections", "2", "--timeout", "30"];
    let (server, url) = reader(&[&args[..], &["--message-file", big.to_str().unwrap()]].concat());

    // It takes one byte of the 4 MiB greeting and goes away: it did not get every byte.
    let mut gone = Client::connect(&url);
    gone.stream().write_all(b"gone").unwrap();
    gone.stream().read_exact(&mut [0]).unwrap();
    drop(gone);
    let writer = Proc::spawn(
        "stream-writer",
        &mut bounded(ours(WRITER), &[&url, "--message", "fine"]),
    );
    let fine = writer.finish();
    fine.assert_success();
    assert_eq!(fine.stdout.len(), (4 << 20) + 1, "the whole greeting");

    server
        .finish()
        .assert_failure(
            1,
            "client 1 of 2 failed: exchange messages with the client on",
        )
        .assert_failure(1, "served client 2 of 2")
        .assert_failure(
            1,
            "error: 1 of the 2 clients counted failed, the first: exchange messages with the \
             client on",
        )
        .assert_stdout(b"fine\n");
}

#[test]
fn fault_tcp_client_dropped_at_its_client_timeout_gets_a_reset() {
    let (mut server, url) = reader(&[
        "tcp://127.0.0.1:0",
        "--client-timeout",
        "0.2",
        "--timeout",
        "30",
    ]);
    let mut half = Client::connect(&url);
    half.stream().write_all(b"half").unwrap();
    server.wait_for_stderr("dropped connection 1 at its --client-timeout (0.2s)");
    // Not an end of stream it could take for the end of the greeting: a reset.
    let err = half.stream().read_to_end(&mut Vec::new()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");
    drop(server);
}

#[test]
fn fault_client_sending_more_than_the_server_can_hold_fails_the_run_without_an_abort() {
    let dir = temp_dir();
    let path = dir.path().join("s.sock");
    // 400 MB of address space: the message's buffer cannot grow past 256 MiB.
    let mut command = ours("/bin/sh");
    command.args(["-c", "ulimit -v 400000 && exec \"$0\" \"$@\"", READER]);
    let mut server = Proc::spawn(
        "stream-reader",
        &mut bounded(command, &[&unix_url(&path), "--timeout", "60"]),
    );
    let url = server.listening_url();
    let mut flood = Client::connect(&url);
    let chunk = vec![b'f'; 1 << 20];
    let mut sent = Ok(());
    for _ in 0..1024 {
        sent = flood.stream().write_all(&chunk);
        if sent.is_err() {
            break;
        }
    }
    let err = sent.expect_err("the server stops taking the flood");
    assert!(
        matches!(
            err.kind(),
            ErrorKind::BrokenPipe | ErrorKind::ConnectionReset
        ),
        "{err}"
    );
    server
        .finish()
        .assert_failure(1, "client 1 of 1 failed: receive from the client on")
        .assert_failure(1, "out of memory holding its message")
        .assert_stdout(b"");
    assert!(!path.exists(), "the server removes its socket file");
}

/// Whether the server's end of the TCP connection from `client_port` to `server_port` has read
/// everything that arrived (its receive queue in /proc/net/tcp is empty).
fn server_read_all(server_port: u16, client_port: u16) -> bool {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table.lines().skip(1).any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let port = |addr: &str| u16::from_str_radix(addr.rsplit(':').next().unwrap(), 16).unwrap();
        port(fields[1]) == server_port
            && port(fields[2]) == client_port
            && fields[4].split(':').nth(1) == Some("00000000")
    })
}

/// A stop signal ends a counted run (exit 143) while a TCP client is in its exchange: the server
/// read its whole message but had not printed it. The client gets a reset, not an end of stream
/// it would take for "the server read all of it".
#[test]
fn fault_tcp_client_in_its_exchange_at_a_stop_signal_gets_a_reset() {
    let (server, url) = reader(&["tcp://127.0.0.1:0", "--connections", "2", "--timeout", "30"]);
    let Client::Tcp(mut client) = Client::connect(&url) else {
        unreachable!("a tcp:// URL")
    };
    client.write_all(b"a whole message").unwrap();
    let mut greeting = vec![0; SERVER_IP.len()];
    client.read_exact(&mut greeting).unwrap();
    let server_port = port_in(&url);
    let client_port = client.local_addr().unwrap().port();
    let deadline = std::time::Instant::now() + STEP;
    while !server_read_all(server_port, client_port) {
        assert!(
            std::time::Instant::now() < deadline,
            "the server never read our message"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    server.signal(Signal::SIGTERM);
    server
        .finish()
        .assert_failure(143, "interrupted by SIGTERM")
        .assert_stdout(b"");
    let _ = client.shutdown(Shutdown::Write);
    let err = client.read_to_end(&mut Vec::new()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");
}

/// A server of several clients whose stdout's reader goes away after the first line
/// (`stream-reader --connections 2 | head -n1`): the second client's message, read whole, is
/// printed nowhere, so the run fails saying so. (It exited 0.)
#[test]
fn fault_server_whose_stdout_goes_away_fails_naming_the_client() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let dir = temp_dir();
    let url = unix_url(&dir.path().join("s.sock"));
    let mut serving = Command::new("timeout")
        .args(["10", READER, &url, "--connections", "2", "--timeout", "5"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(serving.stdout.take().unwrap());
    let writer = |message: &str| {
        let args = [url.as_str(), "--message", message];
        Proc::spawn("stream-writer", &mut bounded(ours(WRITER), &args)).finish()
    };
    writer("one").assert_success();
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert_eq!(first, "one\n");
    drop(stdout);

    writer("two");
    let status = serving.wait().unwrap();
    let mut stderr = String::new();
    serving
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the message of client 2 was taken but not printed"),
        "{stderr}"
    );
}

#[test]
fn fault_out_of_file_descriptors_the_next_clients_wait_in_the_backlog() {
    let dir = temp_dir();
    let path = dir.path().join("s.sock");
    // Room for a few connections besides the server's own descriptors, far below --max-clients.
    let mut command = ours("/bin/sh");
    command.args(["-c", "ulimit -n 12 && exec \"$0\" \"$@\"", READER]);
    let args = [unix_url(&path), "--connections".into(), "20".into()];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut server = Proc::spawn(
        "stream-reader",
        &mut bounded(command, &[&args[..], &["--timeout", "60"]].concat()),
    );
    let url = server.listening_url();
    let clients: Vec<Client> = (0..20).map(|_| Client::connect(&url)).collect();
    server.wait_for_stderr("out of file descriptors (`ulimit -n`) with");
    // In order: each one ending frees the descriptor the next one in the backlog needs.
    for (i, client) in clients.into_iter().enumerate() {
        let answer = client.swap(format!("client {i:02}").as_bytes());
        assert_eq!(answer, SERVER_UDS.as_bytes(), "client {i}");
    }
    let expected: String = (0..20).map(|i| format!("client {i:02}\n")).collect();
    let done = server.finish();
    done.assert_success().assert_stdout(expected.as_bytes());
    let said = done.stderr.matches("out of file descriptors").count();
    assert_eq!(said, 1, "said once a run");
    assert!(!path.exists(), "the server removes its socket file");
}
