//! The faults of issue 14 against a redis-server of the test's own (AOF on, `appendfsync
//! always`): Redis restarted (stopped, and killed) mid-run, a stream trimmed under the reader, a
//! message over Redis's limit or ours, and a reader stopped by SIGTERM while it waits.

mod common;

use common::{GROUP, PRINTED, READER, STREAM, Server, WRITER, available, ours};
use ipc_testkit::{Proc, run};
use nix::sys::signal::Signal;

fn message(n: usize) -> String {
    format!("message {n}")
}

fn printed(n: usize) -> Vec<u8> {
    format!("{}\n", message(n)).into_bytes()
}

/// With AOF, a restart loses nothing acknowledged-by-Redis and redelivers nothing acknowledged
/// by a reader; a reader blocked in XREADGROUP when Redis goes away reconnects within
/// --timeout and gets the next message.
#[test]
fn fault_redis_restarted_mid_run_loses_and_repeats_nothing() {
    if !available() {
        return;
    }
    let mut server = Server::start(&[]);
    let url = server.unix_url();
    for n in 1..=3 {
        run(
            "writer",
            &mut ours(WRITER, &url, &["-m", &message(n)]),
            None,
        )
        .assert_success();
    }
    run("reader", &mut ours(READER, &url, &[]), None)
        .assert_success()
        .assert_stdout(&printed(1));

    // Stopped cleanly: the two unread messages and the group's position survive.
    server.stop();
    server.launch();
    for n in 2..=3 {
        run("reader", &mut ours(READER, &url, &[]), None)
            .assert_success()
            .assert_stdout(&printed(n));
    }

    // A reader waiting while Redis restarts under it.
    let mut waiting = Proc::spawn("reader", &mut ours(READER, &url, &["--timeout", "15"]));
    waiting.wait_for_stderr("waiting for a message");
    server.stop();
    server.launch();
    run(
        "writer",
        &mut ours(WRITER, &url, &["-m", &message(4)]),
        None,
    )
    .assert_success();
    let done = waiting.finish();
    done.assert_success().assert_stdout(&printed(4));
    assert!(
        done.stderr.contains("lost the connection"),
        "{}",
        done.stderr
    );

    // Killed (SIGKILL): appendfsync always kept what XADD answered, and the acknowledgements.
    run(
        "writer",
        &mut ours(WRITER, &url, &["-m", &message(5)]),
        None,
    )
    .assert_success();
    server.crash();
    server.launch();
    run("reader", &mut ours(READER, &url, &[]), None)
        .assert_success()
        .assert_stdout(&printed(5));
    run(
        "reader",
        &mut ours(READER, &url, &["--timeout", "0.5"]),
        None,
    )
    .assert_failure(124, "waiting for a message");
    let length: usize = server.query(&["XLEN", STREAM]);
    assert_eq!(length, 5);
    assert_eq!(server.pending(STREAM, GROUP), 0);
}

/// A reader took a message and died; the stream was trimmed before anyone acknowledged it. The
/// next reader says the message is lost (it cannot be delivered) instead of silently moving on.
#[test]
fn fault_a_stream_trimmed_under_the_reader_is_reported() {
    if !available() {
        return;
    }
    let server = Server::start(&[]);
    let url = server.unix_url();
    run("writer", &mut ours(WRITER, &url, &[]), None).assert_success();
    let _: () = server.query(&["XGROUP", "CREATE", STREAM, GROUP, "0"]);
    let _: redis::Value = server.query(&[
        "XREADGROUP",
        "GROUP",
        GROUP,
        "dead",
        "COUNT",
        "1",
        "STREAMS",
        STREAM,
        ">",
    ]);
    let trimmed: usize = server.query(&["XTRIM", STREAM, "MAXLEN", "0"]);
    assert_eq!(trimmed, 1);
    run(
        "reader",
        &mut ours(READER, &url, &["--claim-after", "0", "--timeout", "1"]),
        None,
    )
    .assert_failure(124, "has since been trimmed from stream ipc-message-queues");
    // Later messages still flow.
    run("writer", &mut ours(WRITER, &url, &[]), None).assert_success();
    run("reader", &mut ours(READER, &url, &[]), None)
        .assert_success()
        .assert_stdout(PRINTED);
    // The stream deleted under the group: it is made again.
    let _: usize = server.query(&["DEL", STREAM]);
    let mut waiting = Proc::spawn("reader", &mut ours(READER, &url, &["--timeout", "15"]));
    waiting.wait_for_stderr("connected to");
    run("writer", &mut ours(WRITER, &url, &[]), None).assert_success();
    waiting.finish().assert_success().assert_stdout(PRINTED);
}

