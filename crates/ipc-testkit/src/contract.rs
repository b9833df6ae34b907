//! The contract suite's engine: the promises of `docs/reliability.md` checked as invariants over
//! generated schedules, not as examples.
//!
//! A [`Schedule`] is drawn from a seed: which side starts and whether the second waits for the
//! first to be ready, the umask, the message's size (at and around the mechanism's limits) and
//! where the writer reads it from (argument, file, stdin at once, stdin in slow pieces, stdin
//! that never ends), and one fault: none, the reader stopped and continued, the reader stopped
//! before the writer starts and then killed, the writer killed at a random moment, stderr of
//! either side a pipe nobody reads. Whatever the schedule, [`run`] checks:
//!
//! 1. a writer that exits 0 delivered: the reader printed exactly the message (or, where the
//!    mechanism only hands the message to the kernel for the reader, [`Delivery::Queued`], the
//!    reader was killed by the schedule);
//! 2. a reader that exits 0 printed exactly what the writer wrote (or, on a byte stream whose
//!    writer was killed, a prefix of it: the blog's format has no framing, [`Mechanism::cut`]);
//! 3. nothing is left in the test's directory or under its SysV key but what a SIGKILLed process
//!    could not remove (which the engine then removes, being the test that made it);
//! 4. every exit is the one the schedule calls for (0, 1 with the limit named, 124 for an endless
//!    stdin), within the process's `--timeout`;
//! 5. no process panics or aborts (exit 101, 134 or a signal the schedule did not send).
//!
//! `CONTRACT_SCHEDULES` (default 12) sets how many schedules each mechanism runs, and
//! `CONTRACT_SEED` the first seed; a failure names its seed, so that
//! `CONTRACT_SEED=<seed> CONTRACT_SCHEDULES=1 cargo test -p <crate> --test contract` replays it.
//! The random pauses of a schedule are the faults' timing, never a synchronisation: readiness is
//! read from the processes' own progress lines.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::{Finished, Proc, Signal, bounded, ours};

/// What a writer's exit 0 promises on this mechanism.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// A reader read every byte (streams, FIFOs).
    Consumed,
    /// The kernel holds the message for the reader we checked (datagrams, SysV objects); a
    /// reader killed afterwards loses it with itself.
    Queued,
}

/// One mechanism under test: how to run its pair in a private directory.
#[derive(Debug)]
pub struct Mechanism {
    /// `dgram-udg`, `stream-tcp`, ...: names the schedules in messages.
    pub name: &'static str,
    /// `env!("CARGO_BIN_EXE_...")` of the reader and the writer.
    pub reader: &'static str,
    pub writer: &'static str,
    /// The endpoint arguments both sides take, for a private directory.
    pub endpoint: fn(&Path) -> Vec<String>,
    /// Whether the writer can start first (UDP's port is known only once the reader bound it).
    pub writer_can_start_first: bool,
    /// A writer's exit 0, what it promises.
    pub delivery: Delivery,
    /// A byte stream: a killed writer may leave the reader a prefix, with exit 0.
    pub cut: bool,
    /// The largest message, and sizes worth trying below it (0 and 1 are always tried).
    pub limit: usize,
    /// Whether `limit + 1` bytes are refused (datagrams, SysV); a stream or FIFO takes any
    /// size up to memory, so its `limit` is just the largest size tried.
    pub refuses_over_limit: bool,
    /// What the writer's refusal of `limit + 1` bytes says.
    pub over_limit_says: &'static str,
    pub sizes: &'static [usize],
    /// What the writer's progress says when it starts waiting for a reader (writer first).
    pub writer_waits: &'static str,
    /// What the reader says once it is ready for the writer.
    pub reader_ready: &'static str,
    /// What a SIGKILLed process may leave in `dir` (socket file, FIFO, SysV objects), removed
    /// by the engine after such a schedule.
    pub remove_leftovers: fn(&Path),
    /// Everything of the pair's still in existence (files in `dir` besides the test's own,
    /// SysV objects under its key), for the leak check.
    pub leftovers: fn(&Path) -> Vec<String>,
}

