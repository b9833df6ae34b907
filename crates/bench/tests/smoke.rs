//! Smoke runs of the real `ipc-bench` binary with tiny budgets: every mechanism measures, the
//! report and the three output files come out, nothing is left behind. Numbers are printed,
//! never asserted (this machine is shared and CI machines are slower).

use std::path::Path;
use std::process::Command;

use ipc_testkit::{run, temp_dir};

fn bench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ipc-bench"))
}

/// Runs ipc-bench to its end and checks what every run must do: exit 0, a report (printed for
/// the log) with each of `sections`, no SysV object left behind, and its private directory gone.
/// The run, for the caller's own checks.
fn report_with(command: &mut Command, sections: &[&str]) -> (ipc_testkit::Finished, String) {
    let proc = ipc_testkit::Proc::spawn("ipc-bench", command);
    let pid = proc.pid();
    let done = proc.finish();
    done.assert_success();
    let stdout = String::from_utf8_lossy(&done.stdout).into_owned();
    println!("{stdout}");
    for section in sections {
        assert!(stdout.contains(section), "no {section:?} in the report");
    }
    let left = sysv_objects_of(pid);
    assert!(left.is_empty(), "SysV objects left behind: {left:#?}");
    if let Some(private) = private_dir(&done) {
        assert!(!Path::new(private).exists(), "{private} was left behind");
    }
    (done, stdout)
}

/// The run's private directory, as its progress names it.
fn private_dir(done: &ipc_testkit::Finished) -> Option<&str> {
    done.stderr
        .lines()
        .find_map(|line| line.strip_prefix("socket files and FIFOs go to "))
}

/// SysV objects in `/proc/sysvipc/{shm,msg}` that process `pid` created (shm) or used last
/// (queues record only the last sender and receiver).
fn sysv_objects_of(pid: u32) -> Vec<String> {
    let mut found = Vec::new();
    for (kind, columns) in [("shm", &[4, 5][..]), ("msg", &[5, 6][..])] {
        let table = std::fs::read_to_string(format!("/proc/sysvipc/{kind}")).unwrap_or_default();
        for line in table.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if columns
                .iter()
                .any(|&c| fields.get(c) == Some(&pid.to_string().as_str()))
            {
                found.push(format!("{kind}: {line}"));
            }
        }
    }
    found
}

#[test]
fn every_mechanism_measures_and_writes_the_report_and_files() {
    let dir = temp_dir();
    let (json, csv, svg) = (
        dir.path().join("b.json"),
        dir.path().join("b.csv"),
        dir.path().join("b.svg"),
    );
    let mut command = bench();
    command
        .args([
            "--quick",
            "--reps",
            "1",
            "--budget-ms",
            "25",
            "--no-sweep",
            "--timeout",
            "10",
        ])
        .args(["--only", "udg,udp,unix,tcp,fifo,mq,shm,shm-spin,futex,spin"])
        .arg("--json")
        .arg(&json)
        .arg("--csv")
        .arg(&csv)
        .arg("--plot")
        .arg(&svg);
    let (done, stdout) = report_with(
        &mut command,
        &[
            "Round trip (ping-pong)",
            "One-way throughput",
            "The blog's claims",
            "Targets:",
        ],
    );
    for mech in [
        "UDS datagram",
        "UDP",
        "UDS stream",
        "TCP",
        "FIFO pair",
        "SysV queue",
        "shm ring (futex)",
        "shm ring (spin)",
    ] {
        assert!(stdout.contains(mech), "no {mech} row in the report");
    }

    // 8 mechanisms x ours and raw x round trip and throughput x 3 sizes, and the 2 floors.
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(
        report["records"].as_array().unwrap().len(),
        8 * 2 * 2 * 3 + 2
    );
    let rows = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(rows.lines().count(), 1 + 8 * 2 * 2 * 3 + 2, "{rows}");
    assert!(std::fs::read_to_string(&svg).unwrap().starts_with("<svg"));

    assert!(
        private_dir(&done).is_some(),
        "the run names its private directory"
    );
}

