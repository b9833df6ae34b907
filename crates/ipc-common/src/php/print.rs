//! A [`Value`] printed as PHP prints it: `echo $value;` and `json_encode($value)`.

use std::fmt;

use super::float;
use super::serialize::{ArrayKey, Value};

/// `json_encode`'s default `$depth`: arrays and objects nest at most this deep.
pub const JSON_MAX_DEPTH: usize = 512;

/// The `json_encode` flags [`Value::to_json_with`] can match. Every other flag is off (PHP's
/// default): `<`, `>`, `&`, `'` stay as they are, U+2028 and U+2029 are always escaped
/// (`JSON_UNESCAPED_LINE_TERMINATORS` is off), floats lose a `.0` (`JSON_PRESERVE_ZERO_FRACTION`
/// is off).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JsonFlags {
    /// `JSON_UNESCAPED_SLASHES`: `/` as it is rather than `\/`.
    pub unescaped_slashes: bool,
    /// `JSON_UNESCAPED_UNICODE`: non-ASCII as UTF-8 rather than `\u00e9` (surrogate pairs
    /// above U+FFFF).
    pub unescaped_unicode: bool,
}

impl JsonFlags {
    /// `json_encode($value)`.
    pub const DEFAULT: JsonFlags = JsonFlags {
        unescaped_slashes: false,
        unescaped_unicode: false,
    };
    /// `json_encode($value, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE)`.
    pub const UNESCAPED: JsonFlags = JsonFlags {
        unescaped_slashes: true,
        unescaped_unicode: true,
    };
}

/// Why a value cannot be printed as PHP would print it; where PHP fails too, the text says so
/// in PHP's words.
#[derive(Clone, Debug, PartialEq)]
pub enum PrintError {
    /// `echo` of an object or enum case: PHP throws this Error (we cannot call a
    /// `__toString` we do not have).
    NotAString { class: String },
    /// `echo` of a [`Value::Recursion`] on its own: it is a pointer into a value, not one.
    NotAValue,
    /// JSON of INF, -INF or NAN.
    NotFinite(f64),
    /// JSON of a string that is not UTF-8.
    NotUtf8 { len: usize },
    /// JSON nested deeper than [`JSON_MAX_DEPTH`].
    TooDeep,
    /// JSON of a value that contains itself.
    Recursion,
    /// JSON of an enum case: `serialize()` does not carry a backed enum's value.
    Enum { class: String, case: String },
    /// JSON of a `Serializable` object: its properties are in a payload only its class reads.
    Custom { class: String, len: usize },
}

impl fmt::Display for PrintError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrintError::NotAString { class } => write!(
                f,
                "Object of class {class} could not be converted to string (PHP's echo throws \
                 this Error too; --format json shows the object)"
            ),
            PrintError::NotAValue => write!(
                f,
                "a reference back to an enclosing array or object is not a value on its own"
            ),
            PrintError::NotFinite(value) => write!(
                f,
                "{} cannot be written as JSON (PHP's json_encode fails too: Inf and NaN \
                 cannot be JSON encoded)",
                float::serialize_repr(*value)
            ),
            PrintError::NotUtf8 { len } => write!(
                f,
                "a {len}-byte string is not UTF-8 and cannot be written as JSON (PHP's \
                 json_encode fails too: Malformed UTF-8 characters)"
            ),
            PrintError::TooDeep => write!(
                f,
                "arrays and objects nested deeper than {JSON_MAX_DEPTH} cannot be written as \
                 JSON (PHP's json_encode fails too: Maximum stack depth exceeded)"
            ),
            PrintError::Recursion => write!(
                f,
                "the value contains itself and cannot be written as JSON (PHP's json_encode \
                 fails too: Recursion detected)"
            ),
            PrintError::Enum { class, case } => write!(
                f,
                "enum case {class}::{case} cannot be written as JSON: json_encode writes a \
                 backed enum's value, which only the enum's declaration knows (serialize() \
                 carries the case name), and refuses a pure enum (Non-backed enums have no \
                 default serialization)"
            ),
            PrintError::Custom { class, len } => write!(
                f,
                "an object of class {class} cannot be written as JSON: it implements \
                 Serializable, and its properties are in a {len}-byte payload only the class \
                 can read"
            ),
        }
    }
}

impl std::error::Error for PrintError {}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

impl Value {
    /// The bytes `echo $value;` prints: strings as they are, ints in decimal, `true` as `1`,
    /// `false` and null as nothing, floats with PHP's 14 significant digits, arrays as `Array`
    /// (PHP warns "Array to string conversion": the caller decides whether to). Objects and
    /// enum cases are an error, as in PHP (which would call a `__toString` we do not have).
    pub fn echo(&self) -> Result<Vec<u8>, PrintError> {
        Ok(match self {
            Value::Null | Value::Bool(false) => Vec::new(),
            Value::Bool(true) => b"1".to_vec(),
            Value::Int(i) => i.to_string().into_bytes(),
            Value::Float(f) => float::echo_repr(*f).into_bytes(),
            Value::String(bytes) => bytes.clone(),
            Value::Array(_) => b"Array".to_vec(),
            Value::Object { class, .. }
            | Value::Custom { class, .. }
            | Value::Enum { class, .. } => {
                return Err(PrintError::NotAString {
                    class: lossy(class),
                });
            }
            Value::Recursion { .. } => return Err(PrintError::NotAValue),
        })
    }

