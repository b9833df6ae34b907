//! A private network namespace for one test, so multicast and broadcast never touch the
//! host's interfaces: `unshare --net` starts a holder (`sleep`, killed when the test drops it)
//! that sets up a veth pair of its own (v0: 10.77.0.1/24, fd77::1/64; v1 its unaddressed peer,
//! also in the namespace), a multicast route and a default route, both through v0. Every
//! process of the test enters it with `nsenter --net=/proc/PID/ns/net`; the namespace dies with
//! its last process, nothing is left behind (no `/run/netns` entry).
//!
//! Without `unshare`/`nsenter`/`ip` or the right to create a namespace (not root), the test
//! skips with one visible line ([`ipc_testkit::skipped`]); with `CI` set it fails.

use std::process::{Command, Stdio};

use ipc_testkit::Proc;

/// The holder's setup, in the new namespace.
const SETUP: &str = "ip link set lo up \
    && ip link add v0 type veth peer name v1 \
    && ip addr add 10.77.0.1/24 broadcast 10.77.0.255 dev v0 \
    && ip -6 addr add fd77::1/64 dev v0 nodad \
    && ip link set v0 up && ip link set v1 up \
    && ip route add 224.0.0.0/4 dev v0 \
    && ip route add default dev v0";

pub(crate) const SKIP_LINE: &str = "SKIPPED: multicast/broadcast tests need a private network \
namespace (unshare --net, nsenter, ip, as root); none could be made here";

/// The namespace, alive while this value is.
pub(crate) struct Netns {
    _holder: Proc,
    net: String,
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|ci| !matches!(ci.as_str(), "" | "0" | "false"))
}

impl Netns {
    /// A new namespace, or `None` after the skip line.
    #[track_caller]
    pub(crate) fn create() -> Option<Netns> {
        let probe = Command::new("unshare")
            .args(["--net", "--", "nsenter", "--version"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let ip = Command::new("ip").arg("-V").stdout(Stdio::null()).status();
        if !matches!((probe, ip), (Ok(p), Ok(i)) if p.success() && i.success()) {
            assert!(!in_ci(), "{SKIP_LINE} (CI is set: this must run)");
            ipc_testkit::skipped(SKIP_LINE);
            return None;
        }
        let mut command = Command::new("unshare");
        command.args([
            "--net",
            "--",
            "sh",
            "-c",
            &format!("{SETUP} && echo netns-ready >&2 && exec sleep 120"),
        ]);
        let mut holder = Proc::spawn("netns holder", &mut command);
        holder.wait_for_stderr("netns-ready");
        let net = format!("--net=/proc/{}/ns/net", holder.pid());
        Some(Netns {
            _holder: holder,
            net,
        })
    }

    /// `inner` (program, arguments, environment) run inside the namespace.
    pub(crate) fn wrap(&self, inner: &Command) -> Command {
        let mut command = Command::new("nsenter");
        command
            .arg(&self.net)
            .arg("--")
            .arg(inner.get_program())
            .args(inner.get_args());
        for (name, value) in inner.get_envs() {
            match value {
                Some(value) => command.env(name, value),
                None => command.env_remove(name),
            };
        }
        if let Some(dir) = inner.get_current_dir() {
            command.current_dir(dir);
        }
        command
    }
}