#[test]
fn zero_copy_wake_ups_open_loop_and_a_4_mib_message_measure() {
    let dir = temp_dir();
    let (json, svg) = (dir.path().join("b.json"), dir.path().join("b.svg"));
    let mut command = bench();
    command
        .args([
            "--quick",
            "--reps",
            "1",
            "--budget-ms",
            "20",
            "--timeout",
            "20",
        ])
        .args(["--only", "shm-zc,shm-spin,mq,spin,futex,eventfd,sem"])
        .args(["--kinds", "latency,open", "--rate", "2000"])
        .args(["--sizes", "64,4194304"])
        .arg("--json")
        .arg(&json)
        .arg("--plot")
        .arg(&svg);
    report_with(
        &mut command,
        &[
            "Wake-up matrix",
            "Open loop",
            "shm ring zero-copy",
            "SysV semaphore",
        ],
    );
    // Round trips: shm-zc (ours) and shm-spin, mq (ours and raw) at 2 sizes; 4 wake-ups; the
    // open loop at 64 B for the 3 mechanisms.
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let records = report["records"].as_array().unwrap();
    assert_eq!(records.len(), 2 + 2 * 2 * 2 + 4 + 3, "{records:#?}");
    for rec in records {
        if rec["kind"] == "open" {
            assert!(rec["open_p99_us"].as_f64().is_some(), "{rec}");
        }
        if rec["kind"] == "latency" {
            assert!(rec["batch_rtt_us"].as_f64().is_some(), "{rec}");
            assert!(rec["peer_cpu_us_per_msg"].as_f64().is_some(), "{rec}");
        }
    }
    for mech in ["shm-zc", "shm-spin", "mq"] {
        let chart = dir.path().join(format!("b-open-{mech}.svg"));
        assert!(
            std::fs::read_to_string(&chart).unwrap().starts_with("<svg"),
            "{}",
            chart.display()
        );
    }
}

#[test]
fn one_core_for_both_skips_the_spinning_variants() {
    let done = run(
        "ipc-bench --pin same",
        bench().args([
            "--quick",
            "--reps",
            "1",
            "--budget-ms",
            "25",
            "--pin",
            "same",
            "--kinds",
            "latency",
            "--only",
            "shm,shm-spin,spin",
            "--timeout",
            "10",
        ]),
        None,
    );
    done.assert_success();
    let stdout = String::from_utf8_lossy(&done.stdout);
    println!("{stdout}");
    assert!(stdout.contains("shm ring (futex)"));
    assert!(
        !stdout
            .lines()
            .any(|line| line.starts_with("shm ring (spin)")),
        "a spinning variant ran on one core"
    );
    assert!(stdout.contains(
        "spinning variants (shm-spin, shm-zc, iceoryx2, the cache-line floor) were skipped"
    ));
}

#[test]
fn bad_options_are_usage_errors_and_the_peer_is_hidden() {
    for args in [
        &["--pin", "both"][..],
        &["--ring-bytes", "1000"],
        &["--only", "carrier-pigeon"],
        &["--reps", "0"],
    ] {
        let done = run("ipc-bench with a bad option", bench().args(args), None);
        assert_eq!(done.status.code(), Some(2), "{args:?}: {done:?}");
    }
    let help = run("ipc-bench --help", bench().arg("--help"), None);
    help.assert_success();
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("--pin") && text.contains("--quick"));
    assert!(
        !text.contains("Commands:"),
        "the peer subcommand shows in --help:\n{text}"
    );
}

/// Whether `redis-server` is on `PATH` (the Redis rows run only then); `false` after the visible
/// skip line, a panic in CI, where `.ci/run` installs it.
fn redis_installed() -> bool {
    let found = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| dir.join("redis-server").is_file())
    });
    if found {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("the Redis rows must run in CI (CI is set): redis-server is not on PATH");
    }
    ipc_testkit::skipped(
        "skipping ipc-bench's Redis rows: redis-server not installed (apt-get install -y redis-server)",
    );
    false
}

