//! Interop with real PHP over Redis Streams: phpredis peers (`tests/php/broker-*.php`, `xAdd`,
//! `xReadGroup`, `xAck`) against our broker-reader and broker-writer, both ways, serialized
//! (as `msg_send` does) and raw, with the blog's message, UTF-8, binary, empty and a 1 MiB
//! message, on a redis-server of the test's own (its Unix socket, and TCP with a password).
//! Skipped (one line each) without php, php-redis or redis-server outside CI; failing in CI.

mod common;

use std::ffi::OsString;

use common::{GROUP, READER, STREAM, Server, WRITER, available};
use ipc_testkit::php::{Php, payloads};
use ipc_testkit::{Finished, run};

const LARGEST: usize = 1 << 20;

/// `php`, with the redis extension (Debian's php-redis).
fn php_with_redis() -> Option<Php> {
    let php = Php::find()?;
    // Php::find found `php` on PATH.
    let has = std::process::Command::new("php")
        .args(["-r", "exit(extension_loaded('redis') ? 0 : 1);"])
        .status()
        .is_ok_and(|s| s.success());
    if has {
        return Some(php);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("PHP interop must run in CI (CI is set): php has no redis extension");
    }
    ipc_testkit::skipped("skipping Redis PHP interop: no php-redis (apt-get install -y php-redis)");
    None
}

fn ours(binary: &str, url: &str, args: &[OsString]) -> Finished {
    let mut command = common::ours(binary, url, &[]);
    run(binary, command.args(args), None)
}

fn peer_args(url: &str, extra: &[OsString]) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["--url".into(), url.into(), "--timeout".into(), "5".into()];
    args.extend_from_slice(extra);
    args
}

fn both_ways(server: &Server, url: &str, php: &Php, raw: bool) {
    let flag: Vec<OsString> = if raw { vec!["--raw".into()] } else { vec![] };
    for payload in payloads(broker::MESSAGE, LARGEST) {
        println!("case: {} (raw: {raw})", payload.name);
        let mut message = payload.sender_args(&server.dir.path().join("message"));
        message.extend(flag.clone());
        php.run("broker-writer.php", peer_args(url, &message))
            .assert_success()
            .assert_stdout(b"");
        ours(READER, url, &flag)
            .assert_success()
            .assert_stdout(&payload.printed());

        ours(WRITER, url, &message).assert_success();
        php.run("broker-reader.php", peer_args(url, &flag))
            .assert_success()
            .assert_stdout(&payload.printed());
        assert_eq!(server.pending(STREAM, GROUP), 0);
    }
}

#[test]
fn php_and_ours_both_ways_over_the_unix_socket() {
    let Some(php) = php_with_redis() else { return };
    if !available() {
        return;
    }
    let server = Server::start(&[]);
    both_ways(&server, &server.unix_url(), &php, false);
    both_ways(&server, &server.unix_url(), &php, true);
}

#[test]
fn php_and_ours_over_tcp_with_a_password() {
    let Some(php) = php_with_redis() else { return };
    if !available() {
        return;
    }
    let server = Server::start(&["--requirepass", "s3cret"]);
    let url = server.tcp_url();
    let env = [("IPC_BROKER_PASSWORD", "s3cret")];
    let mut writer = php.command(
        "broker-writer.php",
        peer_args(&url, &["--int".into(), "42".into()]),
    );
    run("php writer", writer.envs(env), None).assert_success();
    let mut reader = common::ours(READER, &url, &["--format", "json"]);
    run("reader", reader.envs(env), None)
        .assert_success()
        .assert_stdout(b"42\n");
    let mut writer = common::ours(WRITER, &url, &["--float", "2.5"]);
    run("writer", writer.envs(env), None).assert_success();
    let mut reader = php.command("broker-reader.php", peer_args(&url, &[]));
    run("php reader", reader.envs(env), None)
        .assert_success()
        .assert_stdout(b"2.5\n");
}