/// Who starts first, and whether the second waits for the first's readiness line.
#[derive(Clone, Copy, Debug)]
pub enum Order {
    ReaderFirst { wait: bool },
    WriterFirst { wait: bool },
}

/// Where the writer reads its message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Argument,
    File,
    Stdin,
    /// Stdin in 4 pieces with pauses: the reading must wait for it (bounded).
    SlowStdin,
    /// Stdin that never ends: the writer must give up at its `--timeout` (124).
    EndlessStdin,
}

/// The one fault a schedule injects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    None,
    /// SIGSTOP the reader after `after` ms, SIGCONT after `pause` ms more.
    StopReader {
        after: u64,
        pause: u64,
    },
    /// SIGSTOP the ready reader before the writer starts, SIGKILL it `after` ms later.
    KillStoppedReader {
        after: u64,
    },
    /// SIGKILL the writer `after` ms after both started.
    KillWriter {
        after: u64,
    },
    /// The reader's stderr is a pipe nobody reads.
    ReaderStderrClosed,
    /// The writer's stderr is a pipe nobody reads.
    WriterStderrClosed,
}

/// One generated schedule.
#[derive(Clone, Debug)]
pub struct Schedule {
    pub seed: u64,
    pub order: Order,
    pub umask: &'static str,
    pub size: usize,
    pub source: Source,
    pub fault: Fault,
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seed {}: {:?}, umask {}, {} bytes from {:?}, fault {:?}",
            self.seed, self.order, self.umask, self.size, self.source, self.fault
        )
    }
}

/// splitmix64: small, seedable, good enough to spread schedules.
#[derive(Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

impl Schedule {
    /// The schedule of `seed` for `mech`.
    pub fn generate(mech: &Mechanism, seed: u64) -> Schedule {
        let mut rng = Rng::new(seed);
        let wait = rng.below(4) != 0;
        let order = if mech.writer_can_start_first && rng.below(2) == 0 {
            Order::WriterFirst { wait }
        } else {
            Order::ReaderFirst { wait }
        };
        let mut sizes = vec![0, 1, mech.limit, mech.limit + 1];
        sizes.extend_from_slice(mech.sizes);
        let size = rng.pick(&sizes);
        let source = match rng.below(10) {
            0..=2 => Source::Argument,
            3..=4 => Source::File,
            5..=6 => Source::Stdin,
            7..=8 => Source::SlowStdin,
            _ => Source::EndlessStdin,
        };
        // Arguments cannot carry NUL bytes or megabytes.
        let source = if source == Source::Argument && size > 64 << 10 {
            Source::File
        } else {
            source
        };
        let fault = match rng.below(12) {
            0..=3 => Fault::None,
            4..=5 => Fault::StopReader {
                after: rng.below(30),
                pause: rng.below(300),
            },
            6 => Fault::KillStoppedReader {
                after: rng.below(100),
            },
            7..=8 => Fault::KillWriter {
                after: rng.below(20),
            },
            // A reader that cannot say its port (UDP) leaves its writer nowhere to send.
            9 if mech.writer_can_start_first => Fault::ReaderStderrClosed,
            _ => Fault::WriterStderrClosed,
        };
        // "Stopped before it read anything" holds only if the reader is stopped at its
        // readiness line before the writer starts.
        let order = if matches!(fault, Fault::KillStoppedReader { .. }) {
            Order::ReaderFirst { wait: true }
        } else {
            order
        };
        Schedule {
            seed,
            order,
            umask: rng.pick(&["022", "000", "077"]),
            size,
            source,
            fault,
        }
    }

    /// The message: binary, with NUL bytes, never the same twice in a row of sizes.
    pub fn message(&self) -> Vec<u8> {
        let mut rng = Rng::new(self.seed ^ 0x5EED);
        let text = self.source == Source::Argument;
        (0..self.size)
            .map(|_| {
                let byte = rng.next_u64() as u8;
                // An argument cannot hold NUL; keep it printable there.
                if text { b'a' + byte % 26 } else { byte }
            })
            .collect()
    }
}

