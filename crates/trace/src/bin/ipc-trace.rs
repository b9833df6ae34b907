//! `ipc-trace`: see both processes of a pair talk, system call by system call. It runs the
//! reader and the writer each under `strace -ff -ttt -T -yy`, keeps the calls that create, use
//! or remove the IPC object, links every send of one process to the receive of the other that
//! got its bytes, and draws it: two terminal columns, an SVG sequence diagram (`--svg`), Chrome
//! trace JSON (`--json`). How it works and what it shows: `crates/trace/README.md`.
//!
//! ```text
//! ipc-trace dgram                                  # the blog's pair with its defaults
//! ipc-trace mq --reader php --svg mq.svg           # PHP's reader, our writer
//! ipc-trace -- php a.php -- php b.php              # any two commands
//! ```

use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use ipc_common::runtime::{cleanup, report};
use trace::examples::{Example, Peer};
use trace::model::{Exchange, Side};
use trace::render;
use trace::run::{self, Order, Outcome, SideCommand};

/// Exit status for usage errors and a missing strace.
const USAGE: u8 = 2;

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Run a reader/writer pair under strace and show which system call of one hands bytes to which call of the other",
    long_about = "Run a reader/writer pair under strace and show, call by call, which system call \
                  of one process hands bytes to which call of the other: two columns in the \
                  terminal, an SVG sequence diagram (--svg), Chrome trace JSON (--json).\n\n\
                  EXAMPLE is one of dgram-uds (dgram), dgram-udp (udp), stream-uds (stream), \
                  stream-tcp (tcp), fifo, shm-sysv (shm), shm-shmop (shmop), mq. Or give two \
                  commands: ipc-trace [OPTIONS] -- READER... -- WRITER... ({url} and {port} in \
                  the writer's arguments become what the reader's `listening on URL` line \
                  says).\n\nNeeds strace (Debian package strace). Tracing slows every system call \
                  down: the times shown are far longer than an untraced run's.",
    after_help = "Examples:\n  ipc-trace dgram\n  ipc-trace stream-tcp --reader php --svg stream.svg\n  \
                  ipc-trace shm --api shmop --json shm.json\n  \
                  ipc-trace -- php tests/php/fifo-reader.php --path /tmp/f -- php tests/php/fifo-writer.php --path /tmp/f"
)]
struct Args {
    /// The blog's example to run (see above); omit it to give two commands after `--`
    example: Option<String>,

    /// Where the pair meets: a URL for the socket examples (udg://PATH, udp://HOST:PORT,
    /// unix://PATH, tcp://HOST:PORT; port 0 lets the kernel choose), the FIFO's path, or the
    /// ftok key file of the SysV examples [default: the blog's]
    #[arg(long, value_name = "WHERE")]
    endpoint: Option<String>,

    /// Who runs the reader: our binary or the blog's PHP script (tests/php)
    #[arg(long, value_enum, default_value = "ours")]
    reader: Peer,

    /// Who runs the writer: our binary or the blog's PHP script (tests/php)
    #[arg(long, value_enum, default_value = "ours")]
    writer: Peer,

    /// With `shm`: `shmop` for the raw shmop example (the same as the example shm-shmop)
    #[arg(long, value_name = "API")]
    api: Option<String>,

    /// The writer's message (passed as --message to the writer)
    #[arg(long, short = 'm', value_name = "TEXT")]
    message: Option<String>,

    /// Start the writer first (the reader once the writer waits or has finished) [default for
    /// the SysV examples with PHP's reader, which cannot wait for a key file that is not there
    /// yet]
    #[arg(long, conflicts_with = "reader_first")]
    writer_first: bool,

    /// Start the reader first (the writer once the reader says it is waiting) [default]
    #[arg(long)]
    reader_first: bool,

