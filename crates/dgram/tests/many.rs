//! Multicast and broadcast: one datagram, three readers, each of which must print exactly the
//! bytes sent; the writer cannot know who got it, and says so. Ours and PHP's on either side.
//! Everything runs in a network namespace of the test's own ([`netns`]): nothing reaches the
//! host's interfaces. Readiness from each reader's `listening on` line (the join happens
//! before it), no sleeps.

mod netns;

use std::process::Command;

use ipc_testkit::php::Php;
use ipc_testkit::{Finished, Proc, Signal, ours, port_in};
use netns::Netns;

const READER: &str = env!("CARGO_BIN_EXE_dgram-reader");
const WRITER: &str = env!("CARGO_BIN_EXE_dgram-writer");

/// Not the blog's ASCII: a multi-byte character, a byte that is not UTF-8 and a newline (no
/// NUL: it cannot pass through argv).
const MESSAGE: &[u8] = b"to all of you \xe2\x9c\x93 \xff and\nmore";

fn message_arg() -> std::ffi::OsString {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::OsStr::from_bytes(MESSAGE).to_os_string()
}

fn printed() -> Vec<u8> {
    [MESSAGE, b"\n"].concat()
}

fn our(ns: &Netns, binary: &str, args: &[&str]) -> Command {
    let mut inner = ours(binary);
    inner.args(["--timeout", "5"]).args(args);
    ns.wrap(&inner)
}

/// Three of our readers on `url_for(port)`: the first on port 0, the others on the port it
/// got (sharing it), each with its own extra arguments.
fn three_readers(
    ns: &Netns,
    url_for: impl Fn(u16) -> String,
    extra: [&[&str]; 3],
) -> (Vec<Proc>, u16) {
    let mut first = Proc::spawn(
        "reader 1",
        &mut our(ns, READER, &[&[url_for(0).as_str()], extra[0]].concat()),
    );
    let port = port_in(&first.listening_url());
    let mut readers = vec![first];
    for (n, extra) in extra.iter().enumerate().skip(1) {
        let url = url_for(port);
        let mut reader = Proc::spawn(
            &format!("reader {}", n + 1),
            &mut our(ns, READER, &[&[url.as_str()], *extra].concat()),
        );
        reader.wait_for_stderr("listening on");
        readers.push(reader);
    }
    (readers, port)
}

fn send(ns: &Netns, url: &str, extra: &[&str]) -> Finished {
    let mut inner = ours(WRITER);
    inner
        .args(["--timeout", "5", url, "--message"])
        .arg(message_arg())
        .args(extra);
    Proc::spawn("writer", &mut ns.wrap(&inner)).finish()
}

#[track_caller]
fn all_got_it(readers: Vec<Proc>) {
    for reader in readers {
        reader.finish().assert_success().assert_stdout(&printed());
    }
}

#[test]
fn multicast_ipv4_reaches_three_readers() {
    let Some(ns) = Netns::create() else { return };
    // The route picks the interface for one; the others name it, by address and by name.
    let (readers, port) = three_readers(
        &ns,
        |port| format!("udp://239.255.0.1:{port}"),
        [&[], &["--interface", "10.77.0.1"], &["--interface", "v0"]],
    );
    let writer = send(&ns, &format!("udp://239.255.0.1:{port}"), &["--ttl", "1"]);
    writer.assert_success();
    assert!(
        writer.stderr.contains("nobody can tell who received it"),
        "{writer:?}"
    );
    assert!(writer.stdout.is_empty(), "{writer:?}");
    all_got_it(readers);
}

#[test]
fn multicast_ipv6_reaches_three_readers() {
    let Some(ns) = Netns::create() else { return };
    let (readers, port) = three_readers(
        &ns,
        |port| format!("udp://[ff15::1]:{port}"),
        [
            &["--interface", "v0"],
            &["--interface", "v0"],
            &["--interface", "fd77::1"],
        ],
    );
    send(
        &ns,
        &format!("udp://[ff15::1]:{port}"),
        &["--interface", "v0"],
    )
    .assert_success();
    all_got_it(readers);
}

/// A link-local group (ff02::/16) exists once per link: the interface is part of its address
/// (the scope id), which `--interface` gives; without it `bind(2)` and `connect(2)` say only
/// EINVAL, so it is a usage error saying what to add.
#[test]
fn multicast_ipv6_link_local_group_is_joined_on_the_named_interface() {
    let Some(ns) = Netns::create() else { return };
    let (readers, port) = three_readers(
        &ns,
        |port| format!("udp://[ff02::4242]:{port}"),
        [
            &["--interface", "v0"],
            &["--interface", "v0"],
            &["--interface", "fd77::1"],
        ],
    );
    let url = format!("udp://[ff02::4242]:{port}");
    send(&ns, &url, &["--interface", "v0"]).assert_success();
    all_got_it(readers);
}

#[test]
fn broadcast_reaches_three_shared_readers_and_needs_the_flag() {
    let Some(ns) = Netns::create() else { return };
    for address in ["255.255.255.255", "10.77.0.255"] {
        let (readers, port) = three_readers(
            &ns,
            |port| format!("udp://0.0.0.0:{port}"),
            [&["--shared"]; 3],
        );
        let url = format!("udp://{address}:{port}");
        send(&ns, &url, &[]).assert_failure(1, "pass --broadcast");
        let writer = send(&ns, &url, &["--broadcast"]);
        writer.assert_success();
        assert!(
            writer
                .stderr
                .contains("broadcast: to every reader there, or none"),
            "{writer:?}"
        );
        all_got_it(readers);
    }
}