/// Processes whose command line mentions `text` (a redis-server started with `--dir` in it).
fn processes_mentioning(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let line = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if line.contains(text) {
                found.push(format!("{}: {line}", entry.file_name().to_string_lossy()));
            }
        }
    }
    found
}

#[test]
fn redis_rows_measure_beside_the_queue_and_leave_no_server_behind() {
    if !redis_installed() {
        return;
    }
    let dir = temp_dir();
    let json = dir.path().join("b.json");
    let mut command = bench();
    command
        .args(["--quick", "--reps", "1", "--budget-ms", "20", "--no-sweep"])
        .args(["--only", "mq,redis-unix,redis-tcp", "--timeout", "20"])
        .arg("--json")
        .arg(&json);
    let (done, _) = report_with(
        &mut command,
        &[
            "Redis Streams, UDS",
            "Redis Streams, TCP",
            "Redis Streams beside the SysV queue",
        ],
    );
    // mq: ours and raw; the two Redis rows: ours; round trip and throughput at 3 sizes.
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(
        report["records"].as_array().unwrap().len(),
        (2 + 1 + 1) * 2 * 3
    );

    let private = private_dir(&done).expect("the run names its private directory");
    let servers = processes_mentioning(private);
    assert!(
        servers.is_empty(),
        "redis-server left running: {servers:#?}"
    );
}

#[test]
fn without_redis_server_the_redis_rows_skip_with_a_note() {
    let empty = temp_dir();
    let done = run(
        "ipc-bench without redis-server",
        bench()
            .env("PATH", empty.path())
            .args(["--quick", "--reps", "1", "--budget-ms", "10", "--kinds"])
            .args([
                "latency",
                "--sizes",
                "64",
                "--only",
                "mq,redis-unix,redis-tcp",
            ]),
        None,
    );
    done.assert_success();
    let stdout = String::from_utf8_lossy(&done.stdout);
    println!("{stdout}");
    assert!(stdout.contains("SysV queue"));
    assert!(!stdout.contains("Redis Streams, "), "a Redis row ran");
    assert!(
        stdout.contains("redis-unix, redis-tcp not measured: `redis-server` is not installed"),
        "no skip note"
    );
}

/// The smallest run that still prints a report, its stdout redirected by the shell
/// (`redirect`, e.g. `>&-`): the test harness would otherwise pipe it.
fn tiny_run_into(redirect: &str) -> Command {
    let mut command = Command::new("/bin/sh");
    let script = format!("exec \"$0\" \"$@\" {redirect}");
    command.args(["-c", &script, env!("CARGO_BIN_EXE_ipc-bench")]);
    command.args([
        "--quick",
        "--reps",
        "1",
        "--only",
        "udg",
        "--kinds",
        "latency",
        "--sizes",
        "64",
        "--impl",
        "raw",
        "--no-sweep",
        "--no-tools",
        "--timeout",
        "5",
    ]);
    command
}

/// A report that cannot be written is a one-line error, exit 1: it once panicked in `print!`
/// (exit 101 and a backtrace) with stdout on a full disk.
#[test]
fn fault_stdout_full_is_an_error_not_a_panic() {
    if !Path::new("/dev/full").exists() {
        ipc_testkit::skipped("skipping: no /dev/full to write the report to");
        return;
    }
    let done = run(
        "ipc-bench >/dev/full",
        &mut tiny_run_into(">/dev/full"),
        None,
    );
    done.assert_failure(1, "stdout");
    assert!(!done.stderr.contains("panicked"), "{done:?}");
}

/// Started with stdout closed, the report would go to the /dev/null Rust's runtime puts on fd 1,
/// and the run would exit 0 having shown nobody anything: it refuses before measuring.
#[test]
fn fault_stdout_closed_is_refused_before_measuring() {
    let done = run("ipc-bench >&-", &mut tiny_run_into(">&-"), None);
    done.assert_failure(1, "stdout is closed");
    assert!(!done.stderr.contains("rep 1:"), "measured anyway: {done:?}");
}

