//! ipc-trace end to end: every example, ours–ours and with a PHP peer on either side, traced
//! through private endpoints (temp dirs, fresh key files, port 0). The assertions are
//! structural, so they hold while the examples change their syscalls: each side made the calls
//! its mechanism cannot do without, every transfer is linked to exactly one counterpart with the
//! same byte count, and the bytes add up to the message.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use ipc_testkit::php::Php;
use ipc_testkit::{Finished, run};
use serde_json::Value;
use wait_timeout::ChildExt;

const TRACE: &str = env!("CARGO_BIN_EXE_ipc-trace");
const MECHANISMS: [&str; 5] = ["dgram", "stream", "fifo", "shm", "mq"];

/// Our pair binaries next to ipc-trace, where it looks first. `cargo test --workspace` has
/// built them; `cargo test -p trace` alone has not, so they are built here once.
fn pair_binaries_built() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = Path::new(TRACE).parent().expect("target dir");
        let missing = [
            "dgram-reader",
            "stream-reader",
            "fifo-reader",
            "shm-reader",
            "mq-reader",
        ]
        .iter()
        .chain(&[
            "dgram-writer",
            "stream-writer",
            "fifo-writer",
            "shm-writer",
            "mq-writer",
        ])
        .any(|b| !dir.join(b).is_file());
        if missing {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut build = Command::new(cargo);
            build.arg("build").arg("--quiet");
            for m in MECHANISMS {
                build.args(["-p", m]);
            }
            // Bounded like every child of a test: a cold build of five crates takes minutes.
            let mut child = build
                .spawn()
                .expect("run cargo build for the pair binaries");
            let status = child
                .wait_timeout(Duration::from_secs(900))
                .expect("wait for cargo build");
            let Some(status) = status else {
                let _ = child.kill();
                let _ = child.wait();
                panic!("cargo build of the pair binaries took over 15 minutes");
            };
            assert!(status.success(), "cargo build of the pair binaries failed");
        }
    });
}