/// A reader killed before the datagram comes: the writer cannot tell (exit 0, as documented),
/// the other two still get every byte, the dead one printed nothing.
#[test]
fn fault_dead_reader_does_not_stop_the_others() {
    let Some(ns) = Netns::create() else { return };
    let (mut readers, port) =
        three_readers(&ns, |port| format!("udp://239.255.0.1:{port}"), [&[]; 3]);
    let dead = readers.remove(1);
    dead.signal(Signal::SIGKILL);
    let dead = dead.finish();
    assert_eq!(dead.status.code(), None, "{dead:?}");
    assert!(dead.stdout.is_empty(), "{dead:?}");
    send(&ns, &format!("udp://239.255.0.1:{port}"), &[]).assert_success();
    all_got_it(readers);
}

/// Options that make no sense for the address are usage errors (exit 2), not ignored.
#[test]
fn options_that_do_not_fit_the_address_are_usage_errors() {
    let cases: [(&str, &[&str], &str); 8] = [
        (
            WRITER,
            &["udp://[ff02::4242]:9"],
            "a link-local group: --interface names the link",
        ),
        (
            READER,
            &["udp://[ff12::4242]:0"],
            "a link-local group: --interface names the link",
        ),
        (
            WRITER,
            &["udp://239.255.0.1:9", "--expect-reply"],
            "--expect-reply needs one reader",
        ),
        (
            WRITER,
            &["udp://127.255.255.255:9", "--broadcast", "--expect-reply"],
            "--expect-reply needs one reader",
        ),
        (
            WRITER,
            &["udg:///nonexistent/s", "--broadcast"],
            "--broadcast is for udp://",
        ),
        (
            WRITER,
            &["udp://127.0.0.1:9", "--interface", "lo"],
            "is not a group address",
        ),
        (
            READER,
            &["udg:///nonexistent/s", "--shared"],
            "are for udp:// addresses",
        ),
        (
            READER,
            &["udp://127.0.0.1:0", "--interface", "lo"],
            "where to join a multicast group",
        ),
    ];
    for (binary, args, needle) in cases {
        let mut command = ours(binary);
        command.args(["--timeout", "1"]).args(args);
        ipc_testkit::run("usage", &mut command, None).assert_failure(2, needle);
    }
    let mut command = ours(READER);
    command.args(["udp://239.255.0.1:0", "--interface", "no-such-interface"]);
    ipc_testkit::run("usage", &mut command, None)
        .assert_failure(2, "no interface has that name or address");
}

fn php_in(ns: &Netns, php: &Php, script: &str, args: &[&str]) -> Proc {
    let mut inner = php.command(script, args);
    inner.args(["--timeout", "5"]);
    Proc::spawn(&format!("php {script}"), &mut ns.wrap(&inner))
}

/// PHP's sender (`socket_sendto` to the group; with `SO_BROADCAST` to the broadcast address)
/// to three of our readers.
#[test]
fn php_sender_to_three_of_our_readers() {
    let Some(php) = Php::find() else { return };
    let Some(ns) = Netns::create() else { return };
    let text = "Hello from Sender: UDP/IP [Datagram]";
    for (host, reader_host, reader_extra, sender_extra) in [
        ("239.255.0.1", "239.255.0.1", &[][..], &[][..]),
        (
            "255.255.255.255",
            "0.0.0.0",
            &["--shared"][..],
            &["--broadcast"][..],
        ),
    ] {
        let (readers, port) = three_readers(
            &ns,
            |port| format!("udp://{reader_host}:{port}"),
            [reader_extra; 3],
        );
        let port = port.to_string();
        let args = [
            &["--host", host, "--port", port.as_str(), "--message", text][..],
            sender_extra,
        ]
        .concat();
        php_in(&ns, &php, "dgram-udp-sender.php", &args)
            .finish()
            .assert_success();
        for reader in readers {
            reader
                .finish()
                .assert_success()
                .assert_stdout(format!("{text}\n").as_bytes());
        }
    }
}

/// Our writer to three PHP listeners (`SO_REUSEADDR`/`SO_REUSEPORT`, `MCAST_JOIN_GROUP`).
#[test]
fn our_writer_to_three_php_listeners() {
    let Some(php) = Php::find() else { return };
    let Some(ns) = Netns::create() else { return };
    let text = "Hello from Sender: UDP/IP [Datagram]";
    for (group, listen_host, join, extra) in [
        ("239.255.0.1", "239.255.0.1", Some("239.255.0.1"), &[][..]),
        ("10.77.0.255", "0.0.0.0", None, &["--broadcast"][..]),
    ] {
        let mut listeners = Vec::new();
        let mut port = "0".to_string();
        for _ in 0..3 {
            let mut args = vec!["--host", listen_host, "--port", port.as_str()];
            if let Some(join) = join {
                args.extend(["--join", join]);
            }
            let mut listener = php_in(&ns, &php, "dgram-udp-group-listener.php", &args);
            let line = listener.wait_for_stderr("listening on");
            let got = port_in(&line).to_string();
            listeners.push(listener);
            port = got;
        }
        let mut inner = ours(WRITER);
        inner
            .args([
                "--timeout",
                "5",
                &format!("udp://{group}:{port}"),
                "--message",
                text,
            ])
            .args(extra);
        Proc::spawn("writer", &mut ns.wrap(&inner))
            .finish()
            .assert_success();
        for listener in listeners {
            listener
                .finish()
                .assert_success()
                .assert_stdout(format!("{text}\n").as_bytes());
        }
    }
}
