//! The binaries' option groups (flattened into their `Args`, each under its `--help` heading)
//! and the steps of `run()` that are more than one call: the binaries keep only the blog's steps.

use std::time::Duration;

use clap::Args;
use clap::builder::TypedValueParser;
use ipc_common::php::options::ValueArgs;
use ipc_common::php::{self, Value};
use ipc_common::runtime::cli::{MessageArgs, MessageLimit};
use ipc_common::runtime::wait::Deadline;

use crate::{DEFAULT_GROUP, DeadLetter, Group, MESSAGE, REDIS_MAX_BULK};

/// `--help`'s heading of the consumer group's options.
const GROUP: &str = "Consumer group (at least once)";

/// What `broker-writer` sends besides the message (`--help`'s "Message").
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Message")]
pub struct WriteArgs {
    /// The message type (the SysV mtype), sent as the entry's `type` field.
    #[arg(long = "type", value_name = "N", default_value = "1", env = "IPC_BROKER_TYPE",
        hide_env = true, value_parser = clap::value_parser!(i64).range(1..))]
    pub mtype: i64,

    /// Refuse a message (as sent, serialized or not) over N bytes [default: Redis's own limit
    /// on a string, 512 MiB].
    #[arg(long, value_name = "N", default_value_t = REDIS_MAX_BULK, hide_default_value = true,
        value_parser = clap::value_parser!(u64).range(1..=REDIS_MAX_BULK as u64).map(|n| n as usize))]
    pub max_size: usize,
}

impl WriteArgs {
    /// The `body` field: the value serialized as PHP's `msg_send` does, or the message's bytes
    /// as they are with `--raw`; refused before connecting when over `--max-size`.
    pub fn body(
        &self,
        message: &MessageArgs,
        value: &ValueArgs,
        deadline: &Deadline,
    ) -> anyhow::Result<Vec<u8>> {
        let limit = MessageLimit {
            bytes: self.max_size,
            why: format!("--max-size, {REDIS_MAX_BULK} by default: Redis's proto-max-bulk-len")
                .into(),
        };
        let body = match value.value() {
            Some(value) => php::serialize(&value),
            None => {
                let bytes = message.payload(MESSAGE, limit, deadline)?;
                match value.raw {
                    true => bytes,
                    false => php::serialize(&Value::String(bytes)),
                }
            }
        };
        if body.len() > self.max_size {
            anyhow::bail!(
                "the message is {} bytes as sent (serialized: {}), over --max-size {}: send less",
                body.len(),
                !value.raw,
                self.max_size
            );
        }
        Ok(body)
    }
}

/// Where and how much `broker-reader` takes (`--help`'s consumer group heading).
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = GROUP)]
pub struct ReadArgs {
    /// The consumer group: readers in one group share the messages, each message goes to one.
    #[arg(long, value_name = "NAME", default_value = DEFAULT_GROUP, env = "IPC_BROKER_GROUP",
        hide_env = true)]
    pub group: String,

    /// This reader's name in the group [default: HOST-PID].
    #[arg(long, value_name = "NAME", default_value_t = default_consumer(),
        hide_default_value = true, env = "IPC_BROKER_CONSUMER", hide_env = true)]
    pub consumer: String,

    /// Take over a message another reader received but did not acknowledge once it has been
    /// pending this long (a reader that died); 0 takes any pending message at once.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = parse_secs)]
    pub claim_after: Duration,

    /// Move a message no reader could print (not one of ours, not PHP-serialized, over
    /// --max-size) to the dead-letter stream once Redis has delivered it N times, and
    /// acknowledge it, so it no longer blocks every reader; then take the next. Below N it stays
    /// pending and the reader fails. 0: never move it.
    #[arg(long, value_name = "N", default_value = "3")]
    pub max_deliveries: u64,

    /// The dead-letter stream: messages moved there keep their id and fields [default:
    /// STREAM:dead].
    #[arg(long, value_name = "KEY")]
    pub dead_letter: Option<String>,

    /// Print at most N bytes per message [default: Redis's limit, 512 MiB]; a longer message is
    /// not acknowledged and stays pending.
    #[arg(long, value_name = "N", default_value_t = REDIS_MAX_BULK, hide_default_value = true,
        help_heading = "Message",
        value_parser = clap::value_parser!(u64).range(1..=REDIS_MAX_BULK as u64).map(|n| n as usize))]
    pub max_size: usize,
}

impl ReadArgs {
    /// The reader's place in `stream`.
    pub fn on<'a>(&'a self, stream: &'a str) -> Group<'a> {
        Group {
            stream,
            group: &self.group,
            consumer: &self.consumer,
            claim_after: self.claim_after,
        }
    }

    /// Where the messages nobody can print go, for `stream`.
    pub fn dead_letter(&self, stream: &str) -> DeadLetter {
        DeadLetter {
            key: self
                .dead_letter
                .clone()
                .unwrap_or_else(|| format!("{stream}:dead")),
            max_deliveries: self.max_deliveries,
        }
    }
}

/// A consumer name of our own: host and process id, as unique as the group needs.
pub fn default_consumer() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into());
    format!("{host}-{}", std::process::id())
}

/// `--claim-after SECS`'s parser.
pub fn parse_secs(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds"))?;
    if !(0.0..=1e9).contains(&secs) {
        return Err(format!("`{text}` is out of range: 0 to 1e9 seconds"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_after_parses_seconds() {
        assert_eq!(parse_secs("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_secs("0.25").unwrap(), Duration::from_millis(250));
        assert!(
            parse_secs("-1").is_err() && parse_secs("NaN").is_err() && parse_secs("1e10").is_err()
        );
    }
}
