//! The standard tools, when installed, measured in the same run for comparison: `iperf3` (TCP
//! throughput), `sockperf` (TCP and UDP ping-pong), `perf bench sched pipe` (pipe round trip)
//! and `perf bench mem memcpy`. None is required: a missing or failing tool is skipped with a
//! note. Each server is started first and its readiness line awaited before the client starts.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use crate::progress;
use anyhow::{Context, bail};
use ipc_common::runtime::wait::Deadline;

use crate::plan::Pin;

/// One figure from a tool, in the unit of the figure it is compared with.
#[derive(Clone, Debug)]
pub struct ToolFigure {
    /// `iperf3`, `sockperf`, ...
    pub tool: &'static str,
    /// What it measured ("TCP 64 KiB throughput").
    pub what: String,
    /// The value, in µs (round trips) or GB/s (throughput).
    pub value: f64,
    pub unit: &'static str,
}

/// How long each tool runs.
#[derive(Clone, Copy, Debug)]
pub struct ToolBudget {
    pub secs: u32,
    pub pipe_loops: u32,
    pub memcpy_loops: u32,
}

/// Runs every installed tool; failures become notes.
pub fn run_all(
    budget: ToolBudget,
    pin: Pin,
    sizes: &[usize],
    notes: &mut Vec<String>,
) -> Vec<ToolFigure> {
    let mut figures = Vec::new();
    let mut attempt = |name: &str, result: anyhow::Result<Vec<ToolFigure>>| match result {
        Ok(found) => figures.extend(found),
        Err(err) => notes.push(format!("{name} skipped: {err:#}")),
    };
    attempt("iperf3", iperf3(budget, pin));
    attempt("sockperf (TCP)", sockperf(budget, pin, true));
    attempt("sockperf (UDP)", sockperf(budget, pin, false));
    attempt("perf bench sched pipe", perf_pipe(budget, pin));
    attempt("perf bench mem memcpy", perf_memcpy(budget, pin, sizes));
    figures
}

fn installed(tool: &str) -> anyhow::Result<()> {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()));
    if !found {
        bail!("`{tool}` is not installed");
    }
    Ok(())
}

/// `taskset -c CPU tool ...` when pinned, else the tool alone. Our own process is pinned to
/// CPU 0 in the pinned modes and children inherit that, so an unpinned tool is spread over
/// both CPUs explicitly.
fn command(tool: &str, cpu: Option<usize>) -> Command {
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online")
        .map_or("0".into(), |cpus| cpus.trim().to_string());
    let mut command = Command::new("taskset");
    command
        .arg("-c")
        .arg(cpu.map_or(online, |cpu| cpu.to_string()))
        .arg(tool);
    command
}

/// A server process whose output is read line by line; killed when dropped.
struct Server {
    child: Child,
    lines: Receiver<String>,
    name: &'static str,
}

impl Server {
    fn start(name: &'static str, mut command: Command) -> anyhow::Result<Server> {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("start the {name} server"))?;
        let (tx, lines) = mpsc::channel();
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Ok(Server { child, lines, name })
    }

    /// Waits (up to 10 s) for an output line containing `needle`: the server is ready.
    fn ready(&self, needle: &str) -> anyhow::Result<()> {
        let deadline = Deadline::after(ipc_common::runtime::wait::Timeout::from_duration(
            Duration::from_secs(10),
        ));
        loop {
            let left = deadline.remaining().unwrap_or_default();
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return Ok(()),
                Ok(_) => {}
                Err(_) => bail!("the {} server never said {needle:?}", self.name),
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a client to completion (bounded) and returns its stdout and stderr together.
fn client(name: &str, mut command: Command, limit: Duration) -> anyhow::Result<String> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("start {name}"))?;
    let (tx, done) = mpsc::channel();
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let watchdog = std::thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = done.recv_timeout(limit) {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        }
    });
    let mut out = String::new();
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            out.push_str(&line);
            out.push('\n');
        }
    }
    if let Some(stderr) = child.stderr.take() {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            out.push_str(&line);
            out.push('\n');
        }
    }
    let status = child.wait().with_context(|| format!("wait for {name}"))?;
    let _ = tx.send(());
    let _ = watchdog.join();
    if !status.success() {
        let last = out
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        bail!("{name} failed ({status}): {last}");
    }
    Ok(out)
}

fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("find a free port")?;
    Ok(listener.local_addr()?.port())
}