    /// Both sides get --timeout SECS; the first gets that long to say it is ready, and both
    /// are killed 10 s after that (0: no limit)
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 10,
        // The pair's binaries take at most 1e9 seconds: beyond, both sides would fail on it.
        value_parser = clap::value_parser!(u64).range(..=1_000_000_000)
    )]
    timeout: u64,

    /// Write the SVG sequence diagram to FILE
    #[arg(long, value_name = "FILE", help_heading = "Output")]
    svg: Option<PathBuf>,

    /// Write Chrome trace-event JSON (Perfetto, chrome://tracing) to FILE
    #[arg(long, value_name = "FILE", help_heading = "Output")]
    json: Option<PathBuf>,

    /// Show every system call, not only those on the IPC object
    #[arg(long, help_heading = "Output")]
    all: bool,

    /// Keep strace's own files (DIR/reader.TID, DIR/writer.TID) in DIR, a new or empty one
    #[arg(long, value_name = "DIR", help_heading = "Output")]
    raw: Option<PathBuf>,

    /// Colour in the terminal: auto (when stdout is a terminal and NO_COLOR is unset), always,
    /// never
    #[arg(
        long,
        value_name = "WHEN",
        default_value = "auto",
        help_heading = "Output"
    )]
    color: String,

    /// Width of the terminal picture
    #[arg(
        long,
        value_name = "COLUMNS",
        default_value_t = 100,
        value_parser = parse_width,
        help_heading = "Output"
    )]
    width: usize,

    /// Also show every call on PATH (repeatable); the SysV examples watch their key file, whose
    /// stat(2) is what ftok(3) does
    #[arg(long, value_name = "PATH", help_heading = "Output")]
    watch: Vec<String>,

    /// Print no terminal picture (only --svg / --json and the end status)
    #[arg(long, short = 'q', help_heading = "Output")]
    quiet: bool,

    /// The PHP interpreter for --reader php / --writer php
    #[arg(
        long,
        value_name = "PATH",
        default_value = "php",
        env = "IPC_TRACE_PHP",
        help_heading = "PHP"
    )]
    php: PathBuf,

    /// Where the blog's PHP scripts are [default: tests/php of this source tree]
    #[arg(
        long,
        value_name = "DIR",
        env = "IPC_TRACE_PHP_DIR",
        help_heading = "PHP"
    )]
    php_dir: Option<PathBuf>,

    /// Two commands: `-- READER... -- WRITER...`
    #[arg(last = true, value_name = "COMMANDS", allow_hyphen_values = true)]
    commands: Vec<OsString>,
}

/// Makes the second side's command from the first side's readiness line.
type SecondSide = Box<dyn FnOnce(Option<&str>) -> SideCommand>;

/// Makes the writer's command for the address the reader announced.
type AtAddress = Box<dyn Fn(&str) -> anyhow::Result<SideCommand>>;

/// How the pair is made: one of the examples, or two commands.
struct Plan {
    title: String,
    /// Paths whose every use is shown.
    watch: Vec<String>,
    reader: SideCommand,
    /// The writer, given the reader's readiness line.
    writer: SecondSide,
    first: Order,
}

/// The widest picture drawn: every line of it is allocated at this width, so an absurd number
/// would abort on allocation (or fill the memory) instead of failing as a usage error.
const MAX_WIDTH: usize = 10_000;

fn parse_width(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n <= MAX_WIDTH => Ok(n),
        _ => Err(format!(
            "`{text}` is not a width: give 0 to {MAX_WIDTH} columns (the picture is at least 60 \
             wide)"
        )),
    }
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(err) => {
            let _ = err.print();
            return ExitCode::from(if err.use_stderr() { USAGE } else { 0 });
        }
    };
    let Some(strace) = run::find_strace() else {
        report::stderr_line(format_args!(
            "error: strace is not on PATH: ipc-trace runs the pair under it; install Debian's {} package (apt-get install {})",
            run::STRACE_PACKAGE,
            run::STRACE_PACKAGE
        ));
        return ExitCode::from(USAGE);
    };
    let plan = match plan(&args) {
        Ok(plan) => plan,
        Err(err) => {
            report::stderr_line(format_args!("error: {err:#}"));
            return ExitCode::from(USAGE);
        }
    };
    // SIGINT, SIGTERM and SIGHUP end the pair (both straces and what they trace) and remove
    // the temp dir, instead of killing ipc-trace alone and leaving all of that behind.
    if let Err(err) = cleanup::install_signal_handlers() {
        report::stderr_line(format_args!("error: {err:#}"));
        return ExitCode::FAILURE;
    }
    match run(&args, strace, plan) {
        Ok(code) => code,
        Err(err) if err.chain().any(|cause| cause.is::<cleanup::Interrupted>()) => {
            report::stderr_line(format_args!(
                "{err:#}: ended the traced pair and removed what this process created"
            ));
            report::stopped_exit_code()
        }
        Err(err) => {
            report::stderr_line(format_args!("error: {err:#}"));
            ExitCode::FAILURE
        }
    }
}

