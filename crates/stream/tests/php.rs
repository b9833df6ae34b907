//! Interop with real PHP: the blog's stream server and client (`tests/php/stream-*.php`,
//! `socket_listen`/`socket_accept`/`socket_connect`, `socket_write`, one `socket_read($s, 1024)`)
//! against our `stream-reader` (server) and `stream-writer` (client), over a Unix stream socket
//! and over TCP, in both directions. Both peers send and both print, so every case checks both
//! stdouts: the blog's messages, UTF-8, binary, empty, and the largest each side can take (1024
//! bytes where PHP reads, with its one `socket_read`; 1 MiB where ours reads to end of stream).
//! Skipped (one line) without `php` outside CI.

use std::ffi::OsString;
use std::path::Path;

use ipc_testkit::ours;
use ipc_testkit::php::{Payload, Php, payloads};
use ipc_testkit::{Finished, Proc, port_in, temp_dir};

/// What PHP's single `socket_read($socket, 1024)` takes.
const PHP_READ: usize = 1024;
/// Well past a socket buffer, for the side that reads to end of stream.
const LARGE: usize = 1 << 20;

/// The blog's client and server messages over `unix://` or `tcp://`.
fn blog(scheme: &str) -> (&'static str, &'static str) {
    match scheme {
        "unix" => (
            "Hello from Client: TCP/UDS [Stream]",
            "Hello from Server: TCP/UDS [Stream]",
        ),
        _ => (
            "Hello from Client: TCP/IP [Stream]",
            "Hello from Server: TCP/IP [Stream]",
        ),
    }
}

/// `stream-reader|stream-writer URL --timeout 5 EXTRA...`
fn our(side: &str, url: &str, extra: Vec<OsString>) -> Proc {
    let binary = match side {
        "reader" => env!("CARGO_BIN_EXE_stream-reader"),
        _ => env!("CARGO_BIN_EXE_stream-writer"),
    };
    let mut command = ours(binary);
    command.arg(url).args(["--timeout", "5"]).args(extra);
    Proc::spawn(&format!("stream-{side}"), &mut command)
}

/// The PHP peer's endpoint arguments: `--socket PATH` for `unix`, `--port N` for `tcp`.
fn php_endpoint(scheme: &str, dir: &Path, port: u16) -> Vec<OsString> {
    match scheme {
        "unix" => vec!["--socket".into(), dir.join("s.sock").into()],
        _ => vec!["--port".into(), port.to_string().into()],
    }
}

fn with_timeout(mut args: Vec<OsString>, extra: Vec<OsString>) -> Vec<OsString> {
    args.extend(["--timeout".into(), "5".into()]);
    args.extend(extra);
    args
}

/// Every client payload paired with a server payload of the same kind.
fn cases(scheme: &str, client_largest: usize, server_largest: usize) -> Vec<(Payload, Payload)> {
    let (client, server) = blog(scheme);
    payloads(client, client_largest)
        .into_iter()
        .zip(payloads(server, server_largest))
        .collect()
}

#[track_caller]
fn assert_both(client: Finished, server: Finished, client_sent: &Payload, server_sent: &Payload) {
    server
        .assert_success()
        .assert_stdout(&client_sent.printed());
    client
        .assert_success()
        .assert_stdout(&server_sent.printed());
}

/// The blog's PHP client talks to our server: it writes, then reads once.
fn php_client_to_our_server(scheme: &str) {
    let Some(php) = Php::find() else { return };
    for (client_sent, server_sent) in cases(scheme, LARGE, PHP_READ) {
        println!("case: {scheme} {}", client_sent.name);
        let dir = temp_dir();
        let url = match scheme {
            "unix" => format!("unix://{}", dir.path().join("s.sock").display()),
            _ => "tcp://127.0.0.1:0".to_string(),
        };
        let greeting = server_sent.sender_args(&dir.path().join("greeting"));
        let mut server = our("reader", &url, greeting);
        let port = match scheme {
            "unix" => {
                server.wait_for_stderr("listening on unix://");
                0
            }
            _ => port_in(&server.wait_for_stderr("listening on tcp://")),
        };
        let message = client_sent.sender_args(&dir.path().join("message"));
        let script = format!(
            "stream-{}-client.php",
            if scheme == "unix" { "uds" } else { "tcp" }
        );
        let client = php.run(
            &script,
            with_timeout(php_endpoint(scheme, dir.path(), port), message),
        );
        assert_both(client, server.finish(), &client_sent, &server_sent);
    }
}

/// Our client talks to the blog's PHP server: it reads once, then answers.
fn our_client_to_php_server(scheme: &str) {
    let Some(php) = Php::find() else { return };
    for (client_sent, server_sent) in cases(scheme, PHP_READ, LARGE) {
        println!("case: {scheme} {}", client_sent.name);
        let dir = temp_dir();
        let greeting = server_sent.sender_args(&dir.path().join("greeting"));
        let script = format!(
            "stream-{}-server.php",
            if scheme == "unix" { "uds" } else { "tcp" }
        );
        let mut server = php.spawn(
            &script,
            with_timeout(php_endpoint(scheme, dir.path(), 0), greeting),
        );
        let line = server.wait_for_stderr("listening on");
        let url = match scheme {
            "unix" => format!("unix://{}", dir.path().join("s.sock").display()),
            _ => format!("tcp://127.0.0.1:{}", port_in(&line)),
        };
        let message = client_sent.sender_args(&dir.path().join("message"));
        let client = our("writer", &url, message).finish();
        assert_both(client, server.finish(), &client_sent, &server_sent);
    }
}

#[test]
fn php_client_to_our_server_over_uds() {
    php_client_to_our_server("unix");
}

#[test]
fn php_client_to_our_server_over_tcp() {
    php_client_to_our_server("tcp");
}

#[test]
fn our_client_to_php_server_over_uds() {
    our_client_to_php_server("unix");
}

#[test]
fn our_client_to_php_server_over_tcp() {
    our_client_to_php_server("tcp");
}

/// After our TCP server served the blog's PHP client, the blog's PHP server, which binds without
/// SO_REUSEADDR, can bind the same port at once: the client, not our server, keeps TIME_WAIT.
#[test]
fn our_tcp_server_leaves_the_port_to_the_blogs_php_server() {
    let Some(php) = Php::find() else { return };
    for round in 0..3 {
        let mut server = our("reader", "tcp://127.0.0.1:0", vec![]);
        let port = port_in(&server.wait_for_stderr("listening on tcp://"));
        let client = php.run(
            "stream-tcp-client.php",
            with_timeout(php_endpoint("tcp", Path::new("/"), port), vec![]),
        );
        let (client_sent, server_sent) = blog("tcp");
        client
            .assert_success()
            .assert_stdout(format!("{server_sent}\n").as_bytes());
        server
            .finish()
            .assert_success()
            .assert_stdout(format!("{client_sent}\n").as_bytes());
        php.run(
            "tcp-bind-no-reuseaddr.php",
            ["--port".to_string(), port.to_string()],
        )
        .assert_success();
        println!("round {round}: port {port} free for the blog's server at once");
    }
}