    /// `json_encode($value)` with PHP's default flags (see [`JsonFlags`]): numbers spelled as
    /// PHP spells them (`1`, `-0`, `1.0e+17`), `/` as `\/`, non-ASCII as `\u00e9`; a list (keys
    /// 0, 1, 2, ...) becomes a JSON array, any other array an object; an object its public
    /// properties. Where PHP's `json_encode` fails (INF, NAN, strings that are not UTF-8,
    /// nesting deeper than 512, a value that contains itself, a pure enum) this fails too, and
    /// so it does where we lack what PHP knows (a backed enum's value, a `Serializable`'s
    /// properties).
    pub fn to_json(&self) -> Result<String, PrintError> {
        self.to_json_with(JsonFlags::DEFAULT)
    }

    /// `json_encode($value, $flags)`, for the flags [`JsonFlags`] has.
    pub fn to_json_with(&self, flags: JsonFlags) -> Result<String, PrintError> {
        let mut out = String::new();
        write_json(self, &mut out, flags, 0)?;
        Ok(out)
    }
}

fn write_json(
    value: &Value,
    out: &mut String,
    flags: JsonFlags,
    depth: usize,
) -> Result<(), PrintError> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => out.push_str(&i.to_string()),
        Value::Float(f) if !f.is_finite() => return Err(PrintError::NotFinite(*f)),
        Value::Float(f) => out.push_str(&float::serialize_repr(*f).replace('E', "e")),
        Value::String(bytes) => json_string(bytes, out, flags)?,
        Value::Array(entries) => {
            if depth >= JSON_MAX_DEPTH {
                return Err(PrintError::TooDeep);
            }
            let is_list = entries
                .iter()
                .enumerate()
                .all(|(i, (key, _))| *key == ArrayKey::Int(i as i64));
            out.push(if is_list { '[' } else { '{' });
            for (i, (key, item)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                if !is_list {
                    json_key(key, out, flags)?;
                    out.push(':');
                }
                write_json(item, out, flags, depth + 1)?;
            }
            out.push(if is_list { ']' } else { '}' });
        }
        Value::Object { properties, .. } => {
            if depth >= JSON_MAX_DEPTH {
                return Err(PrintError::TooDeep);
            }
            out.push('{');
            // Protected and private properties (mangled names start with NUL) are not shown.
            let public = properties.iter().filter(|(name, _)| match name {
                ArrayKey::String(name) => !name.starts_with(b"\0"),
                ArrayKey::Int(_) => true,
            });
            for (i, (name, item)) in public.enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_key(name, out, flags)?;
                out.push(':');
                write_json(item, out, flags, depth + 1)?;
            }
            out.push('}');
        }
        Value::Enum { class, case } => {
            return Err(PrintError::Enum {
                class: lossy(class),
                case: lossy(case),
            });
        }
        Value::Custom { class, payload } => {
            return Err(PrintError::Custom {
                class: lossy(class),
                len: payload.len(),
            });
        }
        Value::Recursion { .. } => return Err(PrintError::Recursion),
    }
    Ok(())
}

fn json_key(key: &ArrayKey, out: &mut String, flags: JsonFlags) -> Result<(), PrintError> {
    match key {
        ArrayKey::Int(n) => {
            out.push('"');
            out.push_str(&n.to_string());
            out.push('"');
            Ok(())
        }
        ArrayKey::String(s) => json_string(s, out, flags),
    }
}

/// PHP's `php_json_escape_string`.
fn json_string(bytes: &[u8], out: &mut String, flags: JsonFlags) -> Result<(), PrintError> {
    let text = std::str::from_utf8(bytes).map_err(|_| PrintError::NotUtf8 { len: bytes.len() })?;
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '/' if !flags.unescaped_slashes => out.push_str("\\/"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c < ' ' => push_u_escape(out, c as u16),
            // JavaScript takes these two as line ends; PHP escapes them unless
            // JSON_UNESCAPED_LINE_TERMINATORS.
            '\u{2028}' | '\u{2029}' => push_u_escape(out, c as u16),
            c if c.is_ascii() || flags.unescaped_unicode => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    push_u_escape(out, *unit);
                }
            }
        }
    }
    out.push('"');
    Ok(())
}

fn push_u_escape(out: &mut String, unit: u16) {
    out.push_str(&format!("\\u{unit:04x}"));
}