fn iperf3(budget: ToolBudget, pin: Pin) -> anyhow::Result<Vec<ToolFigure>> {
    installed("iperf3")?;
    let (client_cpu, server_cpu) = pin.cpus();
    let port = free_port()?.to_string();
    let mut server = command("iperf3", server_cpu);
    // --forceflush: its stdout is a pipe, and the readiness line must not wait in a buffer.
    server.args(["-s", "-1", "--forceflush", "-B", "127.0.0.1", "-p", &port]);
    let server = Server::start("iperf3", server)?;
    server.ready("Server listening")?;
    progress!("iperf3: TCP, 64 KiB writes, {} s", budget.secs);
    let mut run = command("iperf3", client_cpu);
    run.args(["-c", "127.0.0.1", "-p", &port, "-l", "64K", "-J", "-t"])
        .arg(budget.secs.to_string());
    let out = client(
        "iperf3",
        run,
        Duration::from_secs(u64::from(budget.secs) + 20),
    )?;
    let json: serde_json::Value = serde_json::from_str(&out).context("parse iperf3 -J")?;
    let bits = json["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .context("iperf3 -J has no end.sum_received.bits_per_second")?;
    Ok(vec![ToolFigure {
        tool: "iperf3",
        what: "TCP 64 KiB throughput".into(),
        value: bits / 8.0 / 1e9,
        unit: "GB/s",
    }])
}

fn sockperf(budget: ToolBudget, pin: Pin, tcp: bool) -> anyhow::Result<Vec<ToolFigure>> {
    installed("sockperf")?;
    let (client_cpu, server_cpu) = pin.cpus();
    let port = free_port()?.to_string();
    let proto = if tcp { "TCP" } else { "UDP" };
    let mut server = command("sockperf", server_cpu);
    server.args(["server", "-i", "127.0.0.1", "-p", &port]);
    if tcp {
        server.arg("--tcp");
    }
    let server = Server::start("sockperf", server)?;
    server.ready("IP = 127.0.0.1")?;
    progress!("sockperf: {proto} ping-pong, 64 B, {} s", budget.secs);
    let mut run = command("sockperf", client_cpu);
    run.args([
        "ping-pong",
        "-i",
        "127.0.0.1",
        "-p",
        &port,
        "-m",
        "64",
        "-t",
    ])
    .arg(budget.secs.to_string());
    if tcp {
        run.arg("--tcp");
    }
    let out = client(
        "sockperf",
        run,
        Duration::from_secs(u64::from(budget.secs) + 20),
    )?;
    // sockperf reports half the round trip ("latency"); ours are whole round trips.
    let half = out
        .lines()
        .find_map(|line| line.split("percentile 50.000 =").nth(1))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .context("no median (percentile 50.000) in sockperf's output")?;
    Ok(vec![ToolFigure {
        tool: "sockperf",
        what: format!("{proto} 64 B round trip (2 x its median latency)"),
        value: 2.0 * half,
        unit: "us",
    }])
}

fn perf_pipe(budget: ToolBudget, pin: Pin) -> anyhow::Result<Vec<ToolFigure>> {
    installed("perf")?;
    // perf forks its two processes itself: pinned to one CPU, or left to the scheduler.
    let cpu = match pin {
        Pin::Same => Some(0),
        Pin::None | Pin::Split => None,
    };
    progress!("perf bench sched pipe: {} round trips", budget.pipe_loops);
    let mut run = command("perf", cpu);
    run.args(["bench", "sched", "pipe", "-l"])
        .arg(budget.pipe_loops.to_string());
    let out = client("perf bench sched pipe", run, Duration::from_secs(60))?;
    let usecs = out
        .lines()
        .find(|line| line.contains("usecs/op"))
        .and_then(|line| line.split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok())
        .context("no usecs/op in perf bench sched pipe's output")?;
    Ok(vec![ToolFigure {
        tool: "perf bench sched pipe",
        what: match cpu {
            Some(_) => "pipe round trip (4 B, both on CPU 0)".into(),
            None => "pipe round trip (4 B, perf's processes unpinned)".into(),
        },
        value: usecs,
        unit: "us",
    }])
}

fn perf_memcpy(budget: ToolBudget, pin: Pin, sizes: &[usize]) -> anyhow::Result<Vec<ToolFigure>> {
    installed("perf")?;
    let (cpu, _) = pin.cpus();
    let mut figures = Vec::new();
    for &size in sizes {
        progress!("perf bench mem memcpy: {size} B");
        let mut run = command("perf", cpu);
        run.args(["bench", "mem", "memcpy", "-f", "default", "-s"])
            .arg(format!("{size}B"))
            .arg("-l")
            .arg(budget.memcpy_loops.to_string());
        let out = client("perf bench mem memcpy", run, Duration::from_secs(60))?;
        let gbs = out
            .lines()
            .find(|line| line.contains("GB/sec"))
            .and_then(|line| line.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
            .context("no GB/sec in perf bench mem memcpy's output")?;
        figures.push(ToolFigure {
            tool: "perf bench mem memcpy",
            what: format!("memcpy {size} B"),
            value: gbs,
            unit: "GB/s",
        });
    }
    Ok(figures)
}
