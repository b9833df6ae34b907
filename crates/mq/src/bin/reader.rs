//! `mq-reader`: the blog's message-queue reader (`ftok`, `msg_get_queue`, `msg_receive`, `echo`,
//! `msg_remove_queue`): prints one message, unserialized as PHP's `msg_receive` does and printed
//! as PHP's `echo` would (`--format json`: as JSON; `--raw`: the bytes as they are). `--serve`
//! answers requests instead: each of type 1, on the type it names (README, "Request/response").
//!
//! Syscalls as strace shows them: `statx` until the key file exists, `openat(O_PATH)` + `statx`
//! (its checks and `ftok` key), `msgget(key, 0)` until the queue exists, `msgctl(IPC_STAT)` (its
//! owner), `msgrcv(MSG_COPY|IPC_NOWAIT)` until the message is there (a copy, checked before it is
//! taken), `msgrcv(IPC_NOWAIT)` takes it, `write(1)`, `msgctl(IPC_RMID)` if the queue is empty.
//!
//! `cargo run -p mq --bin mq-writer; cargo run -p mq --bin mq-reader`

use std::process::ExitCode;

use ipc_common::php::options::PrintArgs;
use ipc_common::runtime::cli::{CommonArgs, ENVIRONMENT, ModeArgs};
use ipc_common::runtime::report;
use ipc_common::say;
use ipc_common::sysv::MsgBuf;
use mq::cli::ReadArgs;
use mq::serve::{ServeArgs, Server, step_deadline};
use mq::{KeyArgs, ProjId, Wanted};

/// The command line; each field's doc comment is its `--help` text.
#[derive(clap::Parser, Debug)]
#[command(
    name = "mq-reader",
    version,
    about = "The blog's message-queue reader: prints a message from a SysV queue, then removes it",
    long_about = "Receives one message from a SysV message queue and prints it: the blog's \
        message-queue reader. The queue is keyed on ftok(/tmp/ipc-message-queues, 'T') by \
        default; the reader waits up to --timeout (default 10 s) for the key file, the queue and \
        a message, unserializes the message as PHP's msg_receive does and prints it as PHP's \
        echo would, then removes the queue if it is empty. A message it cannot print as asked is \
        not taken.",
    after_help = format!("{ENVIRONMENT}\n{}", mq::ENVIRONMENT)
)]
struct Args {
    #[command(flatten)]
    key: KeyArgs,
    #[command(flatten)]
    read: ReadArgs,
    #[command(flatten)]
    print: PrintArgs,
    #[command(flatten)]
    serve: ServeArgs,
    #[command(flatten)]
    mode: ModeArgs,
    #[command(flatten)]
    common: CommonArgs,
}

fn main() -> ExitCode {
    let args = <Args as clap::Parser>::parse();
    report::main(|| {
        if args.serve.serve {
            serve(&args)
        } else {
            run(&args)
        }
    })
}

fn run(args: &Args) -> anyhow::Result<()> {
    let deadline = args.common.start();
    report::check_stdout()?; // before anything is taken: nowhere to print it
    let (key_file, proj) = (&args.key.key_file, args.key.proj);
    let keyed = mq::wait_for_key(key_file, proj, &deadline)?; // statx
    let key = keyed.key;
    say!(
        deadline,
        "key {key} = ftok({}, {})",
        key_file.display(),
        ProjId(proj)
    );
    let queue = mq::wait_for_queue_noted(&keyed, &deadline)?; // msgget
    let (max_len, desired_type) = (args.read.max_len()?, args.read.desired_type);
    let wanted = Wanted {
        queue,
        desired_type,
    };

    let mut buf = MsgBuf::new();
    let looked = mq::cli::look(&mut buf, wanted, max_len, &args.print, &deadline)?; // MSG_COPY
    let mut text = Vec::new();
    let mtype = mq::receive_announced(&mut buf, wanted, max_len, &mut text, &deadline)?; // msgrcv
    say!(
        deadline,
        "received {} bytes of type {mtype} from queue {key}",
        text.len()
    );
    let out = mq::cli::printable(looked, &text, mtype, key, &args.print);
    out.notice
        .inspect(|notice| report::warn(format_args!("{notice}")));
    report::print_payload(&out.bytes)?; // write(1)
    out.error.map_or(Ok(()), Err)?;
    let removal = mq::cli::remove_unless_kept(queue, args.read.keep)?; // msgctl(IPC_RMID)
    match mq::cli::removal_line(key, removal) {
        (true, line) => report::warn(format_args!("{line}")),
        (false, line) => say!(deadline, "{line}"),
    }
    Ok(())
}

/// `--serve`: the queue, created if missing; then per request `msgrcv(1)`, `write(1)` and
/// `msgsnd(reply_type)`; at the end `msgctl(IPC_RMID)` once every answer was read.
fn serve(args: &Args) -> anyhow::Result<()> {
    let deadline = args.common.start();
    report::check_stdout()?; // before anything is taken: nowhere to print it
    let mut server = Server::open(&args.key, args.mode.mode)?; // openat(O_CREAT), msgget
    let (key, requests) = (server.queue.key, args.serve.requests);
    say!(deadline, "serving requests of type 1 on queue {key}");
    for _ in mq::serve::counting(requests) {
        let request = server.take(&step_deadline(&args.common, requests == 0))?; // msgrcv(1)
        let line = &request.line;
        let what = format_args!("the request {}", line.escape_ascii());
        report::print_taken(line, what)?; // write(1)
        let (pid, len) = (request.reply_type, request.answer.len());
        match server.answer(&request, &step_deadline(&args.common, false))? {
            true => say!(deadline, "answered {len} bytes as type {pid}"), // msgsnd(pid)
            false => report::warn(format_args!(
                "queue {key} stayed full: type {pid} not answered"
            )),
        }
    }
    let line = server.finish(args.read.keep, &step_deadline(&args.common, false))?;
    say!(deadline, "{line}"); // msgctl(IPC_RMID)
    Ok(())
}