/// The number of schedules per mechanism and the first seed, from the environment.
pub fn plan() -> (u64, u64) {
    let count = std::env::var("CONTRACT_SCHEDULES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(12);
    let seed = std::env::var("CONTRACT_SEED")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_secs())
        });
    (count, seed)
}

/// Runs the planned schedules of `mech` and prints one line with their count; panics at the
/// first broken promise, naming the seed that replays it.
pub fn check(mech: &Mechanism) {
    let (count, first) = plan();
    let mut faults = 0;
    for n in 0..count {
        let schedule = Schedule::generate(mech, first.wrapping_add(n));
        if schedule.fault != Fault::None {
            faults += 1;
        }
        // A helper that panics (a readiness line that never came) still names the seed.
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(mech, &schedule)))
                .unwrap_or_else(|panic| {
                    let why = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_string()))
                        .unwrap_or_default();
                    Err(format!("the test itself gave up: {why}"))
                });
        if let Err(broken) = outcome {
            panic!(
                "{}: promise broken in schedule {schedule}\n{broken}\nreplay: \
                 CONTRACT_SEED={} CONTRACT_SCHEDULES=1",
                mech.name, schedule.seed
            );
        }
    }
    println!(
        "contract {}: {count} schedules from seed {first} ({faults} with a fault): every promise held",
        mech.name
    );
}

/// A pair of processes under a schedule.
struct Running {
    reader: Option<Proc>,
    writer: Option<Proc>,
}

/// The `--timeout` of each side: long enough for the largest message under a stopped peer,
/// short where the schedule makes a side wait for nothing.
const TIMEOUT: &str = "5";
const SHORT_TIMEOUT: &str = "1";

