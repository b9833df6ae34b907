//! Across hosts, simulated: two network namespaces the test makes, joined by a veth pair with
//! addresses of their own (10.77.N.1/30 and .2/30), Redis in one (listening on its veth address,
//! with a password), the writer in the other, the reader in either. The namespaces (and the veth
//! pair with them) are deleted at the end, also when the test fails. Skipped (one line) where
//! network namespaces cannot be made (not root).

mod common;

use std::process::Command;

use common::{PRINTED, READER, Server, WRITER, available};
use ipc_testkit::run;

/// Two namespaces joined by a veth pair; deleted on drop.
struct Hosts {
    names: [String; 2],
}

impl Hosts {
    fn make(tag: &str) -> Option<Hosts> {
        let names = [format!("ipcb-{tag}-a"), format!("ipcb-{tag}-b")];
        if !ip(&["netns", "add", &names[0]]) {
            return None;
        }
        let hosts = Hosts { names };
        let [a, b] = &hosts.names;
        let (va, vb) = (format!("ib{tag}a"), format!("ib{tag}b"));
        assert!(ip(&["netns", "add", b]), "ip netns add {b}");
        assert!(ip(&[
            "link", "add", &va, "netns", a, "type", "veth", "peer", "name", &vb, "netns", b
        ]));
        for (ns, dev, addr) in [(a, &va, "10.77.0.1/30"), (b, &vb, "10.77.0.2/30")] {
            assert!(ip(&["-n", ns, "addr", "add", addr, "dev", dev]));
            assert!(ip(&["-n", ns, "link", "set", dev, "up"]));
            assert!(ip(&["-n", ns, "link", "set", "lo", "up"]));
        }
        Some(hosts)
    }

    /// `ip netns exec NAME`, to put before a command.
    fn exec(&self, which: usize) -> Vec<String> {
        ["ip", "netns", "exec", &self.names[which]]
            .map(String::from)
            .to_vec()
    }

    fn run_in(&self, which: usize, binary: &str, args: &[&str]) -> ipc_testkit::Finished {
        let prefix = self.exec(which);
        let mut command = ipc_testkit::ours(&prefix[0]);
        command
            .args(&prefix[1..])
            .arg(binary)
            .args(["--timeout", "10"])
            .args(args);
        command
            .env("IPC_BROKER_PASSWORD", "across")
            .env_remove("REDISCLI_AUTH");
        run(binary, &mut command, None)
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for name in &self.names {
            ip(&["netns", "delete", name]);
        }
    }
}

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn writer_and_reader_in_other_namespaces_than_redis() {
    if !available() {
        return;
    }
    let tag = format!("{}", std::process::id() % 100_000);
    let Some(hosts) = Hosts::make(&tag) else {
        ipc_testkit::skipped(
            "skipping the cross-namespace Redis test: cannot add a network namespace here (needs root)",
        );
        return;
    };
    // Redis in namespace a, on its veth address only; the Unix socket is only the test's way to
    // see it is ready.
    let mut server = Server::new(&[
        "--bind",
        "10.77.0.1",
        "--port",
        "6379",
        "--requirepass",
        "across",
    ]);
    server.prefix = hosts.exec(0);
    server.launch();
    let url = "redis://10.77.0.1:6379";
    // The writer in b, the reader in b, then in a (beside Redis).
    hosts.run_in(1, WRITER, &["--url", url]).assert_success();
    hosts
        .run_in(1, READER, &["--url", url])
        .assert_success()
        .assert_stdout(PRINTED);
    hosts
        .run_in(1, WRITER, &["--url", url, "-m", "from b to a"])
        .assert_success();
    hosts
        .run_in(0, READER, &["--url", url])
        .assert_success()
        .assert_stdout(b"from b to a\n");
    // Redis stops before its namespace goes.
    drop(server);
}
