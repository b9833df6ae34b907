//! The PHP-value options every queue writer shares (`--raw`, `--int`, `--float`, `--bool`,
//! `--null`), the readers' (`--raw`, `--format`) and how a reader prints an unserialized value:
//! one definition for the SysV queue (`mq`) and the queue on Redis Streams (`broker`), which
//! carry the same bytes.

use clap::{Args, ValueEnum};

use super::{JsonFlags, Value};

/// What the writer sends instead of the serialized message (`--help`'s "PHP values").
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = crate::runtime::cli::heading::PHP_VALUES)]
pub struct ValueArgs {
    /// Send the message's bytes as they are (PHP's msg_send with $serialize = false).
    #[arg(long)]
    pub raw: bool,

    /// Send this integer instead, serialized as PHP does (`i:42;`).
    #[arg(
        long,
        value_name = "N",
        allow_negative_numbers = true,
        conflicts_with = "raw"
    )]
    pub int: Option<i64>,

    /// Send this float instead, serialized as PHP does (`d:2.5;`); INF, -INF and NAN too.
    #[arg(
        long,
        value_name = "X",
        allow_hyphen_values = true,
        conflicts_with = "raw"
    )]
    pub float: Option<f64>,

    /// Send this boolean instead, serialized as PHP does (`b:1;`).
    #[arg(long, value_name = "true|false", conflicts_with = "raw")]
    pub bool: Option<bool>,

    /// Send null instead, serialized as PHP does (`N;`).
    #[arg(long, conflicts_with = "raw")]
    pub null: bool,
}

impl ValueArgs {
    /// The value `--int`, `--float`, `--bool` or `--null` ask for; `None`: the message.
    pub fn value(&self) -> Option<Value> {
        match (self.int, self.float, self.bool) {
            (Some(n), _, _) => Some(Value::Int(n)),
            (_, Some(x), _) => Some(Value::Float(x)),
            (_, _, Some(b)) => Some(Value::Bool(b)),
            _ => self.null.then_some(Value::Null),
        }
    }
}

/// How a queue reader prints (`--help`'s "PHP values").
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = crate::runtime::cli::heading::PHP_VALUES)]
pub struct PrintArgs {
    /// Print the message's bytes as they are, for a writer that sent --raw.
    #[arg(long)]
    pub raw: bool,

    /// How to print the unserialized value.
    #[arg(long, value_enum, default_value_t = Format::Echo, conflicts_with = "raw")]
    pub format: Format,
}

/// How the reader prints the unserialized value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// As PHP's `echo` prints it: strings as they are, true as 1, false and null as nothing.
    Echo,
    /// As JSON, as PHP's `json_encode($value)` writes it (default flags: `\/`, non-ASCII as
    /// \uXXXX).
    Json,
    /// As `json_encode($value, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE)` writes it.
    JsonUnescaped,
}

/// A message as the reader prints it.
#[derive(Debug)]
pub struct Printed {
    pub bytes: Vec<u8>,
    /// An array printed as PHP's `echo` does: `Array`, with PHP's notice.
    pub array_echoed: bool,
}

impl Format {
    /// `value` printed this way; the error says why PHP would not print it either.
    pub fn print(self, value: &Value) -> Result<Printed, String> {
        let bytes = match self {
            Format::Echo => value.echo().map_err(|why| why.to_string())?,
            Format::Json | Format::JsonUnescaped => value
                .to_json_with(if self == Format::JsonUnescaped {
                    JsonFlags::UNESCAPED
                } else {
                    JsonFlags::DEFAULT
                })
                .map(String::into_bytes)
                .map_err(|why| format!("as JSON: {why}"))?,
        };
        Ok(Printed {
            bytes,
            array_echoed: self == Format::Echo && matches!(value, Value::Array(_)),
        })
    }
}