/// Runs one schedule and checks every promise; `Err` says which broke and how.
pub fn run(mech: &Mechanism, schedule: &Schedule) -> Result<(), String> {
    let dir = crate::temp_dir();
    let endpoint = (mech.endpoint)(dir.path());
    let message = schedule.message();
    let message_file = dir.path().join("message");
    let over_limit = mech.refuses_over_limit && schedule.size > mech.limit;
    let endless = schedule.source == Source::EndlessStdin;
    // A reader whose writer fails before sending waits for nothing: give it a short timeout.
    let reader_timeout = if over_limit || endless {
        SHORT_TIMEOUT
    } else {
        TIMEOUT
    };
    let writer_timeout = if endless { SHORT_TIMEOUT } else { TIMEOUT };

    let mut reader_cmd = crate::under_umask(schedule.umask, mech.reader);
    reader_cmd.args(&endpoint);
    let reader_cmd = bounded(reader_cmd, &["--timeout", reader_timeout]);

    let mut writer_args: Vec<String> = vec!["--timeout".into(), writer_timeout.into()];
    let stdin = match schedule.source {
        Source::Argument => {
            writer_args.push("--message".into());
            writer_args.push(String::from_utf8(message.clone()).expect("printable"));
            None
        }
        Source::File => {
            std::fs::write(&message_file, &message).expect("write the message file");
            writer_args.push("--message-file".into());
            writer_args.push(message_file.display().to_string());
            None
        }
        Source::Stdin | Source::SlowStdin | Source::EndlessStdin => {
            writer_args.push("--message-file".into());
            writer_args.push("-".into());
            Some(message.clone())
        }
    };
    let writer_args: Vec<&str> = writer_args.iter().map(String::as_str).collect();
    let writer_cmd = |endpoint: &[String]| {
        let mut cmd = crate::under_umask(schedule.umask, mech.writer);
        cmd.args(endpoint);
        bounded(cmd, &writer_args)
    };

    let started = Instant::now();
    let mut pair = Running {
        reader: None,
        writer: None,
    };
    let spawn_reader = |cmd: Command| -> Proc {
        let mut cmd = cmd;
        if schedule.fault == Fault::ReaderStderrClosed {
            Proc::spawn_stderr_closed(&format!("{}-reader", mech.name), &mut cmd, None)
        } else {
            Proc::spawn(&format!("{}-reader", mech.name), &mut cmd)
        }
    };
    let spawn_writer = |cmd: Command| -> Proc {
        let mut cmd = cmd;
        spawn_writer_with(mech, schedule, &mut cmd, stdin.clone())
    };
    let reader_can_say = schedule.fault != Fault::ReaderStderrClosed;
    let writer_can_say = schedule.fault != Fault::WriterStderrClosed;
    let stop_first = matches!(schedule.fault, Fault::KillStoppedReader { .. });
    match schedule.order {
        Order::ReaderFirst { wait } => {
            pair.reader = Some(spawn_reader(reader_cmd));
            // UDP's writer needs the reader's port: its URL comes from the readiness line.
            let mut writer_endpoint = endpoint.clone();
            if (wait || stop_first || !mech.writer_can_start_first) && reader_can_say {
                let reader = pair.reader.as_mut().expect("started");
                let line = reader.wait_for_stderr(mech.reader_ready);
                if !mech.writer_can_start_first {
                    writer_endpoint = vec![url_in(&line)];
                }
            }
            if stop_first {
                pair.reader
                    .as_ref()
                    .expect("started")
                    .signal(Signal::SIGSTOP);
            }
            pair.writer = Some(spawn_writer(writer_cmd(&writer_endpoint)));
        }
        Order::WriterFirst { wait } => {
            pair.writer = Some(spawn_writer(writer_cmd(&endpoint)));
            if wait && writer_can_say && !over_limit && schedule.source != Source::EndlessStdin {
                let writer = pair.writer.as_mut().expect("started");
                writer.wait_for_stderr(mech.writer_waits);
            }
            pair.reader = Some(spawn_reader(reader_cmd));
            if stop_first && reader_can_say {
                let reader = pair.reader.as_mut().expect("started");
                reader.wait_for_stderr(mech.reader_ready);
                reader.signal(Signal::SIGSTOP);
            }
        }
    }
    let mut reader_killed = false;
    let mut writer_killed = false;
    match schedule.fault {
        Fault::StopReader { after, pause } => {
            std::thread::sleep(Duration::from_millis(after));
            let reader = pair.reader.as_mut().expect("started");
            if reader.is_running() {
                reader.signal(Signal::SIGSTOP);
                std::thread::sleep(Duration::from_millis(pause));
                reader.signal(Signal::SIGCONT);
            }
        }
        Fault::KillStoppedReader { after } => {
            std::thread::sleep(Duration::from_millis(after));
            let reader = pair.reader.as_mut().expect("started");
            if reader.is_running() {
                reader.signal(Signal::SIGKILL);
                reader_killed = true;
            }
        }
        Fault::KillWriter { after } => {
            std::thread::sleep(Duration::from_millis(after));
            let writer = pair.writer.as_mut().expect("started");
            if writer.is_running() {
                writer.signal(Signal::SIGKILL);
                writer_killed = true;
            }
        }
        _ => {}
    }
    let writer = pair.writer.take().expect("started").finish();
    let reader = pair.reader.take().expect("started").finish();
    let elapsed = started.elapsed();

    let verdict = judge(
        mech,
        schedule,
        &message,
        &writer,
        &reader,
        reader_killed,
        writer_killed,
    );
    // Whatever the verdict: what a killed process could not remove is removed, and only then
    // is the directory compared.
    if reader_killed || writer_killed {
        (mech.remove_leftovers)(dir.path());
    }
    let _ = std::fs::remove_file(&message_file);
    let left = (mech.leftovers)(dir.path());
    if !left.is_empty() {
        // Reported below; removed now, so that no later test meets them under a reused key.
        (mech.remove_leftovers)(dir.path());
    }
    verdict?;
    if !left.is_empty() {
        return Err(format!("left behind: {left:?}"));
    }
    // Every wait is bounded: nothing takes much longer than the longest --timeout.
    if elapsed > Duration::from_secs(12) {
        return Err(format!("the pair took {elapsed:?}"));
    }
    Ok(())
}