/// Over Redis's limit (proto-max-bulk-len, at its 1 MiB minimum here): a clear error, nothing
/// in the stream. Over ours (--max-size): refused before connecting.
#[test]
fn fault_a_message_over_the_limits_is_refused_clearly() {
    if !available() {
        return;
    }
    let server = Server::start(&["--proto-max-bulk-len", "1mb"]);
    let url = server.unix_url();
    let file = server.dir.path().join("big");
    std::fs::write(&file, vec![b'x'; (1 << 20) + 1]).unwrap();
    let path = file.to_str().unwrap();
    let refused = run(
        "writer",
        &mut ours(WRITER, &url, &["--raw", "--message-file", path]),
        None,
    );
    refused.assert_failure(1, "proto-max-bulk-len");
    let length: usize = server.query(&["XLEN", STREAM]);
    assert_eq!(length, 0);

    std::fs::write(&file, vec![b'x'; 1 << 20]).unwrap();
    run(
        "writer",
        &mut ours(WRITER, &url, &["--raw", "--message-file", path]),
        None,
    )
    .assert_success();
    // A reader with a smaller limit leaves it pending, for one that takes it.
    run(
        "reader",
        &mut ours(READER, &url, &["--raw", "--max-size", "1000"]),
        None,
    )
    .assert_failure(1, "over --max-size 1000: left pending");
    assert_eq!(server.pending(STREAM, GROUP), 1);
    let mut whole = vec![b'x'; 1 << 20];
    whole.push(b'\n');
    run(
        "reader",
        &mut ours(READER, &url, &["--raw", "--claim-after", "0"]),
        None,
    )
    .assert_success()
    .assert_stdout(&whole);
    run(
        "writer",
        &mut ours(WRITER, "unix:///nonexistent", &["--max-size", "10"]),
        None,
    )
    .assert_failure(1, "over 10 bytes");
    run(
        "writer",
        &mut ours(WRITER, &url, &["--max-size", "0"]),
        None,
    )
    .assert_failure(2, "--max-size");
}

/// SIGTERM while waiting: 143, and no consumer of ours left in the group.
#[test]
fn fault_a_stopped_reader_leaves_no_consumer() {
    if !available() {
        return;
    }
    let server = Server::start(&[]);
    let url = server.unix_url();
    let mut reader = Proc::spawn("reader", &mut ours(READER, &url, &["--timeout", "15"]));
    reader.wait_for_stderr("waiting for a message");
    reader.signal(Signal::SIGTERM);
    let done = reader.finish();
    assert_eq!(done.status.code(), Some(143), "{done:?}");
    let consumers: Vec<redis::Value> = server.query(&["XINFO", "CONSUMERS", STREAM, GROUP]);
    assert!(consumers.is_empty(), "{consumers:?}");
}

/// A Redis that stops answering (SIGSTOP): both sides give up at their --timeout, exit 124.
#[test]
fn fault_a_redis_that_stops_answering_is_a_timeout() {
    if !available() {
        return;
    }
    let server = Server::start(&[]);
    let url = server.unix_url();
    let mut reader = Proc::spawn("reader", &mut ours(READER, &url, &["--timeout", "1.5"]));
    reader.wait_for_stderr("waiting for a message");
    server.signal(Signal::SIGSTOP);
    let stuck = run("writer", &mut ours(WRITER, &url, &["--timeout", "1"]), None);
    let done = reader.finish();
    server.signal(Signal::SIGCONT);
    stuck.assert_failure(124, "timed out after 1s waiting for Redis at");
    done.assert_failure(124, "timed out after 1.5s waiting for");
}

/// A reader stopped (SIGSTOP) inside XREADGROUP while Redis hands it an entry, then continued:
/// the read may return EINTR (a socket with a receive timeout is not restarted after a stop,
/// signal(7)), the reply is lost with the connection, and the entry is pending for the reader's
/// own consumer, where `>` never delivers it again. The reader takes it back at once
/// (XPENDING + XCLAIM of its own), well inside a --timeout shorter than --claim-after.
#[test]
fn fault_a_reader_stopped_mid_read_takes_back_what_redis_handed_it() {
    if !available() {
        return;
    }
    let server = Server::start(&[]);
    let url = server.unix_url();
    let mut reader = Proc::spawn(
        "reader",
        &mut ours(READER, &url, &["--timeout", "4", "--claim-after", "60"]),
    );
    reader.wait_for_stderr("waiting for a message");
    reader.signal(Signal::SIGSTOP);
    run(
        "writer",
        &mut ours(WRITER, &url, &["-m", &message(1)]),
        None,
    )
    .assert_success();
    // Redis hands it over if the stop caught the reader inside XREADGROUP (then it is pending
    // for the stopped reader's consumer); caught between two BLOCK slices, it is not, and the
    // reader simply reads it when continued. Either way it must come out within --timeout.
    let handed = std::time::Instant::now();
    while handed.elapsed() < std::time::Duration::from_secs(1) {
        let pending: Vec<redis::Value> = server.query(&["XPENDING", STREAM, GROUP, "-", "+", "1"]);
        if !pending.is_empty() {
            break;
        }
        std::thread::yield_now();
    }
    reader.signal(Signal::SIGCONT);
    let done = reader.finish();
    // Whether the read was cut depends on where the stop caught it; the contract suite's
    // StopReader schedules hit the cut one run in a few dozen.
    done.assert_success().assert_stdout(&printed(1));
}