fn plan(args: &Args) -> anyhow::Result<Plan> {
    let mut first = if args.writer_first {
        Order::WriterFirst
    } else {
        Order::ReaderFirst
    };
    if let Some(name) = &args.example {
        if !args.commands.is_empty() {
            bail!("give an example or two commands after --, not both");
        }
        let mut example = Example::parse(name).with_context(|| {
            let names: Vec<_> = Example::ALL.iter().map(|e| e.name()).collect();
            format!("no example {name:?}; the examples: {}", names.join(", "))
        })?;
        match args.api.as_deref() {
            None => {}
            Some("shmop") if matches!(example, Example::ShmSysv | Example::ShmShmop) => {
                example = Example::ShmShmop;
            }
            Some("sysv") if matches!(example, Example::ShmSysv | Example::ShmShmop) => {
                example = Example::ShmSysv;
            }
            Some(api) => bail!("--api {api} is for shm (sysv or shmop)"),
        }
        // PHP's SysV readers ftok() the key file before saying they wait: with no key file yet
        // they would wait for ever for a writer that waits for them.
        if example.writer_needs_no_reader() && args.reader == Peer::Php && !args.reader_first {
            first = Order::WriterFirst;
        }
        let endpoint = args
            .endpoint
            .clone()
            .unwrap_or_else(|| example.default_endpoint().to_string());
        example.check_endpoint(&endpoint)?;
        let reader = side_command(args, example, Side::Reader, args.reader, &endpoint)?;
        let writer_peer = args.writer;
        let mut writer_at_default =
            side_command(args, example, Side::Writer, writer_peer, &endpoint)?;
        // The writer goes where the reader says it listens (port 0 becomes the real port).
        let announced: Option<AtAddress> =
            if example.announces_address() && first == Order::ReaderFirst {
                let args_for_writer = WriterArgs::from(args);
                Some(Box::new(move |url: &str| {
                    side_command_with(&args_for_writer, example, Side::Writer, writer_peer, url)
                }))
            } else {
                None
            };
        let title = format!(
            "ipc-trace {}: {} reader, {} writer, at {endpoint}{}",
            example.name(),
            peer_name(args.reader),
            peer_name(args.writer),
            if first == Order::WriterFirst {
                " (writer first)"
            } else {
                ""
            }
        );
        let writer = Box::new(move |ready: Option<&str>| {
            let at_announced = match (&announced, ready.and_then(run::announced_url)) {
                (Some(make), Some(url)) => make(url).ok(),
                _ => None,
            };
            if let Some(command) = at_announced {
                return command;
            }
            std::mem::replace(
                &mut writer_at_default,
                SideCommand {
                    label: String::new(),
                    program: OsString::new(),
                    args: Vec::new(),
                },
            )
        });
        let mut watch = args.watch.clone();
        if matches!(example, Example::ShmSysv | Example::ShmShmop | Example::Mq) {
            watch.push(endpoint.clone());
        }
        return Ok(Plan {
            title,
            watch,
            reader,
            writer,
            first,
        });
    }
    let commands = &args.commands;
    let split = commands
        .iter()
        .position(|a| a == "--")
        .context("give an example, or two commands: ipc-trace -- READER... -- WRITER...")?;
    let (reader, writer) = (&commands[..split], &commands[split + 1..]);
    if reader.is_empty() || writer.is_empty() {
        bail!("both commands must be given: ipc-trace -- READER... -- WRITER...");
    }
    let reader = command_of(reader, None);
    let writer: Vec<OsString> = writer.to_vec();
    Ok(Plan {
        title: format!("ipc-trace: {} | {}", reader.label, label_of(&writer)),
        watch: args.watch.clone(),
        reader,
        writer: Box::new(move |ready| command_of(&writer, ready.and_then(run::announced_url))),
        first,
    })
}

fn peer_name(peer: Peer) -> &'static str {
    match peer {
        Peer::Ours => "our",
        Peer::Php => "PHP's",
    }
}

