//! Interop with real PHP: the blog's datagram sender and listener (`tests/php/dgram-*.php`,
//! `socket_sendto`/`socket_recvfrom`) against our `dgram-reader` and `dgram-writer`, over a Unix
//! datagram socket and over UDP, in both directions, with the blog's message, UTF-8, binary,
//! empty and the largest datagram the path takes. Whoever listens binds first and says
//! `listening on URL` (UDP on port 0, the port learned from that line). Skipped (one line)
//! without `php` outside CI.

use std::ffi::OsString;

use ipc_testkit::ours;
use ipc_testkit::php::{Php, payloads};
use ipc_testkit::{Proc, port_in, temp_dir};

const UDS_MESSAGE: &str = "Hello from Sender: UDP/UDS [Datagram]";
const UDP_MESSAGE: &str = "Hello from Sender: UDP/IP [Datagram]";

/// The largest UDP payload over IPv4: 65535 - 20 (IP header) - 8 (UDP header).
const UDP_LARGEST: usize = 65_507;

/// The largest Unix datagram a socket with the default send buffer may send: the kernel refuses
/// anything over `sk_sndbuf - 32` (EMSGSIZE), and PHP's sockets keep the default
/// (`net.core.wmem_default`).
fn uds_largest() -> usize {
    let text = std::fs::read_to_string("/proc/sys/net/core/wmem_default")
        .expect("read /proc/sys/net/core/wmem_default");
    text.trim().parse::<usize>().expect("a number") - 32
}

/// `dgram-reader|dgram-writer URL --timeout 5 EXTRA...`
fn our(side: &str, url: &str, extra: Vec<OsString>) -> Proc {
    let binary = match side {
        "reader" => env!("CARGO_BIN_EXE_dgram-reader"),
        _ => env!("CARGO_BIN_EXE_dgram-writer"),
    };
    let mut command = ours(binary);
    command.arg(url).args(["--timeout", "5"]).args(extra);
    Proc::spawn(&format!("dgram-{side}"), &mut command)
}

fn args(pairs: &[(&str, String)], extra: Vec<OsString>) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["--timeout".into(), "5".into()];
    for (name, value) in pairs {
        args.extend([OsString::from(format!("--{name}")), value.into()]);
    }
    args.extend(extra);
    args
}

#[test]
fn php_sender_to_our_reader_over_uds() {
    let Some(php) = Php::find() else { return };
    for payload in payloads(UDS_MESSAGE, uds_largest()) {
        println!("case: {}", payload.name);
        let dir = temp_dir();
        let socket = dir.path().join("s.sock");
        let url = format!("udg://{}", socket.display());
        let mut reader = our("reader", &url, vec![]);
        reader.wait_for_stderr("listening on");
        let message = payload.sender_args(&dir.path().join("message"));
        php.run(
            "dgram-uds-sender.php",
            args(&[("socket", socket.display().to_string())], message),
        )
        .assert_success();
        reader
            .finish()
            .assert_success()
            .assert_stdout(&payload.printed());
        assert!(!socket.exists(), "our reader removes its socket file");
    }
}

/// PHP's `socket_recvfrom` truncates silently at its length argument, so the listener is told
/// the largest size (the blog's is 1024).
#[test]
fn our_writer_to_php_listener_over_uds() {
    let Some(php) = Php::find() else { return };
    let largest = uds_largest();
    for payload in payloads(UDS_MESSAGE, largest) {
        println!("case: {}", payload.name);
        let dir = temp_dir();
        let socket = dir.path().join("s.sock");
        let listener_args = [
            ("socket", socket.display().to_string()),
            ("length", largest.to_string()),
        ];
        let mut listener = php.spawn("dgram-uds-listener.php", args(&listener_args, vec![]));
        listener.wait_for_stderr("listening on");
        let message = payload.sender_args(&dir.path().join("message"));
        our("writer", &format!("udg://{}", socket.display()), message)
            .finish()
            .assert_success()
            .assert_stdout(b"");
        listener
            .finish()
            .assert_success()
            .assert_stdout(&payload.printed());
    }
}

#[test]
fn php_sender_to_our_reader_over_udp() {
    let Some(php) = Php::find() else { return };
    for payload in payloads(UDP_MESSAGE, UDP_LARGEST) {
        println!("case: {}", payload.name);
        let dir = temp_dir();
        let mut reader = our("reader", "udp://127.0.0.1:0", vec![]);
        let port = port_in(&reader.wait_for_stderr("listening on udp://"));
        let message = payload.sender_args(&dir.path().join("message"));
        php.run(
            "dgram-udp-sender.php",
            args(&[("port", port.to_string())], message),
        )
        .assert_success();
        reader
            .finish()
            .assert_success()
            .assert_stdout(&payload.printed());
    }
}

#[test]
fn our_writer_to_php_listener_over_udp() {
    let Some(php) = Php::find() else { return };
    for payload in payloads(UDP_MESSAGE, UDP_LARGEST) {
        println!("case: {}", payload.name);
        let dir = temp_dir();
        let listener_args = [
            ("port", "0".to_string()),
            ("length", UDP_LARGEST.to_string()),
        ];
        let mut listener = php.spawn("dgram-udp-listener.php", args(&listener_args, vec![]));
        let port = port_in(&listener.wait_for_stderr("listening on udp://"));
        let message = payload.sender_args(&dir.path().join("message"));
        our("writer", &format!("udp://127.0.0.1:{port}"), message)
            .finish()
            .assert_success()
            .assert_stdout(b"");
        listener
            .finish()
            .assert_success()
            .assert_stdout(&payload.printed());
    }
}

/// The blog's listener reads with `socket_recvfrom($socket, $buf, 1024, ...)`: a message of
/// exactly 1024 bytes arrives whole at the blog's own length.
#[test]
fn the_blog_length_takes_a_1024_byte_datagram() {
    let Some(php) = Php::find() else { return };
    let payload = payloads(UDS_MESSAGE, 1024).pop().expect("the largest case");
    let dir = temp_dir();
    let socket = dir.path().join("s.sock");
    let mut listener = php.spawn(
        "dgram-uds-listener.php",
        args(&[("socket", socket.display().to_string())], vec![]),
    );
    listener.wait_for_stderr("listening on");
    let message = payload.sender_args(&dir.path().join("message"));
    our("writer", &format!("udg://{}", socket.display()), message)
        .finish()
        .assert_success();
    listener
        .finish()
        .assert_success()
        .assert_stdout(&payload.printed());
}