/// Forwards one connection at `listen` to Redis at `upstream`; just before a command naming
/// DELCONSUMER goes through, runs `meanwhile` (another client's command, in the window
/// between the reader's look and its removal).
fn proxy_with_a_step_before_delconsumer(
    listen: &std::path::Path,
    upstream: std::path::PathBuf,
    meanwhile: impl FnOnce() + Send + 'static,
) -> std::thread::JoinHandle<()> {
    use std::io::{Read, Write};
    use std::os::unix::net::{UnixListener, UnixStream};
    let listener = UnixListener::bind(listen).unwrap();
    std::thread::spawn(move || {
        let (client, _) = listener.accept().unwrap();
        let server = UnixStream::connect(upstream).unwrap();
        for s in [&client, &server] {
            s.set_read_timeout(Some(ipc_testkit::STEP)).unwrap();
        }
        let (mut from_server, mut to_client) =
            (server.try_clone().unwrap(), client.try_clone().unwrap());
        let back = std::thread::spawn(move || {
            let mut buf = [0; 4096];
            while let Ok(n @ 1..) = from_server.read(&mut buf) {
                if to_client.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        });
        let (mut from_client, mut to_server) = (client, server);
        let mut meanwhile = Some(meanwhile);
        let mut buf = [0; 4096];
        while let Ok(n @ 1..) = from_client.read(&mut buf) {
            if buf[..n].windows(11).any(|w| w == b"DELCONSUMER") {
                if let Some(step) = meanwhile.take() {
                    step();
                }
            }
            if to_server.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to_server.shutdown(std::net::Shutdown::Both);
        back.join().unwrap();
    })
}

/// Two readers that share a consumer name (`--consumer`, or HOST-PID alike in two containers):
/// one removes the consumer after its message while the other has just received one under
/// that name. XGROUP DELCONSUMER drops a consumer's pending entries, so the check (XPENDING)
/// and the removal must be one step: the other reader's entry must stay pending, or a reader
/// killed before acknowledging it would lose it for good.
#[test]
fn fault_removing_our_consumer_never_drops_an_entry_pending_under_its_name() {
    if !available() {
        return;
    }
    let server = Server::start(&[]);
    for n in 1..=2 {
        run(
            "writer",
            &mut ours(WRITER, &server.unix_url(), &["--message", &message(n)]),
            None,
        )
        .assert_success();
    }
    let proxy = server.dir.path().join("proxy.sock");
    let admin_url = server.unix_url();
    let forwarding = proxy_with_a_step_before_delconsumer(&proxy, server.socket(), move || {
        // The other reader, named alike, receives message 2 now.
        let client = redis::Client::open(admin_url.replace("unix://", "redis+unix://")).unwrap();
        let mut con = client.get_connection().unwrap();
        let _: redis::Value = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg("shared")
            .arg("COUNT")
            .arg(1)
            .arg("STREAMS")
            .arg(STREAM)
            .arg(">")
            .query(&mut con)
            .unwrap();
    });
    let url = format!("unix://{}", proxy.display());
    run(
        "reader",
        &mut ours(READER, &url, &["--consumer", "shared"]),
        None,
    )
    .assert_success()
    .assert_stdout(&printed(1));
    forwarding.join().unwrap();
    assert_eq!(
        server.pending(STREAM, GROUP),
        1,
        "message 2 is no longer pending"
    );
}

/// What the stand-in saw: the commands' names in order, and the `XADD`'s words.
type Seen = (Vec<String>, Vec<Vec<u8>>);

/// A stand-in for a Redis that has just restarted: it accepts connections at once but answers
/// `-LOADING` to the first `loading` commands that need its data (PING included), then `+PONG`
/// and one `XADD` id; the client's own handshake (`CLIENT ...`, `HELLO`) gets `+OK`. With
/// `hold`, the first PING is answered only once the test says so (`held` is sent first).
/// The thread returns the commands' names in order and the `XADD`'s words, byte for byte.
fn loading_redis(
    loading: usize,
    hold: Option<(std::sync::mpsc::Sender<()>, std::sync::mpsc::Receiver<()>)>,
) -> (String, std::thread::JoinHandle<Seen>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://{}", listener.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        let mut hold = hold;
        let mut seen = Vec::new();
        let mut refused = 0;
        'clients: for client in listener.incoming() {
            let client = client.unwrap();
            client.set_read_timeout(Some(ipc_testkit::STEP)).unwrap();
            let mut reader = BufReader::new(client.try_clone().unwrap());
            let mut writer = client;
            loop {
                // One command: *N, then N bulk strings; the first names it.
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    continue 'clients;
                }
                let n: usize = line.trim_start_matches('*').trim().parse().unwrap();
                let mut words = Vec::new();
                for _ in 0..n {
                    let mut len = String::new();
                    reader.read_line(&mut len).unwrap();
                    let len: usize = len.trim_start_matches('$').trim().parse().unwrap();
                    let mut word = vec![0; len + 2];
                    std::io::Read::read_exact(&mut reader, &mut word).unwrap();
                    word.truncate(len);
                    words.push(word);
                }
                let name = String::from_utf8_lossy(&words[0]).to_uppercase();
                seen.push(name.clone());
                if name == "PING"
                    && let Some((held, release)) = hold.take()
                {
                    held.send(()).unwrap();
                    release.recv().unwrap();
                }
                let reply = match name.as_str() {
                    "CLIENT" | "HELLO" | "SELECT" => "+OK\r\n".to_owned(),
                    _ if refused < loading => {
                        refused += 1;
                        "-LOADING Redis is loading the dataset in memory\r\n".to_owned()
                    }
                    "PING" => "+PONG\r\n".to_owned(),
                    "XADD" => {
                        writer.write_all(b"$15\r\n1700000000000-0\r\n").unwrap();
                        return (seen, words);
                    }
                    _ => "-ERR unexpected\r\n".to_owned(),
                };
                writer.write_all(reply.as_bytes()).unwrap();
            }
        }
        (seen, Vec::new())
    });
    (url, server)
}