/// What the writer needs of the options once the reader has said where it listens.
struct WriterArgs {
    message: Option<String>,
    timeout: u64,
    php: PathBuf,
    php_dir: PathBuf,
}

impl From<&Args> for WriterArgs {
    fn from(args: &Args) -> WriterArgs {
        WriterArgs {
            message: args.message.clone(),
            timeout: args.timeout,
            php: args.php.clone(),
            php_dir: php_dir(args),
        }
    }
}

fn php_dir(args: &Args) -> PathBuf {
    args.php_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/php")))
}

fn side_command(
    args: &Args,
    example: Example,
    side: Side,
    peer: Peer,
    endpoint: &str,
) -> anyhow::Result<SideCommand> {
    side_command_with(&WriterArgs::from(args), example, side, peer, endpoint)
}

fn side_command_with(
    args: &WriterArgs,
    example: Example,
    side: Side,
    peer: Peer,
    endpoint: &str,
) -> anyhow::Result<SideCommand> {
    let mut list = example.args(side, peer, endpoint)?;
    if example.takes_timeout(side, peer) {
        list.extend(["--timeout".to_string(), args.timeout.to_string()]);
    }
    if let (Side::Writer, Some(message)) = (side, &args.message) {
        list.extend(["--message".to_string(), message.clone()]);
    }
    Ok(match peer {
        Peer::Ours => {
            let name = example.binary(side);
            let program = run::find_binary(name).with_context(|| {
                format!(
                    "{name} is neither next to ipc-trace nor on PATH; build it: cargo build -p {}",
                    name.split('-').next().unwrap_or(name)
                )
            })?;
            SideCommand {
                label: name.to_string(),
                program: program.into(),
                args: list.into_iter().map(OsString::from).collect(),
            }
        }
        Peer::Php => {
            let found = if args.php.components().count() > 1 {
                args.php.is_file()
            } else {
                run::find_on_path(&args.php.to_string_lossy()).is_some()
            };
            if !found {
                bail!(
                    "{} not found: the PHP peers need it (apt-get install php-cli php-mbstring, or --php PATH)",
                    args.php.display()
                );
            }
            let script = args.php_dir.join(example.php_script(side));
            if !script.is_file() {
                bail!(
                    "no PHP peer {}: pass --php-dir DIR (the repository's tests/php)",
                    script.display()
                );
            }
            let mut php_args: Vec<OsString> = ["-d", "display_errors=stderr", "-d", "log_errors=0"]
                .into_iter()
                .map(OsString::from)
                .collect();
            php_args.push(script.into());
            php_args.extend(list.into_iter().map(OsString::from));
            SideCommand {
                label: format!("php {}", example.php_script(side)),
                program: args.php.clone().into(),
                args: php_args,
            }
        }
    })
}

/// A command given after `--`, with `{url}` and `{port}` replaced by what the reader announced.
fn command_of(words: &[OsString], url: Option<&str>) -> SideCommand {
    let port = url.and_then(|u| u.rsplit(':').next()).unwrap_or("");
    let subst = |w: &OsString| -> OsString {
        match (w.to_str(), url) {
            (Some(text), Some(url)) => text.replace("{url}", url).replace("{port}", port).into(),
            _ => w.clone(),
        }
    };
    let words: Vec<OsString> = words.iter().map(subst).collect();
    let mut program = words[0].clone();
    // A bare name of ours resolves next to ipc-trace first, like the examples.
    let ours = program
        .to_str()
        .filter(|n| !n.contains('/'))
        .and_then(run::find_binary);
    if let Some(path) = ours {
        program = path.into();
    }
    SideCommand {
        label: label_of(&words),
        program,
        args: words[1..].to_vec(),
    }
}