fn spawn_writer_with(
    mech: &Mechanism,
    schedule: &Schedule,
    cmd: &mut Command,
    stdin: Option<Vec<u8>>,
) -> Proc {
    let label = format!("{}-writer", mech.name);
    match schedule.source {
        Source::SlowStdin | Source::EndlessStdin => {
            let endless = schedule.source == Source::EndlessStdin;
            let bytes = stdin.unwrap_or_default();
            let stderr_closed = schedule.fault == Fault::WriterStderrClosed;
            let mut proc = Proc::spawn_piped_stdin(&label, cmd, stderr_closed);
            let mut pipe = proc.take_stdin().expect("piped stdin");
            std::thread::spawn(move || {
                use std::io::Write;
                let piece = bytes.len().div_ceil(4).max(1);
                for chunk in bytes.chunks(piece) {
                    if pipe.write_all(chunk).is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                if endless {
                    // Never close: the writer must stop waiting at its --timeout. The pipe
                    // closes when this thread's process ends or the writer has gone (EPIPE).
                    let _ = pipe.flush();
                    std::thread::sleep(Duration::from_secs(3));
                }
            });
            proc
        }
        _ if schedule.fault == Fault::WriterStderrClosed => {
            Proc::spawn_stderr_closed(&label, cmd, stdin)
        }
        _ => Proc::spawn_with_stdin(&label, cmd, stdin),
    }
}

/// The promises, for one finished schedule.
fn judge(
    mech: &Mechanism,
    schedule: &Schedule,
    message: &[u8],
    writer: &Finished,
    reader: &Finished,
    reader_killed: bool,
    writer_killed: bool,
) -> Result<(), String> {
    let show = || format!("\n  writer: {}\n  reader: {}", brief(writer), brief(reader));
    let mut printed = message.to_vec();
    printed.push(b'\n');
    // Promise 5: nothing panics (101) or aborts (134, SIGABRT) or dies of a signal we did not
    // send.
    for (side, finished, killed) in [
        ("writer", writer, writer_killed),
        ("reader", reader, reader_killed),
    ] {
        let code = finished.status.code();
        if matches!(code, Some(101 | 134)) {
            return Err(format!("the {side} panicked or aborted{}", show()));
        }
        if code.is_none() && !killed {
            return Err(format!("the {side} died of a signal nobody sent{}", show()));
        }
    }
    let writer_ok = writer.status.success();
    let reader_ok = reader.status.success();
    // Promise 2 (what the reader prints is what was written) for every reader that exits 0.
    if reader_ok {
        let exact = reader.stdout == printed;
        let prefix = mech.cut
            && writer_killed
            && reader.stdout.last() == Some(&b'\n')
            && message.starts_with(&reader.stdout[..reader.stdout.len() - 1]);
        if !(exact || prefix) {
            return Err(format!(
                "the reader exited 0 but printed {} bytes that are not the {}-byte message{}",
                reader.stdout.len(),
                message.len(),
                show()
            ));
        }
    }
    // Promise 1: a writer's exit 0 means delivered.
    if writer_ok {
        let delivered = reader_ok && reader.stdout == printed;
        let queued_then_killed = mech.delivery == Delivery::Queued && reader_killed;
        let nothing_to_deliver = message.is_empty() && reader_killed;
        if !(delivered || queued_then_killed || nothing_to_deliver) {
            return Err(format!(
                "the writer exited 0 but the reader did not print the message{}",
                show()
            ));
        }
    }
    // What each schedule calls for.
    let code = writer.status.code();
    let over_limit = mech.refuses_over_limit && schedule.size > mech.limit;
    let refused = code == Some(1) && writer_says(writer, schedule, mech.over_limit_says);
    if schedule.source == Source::EndlessStdin && !writer_killed {
        // Waiting for the rest of stdin ends at the timeout, unless the part read already
        // exceeds what the mechanism carries.
        if !(code == Some(124) || over_limit && refused) {
            return Err(format!("an endless stdin did not time out (124){}", show()));
        }
        return Ok(());
    }
    if over_limit && !writer_killed {
        if !refused {
            return Err(format!("an over-limit message was not refused{}", show()));
        }
        return Ok(());
    }
    let undisturbed = matches!(
        schedule.fault,
        Fault::None
            | Fault::StopReader { .. }
            | Fault::ReaderStderrClosed
            | Fault::WriterStderrClosed
    );
    if undisturbed && !(writer_ok && reader_ok) {
        return Err(format!("an undisturbed exchange failed{}", show()));
    }
    // An empty message has no byte to deliver: through a FIFO it is only the end of file,
    // which a writer cannot see anyone read (docs/reliability.md, what cannot be promised).
    if matches!(schedule.fault, Fault::KillStoppedReader { .. })
        && reader_killed
        && mech.delivery == Delivery::Consumed
        && writer_ok
        && !message.is_empty()
    {
        return Err(format!(
            "the writer exited 0 although its reader was killed before reading{}",
            show()
        ));
    }
    Ok(())
}

/// A finished process in one line: its status, how much it printed, what it said.
fn brief(finished: &Finished) -> String {
    format!(
        "{}, {} bytes on stdout, stderr: {:?}",
        finished.status,
        finished.stdout.len(),
        finished.stderr
    )
}

/// The URL at the end of a readiness line (`listening on udp://127.0.0.1:40123`).
fn url_in(line: &str) -> String {
    line.rsplit(' ')
        .next()
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Whether the writer said `needle` (always true when its stderr was closed on purpose).
fn writer_says(writer: &Finished, schedule: &Schedule, needle: &str) -> bool {
    schedule.fault == Fault::WriterStderrClosed || writer.stderr.contains(needle)
}

/// The SysV objects (and files) of a SysV pair keyed on `dir/key` with project id `T`, for
/// [`Mechanism::leftovers`].
pub fn sysv_leftovers(dir: &Path) -> Vec<String> {
    let mut left = files_in(dir);
    if let Ok(key) = ipc_common::sysv::ftok(&dir.join("key"), b'T') {
        left.extend(crate::sysv_objects_with_key(key));
    }
    left
}

/// Removes what a killed process of a SysV pair left: objects under the test's own key (the
/// test made the key file, so they can be nobody else's) and files in its directory.
pub fn remove_sysv_leftovers(dir: &Path) {
    remove_files_in(dir);
    let Ok(key) = ipc_common::sysv::ftok(&dir.join("key"), b'T') else {
        return;
    };
    for line in crate::sysv_objects_with_key(key) {
        // `shm: <key> <id> ...` as sysv_objects_with_key writes it.
        let mut words = line.split_whitespace();
        let kind = words.next().unwrap_or_default();
        let id = words.nth(1).unwrap_or_default();
        let flag = match kind {
            "shm:" => "-m",
            "msg:" => "-q",
            _ => "-s",
        };
        let _ = Command::new("ipcrm").args([flag, id]).status();
    }
}

/// Files in `dir` other than the test's own, for [`Mechanism::leftovers`].
pub fn files_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| entry.path())
                .filter(|path| path.file_name().is_some_and(|name| name != "key"))
                .map(|path: PathBuf| path.display().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Removes the files in `dir` that a killed process left (sockets, FIFOs), for
/// [`Mechanism::remove_leftovers`]; the directory is the test's own.
pub fn remove_files_in(dir: &Path) {
    for path in files_in(dir) {
        let _ = std::fs::remove_file(path);
    }
}

/// Our binary `program` under the test's rules (no `IPC_*` from the caller).
pub fn command(program: &str) -> Command {
    ours(program)
}