fn strace_present() -> bool {
    let found = trace::run::find_strace().is_some();
    if !found {
        let in_ci = std::env::var("CI").is_ok_and(|ci| !matches!(ci.as_str(), "" | "0" | "false"));
        assert!(
            !in_ci,
            "strace must be installed in CI (.ci/run installs it)"
        );
        println!("skipping: strace not installed (apt-get install strace)");
    }
    found
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Who {
    Ours,
    Php,
}

/// What a traced run left: ipc-trace's own result and its JSON.
struct Traced {
    finished: Finished,
    json: Value,
    svg: String,
}

fn trace(example: &str, endpoint: &str, reader: Who, writer: Who, dir: &Path) -> Traced {
    let json = dir.join("trace.json");
    let svg = dir.join("trace.svg");
    let who = |w| if w == Who::Php { "php" } else { "ours" };
    let mut command = ipc_testkit::ours(TRACE);
    command.args([
        example,
        "--endpoint",
        endpoint,
        "--reader",
        who(reader),
        "--writer",
        who(writer),
        "--timeout",
        "5",
        "--color",
        "never",
    ]);
    command.arg("--json").arg(&json).arg("--svg").arg(&svg);
    let finished = run(&format!("ipc-trace {example}"), &mut command, None);
    let json = std::fs::read_to_string(&json)
        .map(|t| serde_json::from_str(&t).expect("the JSON parses"))
        .unwrap_or(Value::Null);
    let svg = std::fs::read_to_string(&svg).unwrap_or_default();
    Traced {
        finished,
        json,
        svg,
    }
}

/// One call as the JSON has it.
#[derive(Debug)]
struct Slice {
    side: String,
    name: String,
    bytes: Option<u64>,
    links: Vec<u64>,
    cat: String,
}

fn slices(json: &Value) -> Vec<Slice> {
    let events = json["traceEvents"].as_array().expect("traceEvents");
    let mut side_of_pid = HashMap::new();
    for e in events
        .iter()
        .filter(|e| e["ph"] == "M" && e["name"] == "process_name")
    {
        let name = e["args"]["name"].as_str().unwrap_or("");
        side_of_pid.insert(
            e["pid"].as_u64(),
            name.split(':').next().unwrap_or("").to_string(),
        );
    }
    events
        .iter()
        .filter(|e| e["ph"] == "X")
        .map(|e| Slice {
            side: side_of_pid
                .get(&e["pid"].as_u64())
                .cloned()
                .unwrap_or_default(),
            name: e["name"].as_str().unwrap_or("").to_string(),
            bytes: e["args"]["bytes"].as_u64(),
            links: e["args"]["links"]
                .as_array()
                .map(|l| l.iter().filter_map(Value::as_u64).collect())
                .unwrap_or_default(),
            cat: e["cat"].as_str().unwrap_or("").to_string(),
        })
        .collect()
}

/// Checks that `side` made at least one call of each group (`"recvfrom|recvmsg|read"`).
#[track_caller]
fn made(calls: &[Slice], side: &str, groups: &[&str]) {
    for group in groups {
        let names: Vec<&str> = group.split('|').collect();
        assert!(
            calls
                .iter()
                .any(|c| c.side == side && names.contains(&c.name.as_str())),
            "the {side} made none of {group}; its calls: {:?}",
            calls
                .iter()
                .filter(|c| c.side == side)
                .map(|c| &c.name)
                .collect::<Vec<_>>()
        );
    }
}

/// Every transfer is linked to exactly one counterpart in the other process with the same byte
/// count, and the bytes from `from` to the other side add up to `expected`.
#[track_caller]
fn linked(t: &Traced, flows: &[(&str, u64)]) {
    let calls = slices(&t.json);
    let transfers: Vec<&Slice> = calls
        .iter()
        .filter(|c| (c.cat == "send" || c.cat == "recv") && c.bytes.is_some())
        .collect();
    let mut by_link: BTreeMap<u64, Vec<&Slice>> = BTreeMap::new();
    for c in &transfers {
        assert_eq!(
            c.links.len(),
            1,
            "{} {} is linked {} times: {c:?}",
            c.side,
            c.name,
            c.links.len()
        );
        by_link.entry(c.links[0]).or_default().push(c);
    }
    for (id, pair) in &by_link {
        assert_eq!(
            pair.len(),
            2,
            "link #{id} joins {} calls: {pair:?}",
            pair.len()
        );
        let (a, b) = (pair[0], pair[1]);
        assert_ne!(a.side, b.side, "link #{id} joins calls of one process");
        assert_ne!(
            a.cat, b.cat,
            "link #{id} does not join a send and a receive"
        );
        assert_eq!(
            a.bytes, b.bytes,
            "link #{id}: the byte counts differ: {a:?} {b:?}"
        );
    }
    for (from, expected) in flows {
        let sent: u64 = transfers
            .iter()
            .filter(|c| c.side == *from && c.cat == "send")
            .filter_map(|c| c.bytes)
            .sum();
        assert_eq!(sent, *expected, "bytes the {from} sent");
    }
    assert_eq!(by_link.len(), transfers.len() / 2);
    // The JSON's flow arrows: one start and one end per link, the same ids as the slices'.
    let events = t.json["traceEvents"].as_array().expect("traceEvents");
    let flow_ids = |ph: &str| {
        let mut ids: Vec<u64> = events
            .iter()
            .filter(|e| e["ph"] == ph)
            .filter_map(|e| e["id"].as_u64())
            .collect();
        ids.sort_unstable();
        ids
    };
    let ids: Vec<u64> = by_link.keys().copied().collect();
    assert_eq!(flow_ids("s"), ids, "flow starts");
    assert_eq!(flow_ids("f"), ids, "flow ends");
    // And the SVG draws an arrow labelled with each link's bytes.
    for (id, pair) in &by_link {
        let label = format!("#{id} {} B", pair[0].bytes.unwrap_or(0));
        assert!(t.svg.contains(&label), "the SVG lacks {label:?}");
    }
}

#[track_caller]
fn succeeded(t: &Traced) {
    let out = String::from_utf8_lossy(&t.finished.stdout);
    assert!(
        t.finished.status.success(),
        "ipc-trace failed ({}):\n{out}\nstderr: {}",
        t.finished.status,
        t.finished.stderr
    );
    assert!(
        out.contains("reader: exit 0") && out.contains("writer: exit 0"),
        "{out}"
    );
    // Readable at 100 columns: no line wider (box-drawing characters are one column each).
    let widest = out.lines().map(|l| l.chars().count()).max().unwrap_or(0);
    assert!(widest <= 100, "a line of {widest} columns:\n{out}");
    assert!(
        out.contains("slowed") || out.contains("stops both processes"),
        "no slowdown note: {out}"
    );
    assert!(
        t.svg.starts_with("<svg") && t.svg.trim_end().ends_with("</svg>"),
        "no SVG"
    );
}

fn endpoint(example: &str, dir: &Path) -> (String, Option<PathBuf>) {
    let path = |name: &str| dir.join(name).display().to_string();
    match example {
        "dgram-uds" => (format!("udg://{}", path("s.sock")), None),
        "dgram-udp" => ("udp://127.0.0.1:0".into(), None),
        "stream-uds" => (format!("unix://{}", path("s.sock")), None),
        "stream-tcp" => ("tcp://127.0.0.1:0".into(), None),
        "fifo" => (path("fifo"), None),
        _ => {
            let key = ipc_testkit::key_file(dir);
            (key.display().to_string(), Some(key))
        }
    }
}

/// Runs one example with the given peers and checks its trace.
fn check(example: &str, reader: Who, writer: Who) {
    if !strace_present() {
        return;
    }
    if (reader == Who::Php || writer == Who::Php) && Php::find().is_none() {
        return;
    }
    pair_binaries_built();
    let dir = ipc_testkit::temp_dir();
    let (at, key_file) = endpoint(example, dir.path());
    let t = trace(example, &at, reader, writer, dir.path());
    succeeded(&t);
    let calls = slices(&t.json);
    let recv = "recvfrom|recvmsg|recv|read|readv";
    let send = "sendto|sendmsg|send|write|writev";
    match example {
        "dgram-uds" | "dgram-udp" => {
            made(&calls, "reader", &["socket", "bind", recv]);
            made(&calls, "writer", &["socket", send]);
            let len = if example == "dgram-uds" { 37 } else { 36 };
            linked(&t, &[("writer", len)]);
        }
        "stream-uds" | "stream-tcp" => {
            made(
                &calls,
                "reader",
                &["socket", "bind", "listen", "accept|accept4", recv, send],
            );
            made(&calls, "writer", &["socket", "connect", send, recv]);
            let len = if example == "stream-uds" { 35 } else { 34 };
            linked(&t, &[("writer", len), ("reader", len)]);
        }
        "fifo" => {
            made(&calls, "reader", &["openat|open", "read"]);
            made(&calls, "writer", &["openat|open", "write"]);
            made(&calls, "reader", &["mknodat|mknod"]);
            linked(&t, &[("writer", 29)]);
        }
        "shm-sysv" | "shm-shmop" => {
            made(&calls, "reader", &["shmget", "shmat"]);
            made(&calls, "writer", &["shmget", "shmat"]);
            // Nothing moves through a system call: no link, and the pictures say so.
            linked(&t, &[]);
            let out = String::from_utf8_lossy(&t.finished.stdout);
            assert!(out.contains("no system call sees them"), "{out}");
            assert!(t.svg.contains("no system call sees them"));
        }
        "mq" => {
            made(&calls, "reader", &["msgget", "msgrcv"]);
            made(&calls, "writer", &["msgget", "msgsnd"]);
            // PHP's serialize() of the message: s:32:"Hello from Writer: Message Queue";
            linked(&t, &[("writer", 40)]);
        }
        other => panic!("no checks for {other}"),
    }
    if let Some(key_file) = key_file {
        ipc_testkit::assert_no_sysv_objects(&key_file, b'T');
    }
}

macro_rules! examples {
    ($($name:ident: $example:literal;)*) => {
        mod ours_ours {
            $(#[test] fn $name() { super::check($example, super::Who::Ours, super::Who::Ours); })*
        }
        mod php_reader {
            $(#[test] fn $name() { super::check($example, super::Who::Php, super::Who::Ours); })*
        }
        mod php_writer {
            $(#[test] fn $name() { super::check($example, super::Who::Ours, super::Who::Php); })*
        }
    };
}

examples! {
    dgram_uds: "dgram-uds";
    dgram_udp: "dgram-udp";
    stream_uds: "stream-uds";
    stream_tcp: "stream-tcp";
    fifo: "fifo";
    shm_sysv: "shm-sysv";
    shm_shmop: "shm-shmop";
    mq: "mq";
}

/// A reader whose writer never comes still leaves a trace that shows where it waited.
#[test]
fn a_pair_that_fails_shows_where_it_waited() {
    if !strace_present() {
        return;
    }
    pair_binaries_built();
    let dir = ipc_testkit::temp_dir();
    let json = dir.path().join("t.json");
    let reader_at = format!("udg://{}", dir.path().join("r.sock").display());
    let writer_at = format!("udg://{}", dir.path().join("elsewhere.sock").display());
    let mut command = ipc_testkit::ours(TRACE);
    command
        .args(["--color", "never", "--json"])
        .arg(&json)
        .args(["--", "dgram-reader", &reader_at, "--timeout", "1"])
        .args(["--", "dgram-writer", &writer_at, "--timeout", "1"]);
    let finished = run("ipc-trace failing pair", &mut command, None);
    let out = String::from_utf8_lossy(&finished.stdout);
    assert_eq!(
        finished.status.code(),
        Some(1),
        "{out}\n{}",
        finished.stderr
    );
    assert!(out.contains("reader: exit 124"), "{out}");
    assert!(out.contains("no transfer was linked"), "{out}");
    let value: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let waited = value["traceEvents"].as_array().unwrap().iter().any(|e| {
        e["ph"] == "X" && e["cat"] == "wait" && e["dur"].as_f64().unwrap_or(0.0) >= 500_000.0
    });
    assert!(waited, "no wait of the reader shown: {out}");
}

/// Without strace: one line naming the package, exit 2.
#[test]
fn missing_strace_is_one_clear_line() {
    let empty = ipc_testkit::temp_dir();
    let mut command = ipc_testkit::ours(TRACE);
    command.env("PATH", empty.path()).arg("dgram");
    let finished = run("ipc-trace without strace", &mut command, None);
    finished.assert_failure(2, "apt-get install strace");
    assert_eq!(
        finished.stderr.trim().lines().count(),
        1,
        "{}",
        finished.stderr
    );
    assert!(finished.stdout.is_empty());
}

#[test]
fn usage_errors_exit_2() {
    let mut command = ipc_testkit::ours(TRACE);
    command.args(["nope"]);
    let finished = run("ipc-trace nope", &mut command, None);
    if trace::run::find_strace().is_some() {
        finished.assert_failure(2, "no example \"nope\"");
    }
    let mut command = ipc_testkit::ours(TRACE);
    command.args(["fifo", "--endpoint", "udg:///tmp/x"]);
    let finished = run("ipc-trace fifo udg", &mut command, None);
    assert_eq!(finished.status.code(), Some(2));
}

/// A command strace cannot start is one error line, not an empty picture.
#[test]
fn a_command_that_cannot_start_is_one_error() {
    if !strace_present() {
        return;
    }
    let mut command = ipc_testkit::ours(TRACE);
    command.args(["--", "no-such-program-ipct", "--", "true"]);
    let finished = run("ipc-trace no-such-program", &mut command, None);
    finished.assert_failure(1, "could not trace no-such-program-ipct");
    assert_eq!(
        finished.stderr.trim().lines().count(),
        1,
        "{}",
        finished.stderr
    );
}

/// A width sizes the picture's lines: an absurd one is a usage error, not an allocation of
/// exabytes (it aborted, exit 134) or a picture that fills the memory.
#[test]
fn fault_absurd_width_is_a_usage_error_not_an_abort() {
    for width in ["18446744073709551615", "4294967296", "100001"] {
        let mut command = ipc_testkit::ours(TRACE);
        command.args(["--width", width, "fifo", "--endpoint", "/nonexistent/ipct"]);
        let finished = run("ipc-trace --width", &mut command, None);
        finished.assert_failure(2, "--width");
        assert!(
            !finished.stderr.contains("memory allocation"),
            "{finished:?}"
        );
    }
}

/// Whether process `pid` still runs (a zombie has ended; only its parent can reap it).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let state = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .next()?
                .to_owned();
            Some(state != "Z" && state != "X")
        })
        .unwrap_or(false)
}

/// SIGTERM mid-trace ends what ipc-trace started: both straces and the processes they trace
/// (strace leaves its tracees running when it dies), and its temp dir of trace files. It once
/// died at once and left all four processes running and the dir behind.
#[test]
fn fault_sigterm_mid_trace_ends_the_traced_pair_and_removes_the_temp_dir() {
    if !strace_present() {
        return;
    }
    let dir = ipc_testkit::temp_dir();
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let pid_file = |side: &str| dir.path().join(format!("{side}.pid"));
    let side = |side: &str, ready: &str| {
        let file = pid_file(side).display().to_string();
        format!("{ready}echo $$ > {file}.new && mv {file}.new {file} && exec sleep 60")
    };
    let mut command = ipc_testkit::ours(TRACE);
    command.env("TMPDIR", &tmp).args(["--timeout", "30", "--"]);
    command.args([
        "sh",
        "-c",
        &side("reader", "echo listening on x >&2; "),
        "--",
    ]);
    command.args(["sh", "-c", &side("writer", "")]);
    let trace = ipc_testkit::Proc::spawn("ipc-trace sleepers", &mut command);

    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let pids: Vec<i32> = ["reader", "writer"]
        .iter()
        .map(|side| {
            loop {
                if let Some(pid) = std::fs::read_to_string(pid_file(side))
                    .ok()
                    .and_then(|text| text.trim().parse().ok())
                {
                    break pid;
                }
                assert!(std::time::Instant::now() < deadline, "no {side} started");
                std::thread::sleep(Duration::from_millis(20));
            }
        })
        .collect();
    trace.signal(ipc_testkit::Signal::SIGTERM);
    let finished = trace.finish();

    let left: Vec<i32> = pids.iter().copied().filter(|&pid| alive(pid)).collect();
    for &pid in &left {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
    }
    assert_eq!(finished.status.code(), Some(143), "{finished:?}");
    assert!(left.is_empty(), "traced processes left running: {left:?}");
    let files: Vec<_> = std::fs::read_dir(&tmp)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(files.is_empty(), "left in TMPDIR: {files:?}");
}

/// `ipc-trace ARGS` with its stdout and stderr redirected by the shell as `redirect` says (the
/// harness would pipe them).
fn trace_redirected(redirect: &str, args: &[&str]) -> Finished {
    let mut command = ipc_testkit::ours("/bin/sh");
    let script = format!("exec \"$0\" \"$@\" {redirect}");
    command.args(["-c", &script, TRACE]).args(args);
    run(&format!("ipc-trace {redirect}"), &mut command, None)
}

/// The picture is the payload: a stdout that fails (a full disk) is an error, not exit 0 with
/// the picture lost (a reader that went away, `| head`, stays no error).
#[test]
fn fault_stdout_full_is_an_error_not_a_silent_success() {
    if !strace_present() || !Path::new("/dev/full").exists() {
        return;
    }
    let dir = ipc_testkit::temp_dir();
    let fifo = dir.path().join("f");
    let done = trace_redirected(
        ">/dev/full",
        &["fifo", "--endpoint", fifo.to_str().unwrap()],
    );
    done.assert_failure(1, "stdout");
}

/// An error line that cannot be written (stderr on a full disk or a closed pipe) is dropped:
/// the exit code still tells, never a panic in `eprintln!` (exit 101).
#[test]
fn fault_stderr_full_keeps_the_exit_code_not_a_panic() {
    if !strace_present() || !Path::new("/dev/full").exists() {
        return;
    }
    let done = trace_redirected("2>/dev/full", &["nope"]);
    assert_eq!(done.status.code(), Some(2), "{done:?}");
    let done = trace_redirected(
        "2>/dev/full",
        &["--svg", "/nonexistent/x.svg", "--", "true", "--", "true"],
    );
    assert_eq!(done.status.code(), Some(1), "{done:?}");
}

/// The pair's binaries take --timeout up to 1e9 seconds: a larger one is ipc-trace's own usage
/// error, not a run whose two sides both fail on it and whose last words are clap's
/// "For more information, try '--help'.".
#[test]
fn a_timeout_the_pair_would_refuse_is_a_usage_error() {
    let mut command = ipc_testkit::ours(TRACE);
    command.args(["--timeout", "18446744073709551615", "fifo"]);
    command.args(["--endpoint", "/nonexistent/ipct"]);
    run("ipc-trace --timeout huge", &mut command, None).assert_failure(2, "--timeout");
}

/// `--raw DIR` that holds an earlier run's trace files is refused: they were read as this run's
/// (transfers of the earlier run in the picture, exit 0), and at the time limit or a stop
/// signal the thread ids they name, long gone and perhaps reused by anyone's process, were sent
/// SIGKILL.
#[test]
fn fault_raw_dir_with_an_earlier_runs_trace_files_is_refused() {
    if !strace_present() {
        return;
    }
    let dir = ipc_testkit::temp_dir();
    let raw = dir.path().join("raw");
    std::fs::create_dir(&raw).unwrap();
    std::fs::write(raw.join("reader.1"), "1.0 exit_group(0) = ?\n").unwrap();
    let fifo = dir.path().join("f");
    let mut command = ipc_testkit::ours(TRACE);
    command.args(["--raw", raw.to_str().unwrap(), "fifo", "--endpoint"]);
    command.arg(&fifo);
    run("ipc-trace --raw used", &mut command, None).assert_failure(1, "earlier run");
    assert_eq!(
        std::fs::read_to_string(raw.join("reader.1")).unwrap(),
        "1.0 exit_group(0) = ?\n"
    );
    assert!(!fifo.exists(), "the pair ran anyway");
}