/// Redis restarted and still loading its data: the writer waits (within --timeout) until it
/// answers, instead of failing on the first command with LOADING.
#[test]
fn fault_a_redis_still_loading_its_data_is_waited_for() {
    let (url, server) = loading_redis(3, None);
    let done = run(
        "writer",
        &mut ours(WRITER, &url, &["--timeout", "10"]),
        None,
    );
    done.assert_success();
    assert!(
        done.stderr.contains("entry 1700000000000-0"),
        "{}",
        done.stderr
    );
    let (seen, xadd) = server.join().unwrap();
    assert_eq!(
        seen.iter().filter(|name| *name == "XADD").count(),
        1,
        "{seen:?}"
    );
    // The message, serialized as PHP's msg_send does, is what went out.
    let expected: [&[u8]; 7] = [
        b"XADD",
        STREAM.as_bytes(),
        b"*",
        b"type",
        b"1",
        b"body",
        b"s:32:\"Hello from Writer: Message Queue\";",
    ];
    assert_eq!(xadd, expected.map(<[u8]>::to_vec), "{seen:?}");
}

/// A stop signal while connecting (SIGSTOP, then SIGCONT, while the writer waits for Redis's
/// PONG) may cut the read short with EINTR (whether it reaches us depends on which read the
/// redis crate is in: some retry it): the writer connects again instead of failing. Ten rounds,
/// so that the cut comes in some of them.
#[test]
fn fault_a_writer_stopped_while_connecting_connects_again() {
    let mut cut = 0;
    for _ in 0..10 {
        let (held_tx, held) = std::sync::mpsc::channel();
        let (release, release_rx) = std::sync::mpsc::channel();
        let (url, server) = loading_redis(0, Some((held_tx, release_rx)));
        let writer = Proc::spawn("writer", &mut ours(WRITER, &url, &["--timeout", "10"]));
        held.recv_timeout(ipc_testkit::STEP)
            .expect("the writer's PING");
        writer.signal(Signal::SIGSTOP);
        // Continued only once really stopped (state T in /proc/PID/stat).
        let stat = format!("/proc/{}/stat", writer.pid());
        let asked = std::time::Instant::now();
        while !std::fs::read_to_string(&stat).is_ok_and(|s| s.contains(") T ")) {
            assert!(
                asked.elapsed() < ipc_testkit::STEP,
                "the writer did not stop"
            );
            std::thread::yield_now();
        }
        writer.signal(Signal::SIGCONT);
        // Answered late: to a writer that gave the connection up, or to one still reading it.
        release.send(()).unwrap();
        writer.finish().assert_success();
        let (seen, xadd) = server.join().unwrap();
        assert_eq!(
            xadd.last().map(Vec::as_slice),
            Some(&b"s:32:\"Hello from Writer: Message Queue\";"[..])
        );
        let pings = seen.iter().filter(|name| *name == "PING").count();
        assert!((1..=2).contains(&pings), "{seen:?}");
        cut += usize::from(pings == 2);
    }
    println!("the stop cut the read in {cut} of 10 rounds");
}