/// The children of process `pid`'s main thread.
fn children_of(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|child| child.parse().ok())
        .collect()
}

/// Whether process `pid` still runs (a zombie has ended).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            Some(!matches!(
                stat.rsplit_once(')')?.1.split_whitespace().next()?,
                "Z" | "X"
            ))
        })
        .unwrap_or(false)
}

/// SIGKILL of the bench (no chance to clean up) ends its peer too: with `--timeout 0` the peer
/// once waited forever for a partner that was gone, an orphan holding its SysV objects.
#[test]
fn fault_sigkill_of_the_bench_ends_its_peer() {
    let dir = temp_dir();
    let mut command = bench();
    command.env("TMPDIR", dir.path()).args([
        "--quick",
        "--reps",
        "1000",
        "--only",
        "mq",
        "--kinds",
        "latency",
        "--sizes",
        "64",
        "--impl",
        "raw",
        "--no-sweep",
        "--no-tools",
        "--timeout",
        "0",
    ]);
    let proc = ipc_testkit::Proc::spawn("ipc-bench --timeout 0", &mut command);
    let pid = proc.pid();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let peer = loop {
        let peer = children_of(pid).into_iter().find(|&child| {
            std::fs::read(format!("/proc/{child}/cmdline"))
                .is_ok_and(|cmdline| cmdline.windows(6).any(|w| w == b"\0peer\0"))
        });
        // Killed only once the peer has used the queue: a queue nobody has sent to or received
        // from names no pid in /proc/sysvipc/msg (it has no creator column), and could not be
        // told from another's and removed below.
        if let Some(peer) = peer.filter(|&peer| !sysv_objects_of(peer).is_empty()) {
            break peer;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no peer started measuring"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    proc.signal(ipc_testkit::Signal::SIGKILL);
    let done = proc.finish();
    // SIGKILL left the private directory (documented: only SIGKILL does): remove it.
    if let Some(private) = private_dir(&done) {
        let _ = std::fs::remove_dir_all(private);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while running(peer) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let orphan = running(peer);
    if orphan {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(peer as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    // SIGKILL left the bench's SysV objects (documented: only SIGKILL does): remove them.
    for (kind, flag) in [("msg", "-q"), ("shm", "-m")] {
        for object in sysv_objects_of(pid)
            .into_iter()
            .chain(sysv_objects_of(peer))
        {
            if let Some(id) = object
                .strip_prefix(&format!("{kind}: "))
                .and_then(|line| line.split_whitespace().nth(1))
            {
                let _ = Command::new("ipcrm").args([flag, id]).status();
            }
        }
    }
    assert!(!orphan, "the peer {peer} outlived the bench");
}

/// Measurements that fail (a timeout far too short) are warned about on stderr; a stderr that
/// fails drops the warnings, the exit code still tells (124), never a panic in `eprintln!`
/// (exit 101).
#[test]
fn fault_stderr_full_with_failed_measurements_keeps_the_exit_code() {
    if !Path::new("/dev/full").exists() {
        ipc_testkit::skipped("skipping: no /dev/full to write the warnings to");
        return;
    }
    let mut command = Command::new("/bin/sh");
    command.args(["-c", "exec \"$0\" \"$@\" >/dev/null 2>/dev/full"]);
    command.arg(env!("CARGO_BIN_EXE_ipc-bench")).args([
        "--quick",
        "--reps",
        "1",
        "--only",
        "udg",
        "--kinds",
        "latency",
        "--sizes",
        "64",
        "--no-sweep",
        "--no-tools",
        "--timeout",
        "0.000001",
    ]);
    let done = run("ipc-bench 2>/dev/full", &mut command, None);
    assert_eq!(done.status.code(), Some(124), "{done:?}");
}

#[test]
fn a_run_that_measures_nothing_fails_saying_so() {
    let done = run(
        "ipc-bench with nothing to measure",
        bench().args([
            "--quick", "--reps", "1", "--only", "futex", "--kinds", "open",
        ]),
        None,
    );
    done.assert_failure(1, "nothing was measured");
}