/// A short title for a command: the program's file name, and a script's for an interpreter.
fn label_of(words: &[OsString]) -> String {
    let base = |w: &OsString| {
        std::path::Path::new(w)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let program = base(&words[0]);
    match words[1..]
        .iter()
        .find(|w| !w.to_string_lossy().starts_with('-'))
    {
        Some(script)
            if program.starts_with("php")
                || program.starts_with("python")
                || program.ends_with("sh") =>
        {
            format!("{program} {}", base(script))
        }
        _ => program,
    }
}

fn run(args: &Args, strace: PathBuf, plan: Plan) -> anyhow::Result<ExitCode> {
    let options = run::Options {
        strace,
        // --timeout 0 waits for ever, as the pair's own binaries do.
        ready_within: (args.timeout > 0).then(|| Duration::from_secs(args.timeout)),
        limit: (args.timeout > 0).then(|| Duration::from_secs(args.timeout.saturating_add(10))),
        order: plan.first,
        string_limit: 48,
        raw_dir: args.raw.clone(),
    };
    let (first, second_for): (SideCommand, SecondSide) = match plan.first {
        Order::ReaderFirst => (plan.reader, plan.writer),
        Order::WriterFirst => {
            let writer = (plan.writer)(None);
            let reader = plan.reader;
            (writer, Box::new(move |_| reader))
        }
    };
    let [reader, writer] = run::run_pair(first, second_for, &options)?;
    for outcome in [&reader, &writer] {
        if let Some(why) = run::strace_failure(outcome) {
            let hint = if why.contains("ptrace") || why.contains("not permitted") {
                " (in a container, tracing needs --cap-add SYS_PTRACE)"
            } else {
                ""
            };
            bail!("strace could not trace {}: {why}{hint}", outcome.log.label);
        }
    }
    let exchange = Exchange::build(&reader.log, &writer.log, args.all, &plan.watch);
    if let Some(path) = &args.svg {
        std::fs::write(path, render::svg(&exchange, &plan.title))
            .with_context(|| format!("write the SVG to {}", path.display()))?;
    }
    if let Some(path) = &args.json {
        std::fs::write(path, render::chrome_json(&exchange))
            .with_context(|| format!("write the trace JSON to {}", path.display()))?;
    }
    let color = match args.color.as_str() {
        "always" => true,
        "never" => false,
        _ => std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    };
    let mut out = String::new();
    if !args.quiet {
        out.push_str(&render::text(
            &exchange,
            &plan.title,
            render::TextStyle {
                width: args.width,
                color,
            },
        ));
    }
    let mut failed = false;
    let mut killed = false;
    for (side, outcome) in [(Side::Reader, &reader), (Side::Writer, &writer)] {
        failed |= !outcome.status.is_some_and(|s| s.success());
        killed |= outcome.status.is_none();
        for line in render::wrap(&ending(side, outcome), args.width.max(60)) {
            out.push_str(&line);
            out.push('\n');
        }
    }
    for (what, path) in [("SVG", &args.svg), ("trace JSON", &args.json)] {
        if let Some(path) = path {
            out.push_str(&format!("{what} written to {}\n", path.display()));
        }
    }
    // stdout carries the picture; a reader that went away (`| head`) is not an error, a
    // stdout that fails (a full disk) is: the picture would be lost with exit 0.
    if let Err(err) = std::io::Write::write_all(&mut std::io::stdout().lock(), out.as_bytes())
        .and_then(|()| std::io::Write::flush(&mut std::io::stdout()))
        && err.kind() != std::io::ErrorKind::BrokenPipe
    {
        return Err(anyhow::Error::new(err).context(
            "write the picture to stdout (give it a file or pipe with room, or --quiet with \
             --svg/--json)",
        ));
    }
    Ok(if killed {
        ExitCode::from(124)
    } else if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `reader: exit 0, printed "Hello…" (38 bytes)`, with the side's last stderr line on failure.
fn ending(side: Side, outcome: &Outcome) -> String {
    let status = match outcome.status {
        Some(s) => match s.code() {
            Some(code) => format!("exit {code}"),
            None => format!("ended by {s}"),
        },
        None => "killed: it outlived the run's limit".to_string(),
    };
    let mut line = format!("{}: {status}", side.name());
    if !outcome.stdout.is_empty() {
        let shown: String = String::from_utf8_lossy(&outcome.stdout)
            .chars()
            .take(60)
            .collect();
        line.push_str(&format!(
            ", printed {:?} ({} bytes)",
            shown,
            outcome.stdout.len()
        ));
    }
    let last = outcome.stderr.lines().rev().find(|l| !l.trim().is_empty());
    if let (false, Some(last)) = (outcome.status.is_some_and(|s| s.success()), last) {
        line.push_str(&format!("; its last words: {last}"));
    }
    line
}
