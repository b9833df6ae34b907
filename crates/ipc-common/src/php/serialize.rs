//! PHP's `serialize()` format for the values PHP's IPC functions carry: null, bool, int, float,
//! string and (nested) arrays.
//!
//! | value  | bytes                       |
//! |--------|-----------------------------|
//! | null   | `N;`                        |
//! | bool   | `b:1;`                      |
//! | int    | `i:-42;`                    |
//! | float  | `d:0.1;`                    |
//! | string | `s:5:"hello";` (raw bytes)  |
//! | array  | `a:1:{i:0;s:1:"x";}`        |

use std::collections::HashMap;
use std::fmt;

use super::float;

/// A PHP value as `serialize()` writes it.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// PHP strings are byte strings: not necessarily UTF-8.
    String(Vec<u8>),
    /// PHP arrays are ordered maps; order and keys are kept as serialized.
    Array(Vec<(ArrayKey, Value)>),
}

/// An array key: PHP keys are ints or byte strings.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ArrayKey {
    Int(i64),
    String(Vec<u8>),
}

impl ArrayKey {
    /// The key PHP makes of a string: a canonical decimal integer (`"7"`, `"-3"`, not `"07"`,
    /// `"+7"` or `"-0"`) becomes an int key, as `$a["7"]` is `$a[7]`.
    pub fn from_php_string(bytes: Vec<u8>) -> ArrayKey {
        let canonical = match bytes.as_slice() {
            [b'0'] => true,
            [b'-', b'1'..=b'9', rest @ ..] | [b'1'..=b'9', rest @ ..] => {
                rest.iter().all(u8::is_ascii_digit)
            }
            _ => false,
        };
        let int = canonical
            .then(|| std::str::from_utf8(&bytes).ok()?.parse::<i64>().ok())
            .flatten();
        match int {
            Some(n) => ArrayKey::Int(n),
            None => ArrayKey::String(bytes),
        }
    }
}

/// `serialize($value)`.
pub fn serialize(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_value(&mut out, value);
    out
}

fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"N;"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"b:1;" } else { b"b:0;" }),
        Value::Int(i) => out.extend_from_slice(format!("i:{i};").as_bytes()),
        Value::Float(f) => {
            out.extend_from_slice(format!("d:{};", float::serialize_repr(*f)).as_bytes());
        }
        Value::String(bytes) => write_string(out, bytes),
        Value::Array(entries) => {
            out.extend_from_slice(format!("a:{}:{{", entries.len()).as_bytes());
            for (key, item) in entries {
                match key {
                    ArrayKey::Int(i) => out.extend_from_slice(format!("i:{i};").as_bytes()),
                    ArrayKey::String(s) => write_string(out, s),
                }
                write_value(out, item);
            }
            out.push(b'}');
        }
    }
}

fn write_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(format!("s:{}:\"", bytes.len()).as_bytes());
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\";");
}

/// Why bytes are not a serialized PHP value; `offset` is where parsing stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnserializeError {
    pub offset: usize,
    pub reason: String,
}

impl fmt::Display for UnserializeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.reason, self.offset)
    }
}

impl std::error::Error for UnserializeError {}

/// Nesting PHP's own unserialize accepts by default is 4096; far more than IPC payloads need, and
/// each level costs us a stack frame, so we stop earlier.
const MAX_DEPTH: usize = 512;

/// `unserialize($bytes)`: reads exactly one value and returns it with the number of bytes it
/// used. Trailing bytes are the caller's business (PHP's `shm_get_var` and `msg_receive` ignore
/// them).
pub fn unserialize(bytes: &[u8]) -> Result<(Value, usize), UnserializeError> {
    let mut parser = Parser { bytes, pos: 0 };
    let value = parser.value(0)?;
    Ok((value, parser.pos))
}

struct Parser<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn fail<T>(&self, reason: impl Into<String>) -> Result<T, UnserializeError> {
        Err(UnserializeError {
            offset: self.pos,
            reason: reason.into(),
        })
    }

    fn expect(&mut self, literal: &[u8]) -> Result<(), UnserializeError> {
        if self.bytes[self.pos..].starts_with(literal) {
            self.pos += literal.len();
            Ok(())
        } else if self.pos + literal.len() > self.bytes.len()
            && literal.starts_with(&self.bytes[self.pos..])
        {
            self.fail("unexpected end of data")
        } else {
            self.fail(format!("expected `{}`", String::from_utf8_lossy(literal)))
        }
    }

    /// The bytes up to (not including) `end`, which is consumed.
    fn until(&mut self, end: u8) -> Result<&[u8], UnserializeError> {
        let rest = &self.bytes[self.pos..];
        match rest.iter().position(|&b| b == end) {
            Some(len) => {
                self.pos += len + 1;
                Ok(&rest[..len])
            }
            None => self.fail(format!("unterminated value: no `{}`", end as char)),
        }
    }

    fn int_until(&mut self, end: u8) -> Result<i64, UnserializeError> {
        let start = self.pos;
        let text = self.until(end)?;
        let digits = text.strip_prefix(b"+").unwrap_or(text);
        let valid = matches!(digits, [b'-', rest @ ..] | rest if !rest.is_empty() && rest.iter().all(u8::is_ascii_digit));
        let parsed = std::str::from_utf8(digits)
            .ok()
            .and_then(|s| s.parse().ok());
        match parsed.filter(|_| valid) {
            Some(n) => Ok(n),
            None => Err(UnserializeError {
                offset: start,
                reason: format!(
                    "`{}` is not an integer in range",
                    String::from_utf8_lossy(text)
                ),
            }),
        }
    }

    /// A length or count: PHP takes plain digits here, no sign.
    fn length_until(&mut self, end: u8) -> Result<usize, UnserializeError> {
        let start = self.pos;
        if self.bytes.get(self.pos) == Some(&b'+') {
            return self.fail("a length takes no sign");
        }
        let n = self.int_until(end)?;
        usize::try_from(n).map_err(|_| UnserializeError {
            offset: start,
            reason: format!("negative length {n}"),
        })
    }

    fn float_until_semicolon(&mut self) -> Result<f64, UnserializeError> {
        let start = self.pos;
        let text = self.until(b';')?;
        let special = match text {
            b"INF" => Some(f64::INFINITY),
            b"-INF" => Some(f64::NEG_INFINITY),
            b"NAN" => Some(f64::NAN),
            _ => None,
        };
        if let Some(value) = special {
            return Ok(value);
        }
        // PHP's grammar: [+-]? digits with an optional `.` and fraction, optional [eE][+-]?digits.
        let is_number_char = |b: &u8| b.is_ascii_digit() || b".eE+-".contains(b);
        let parsed = std::str::from_utf8(text)
            .ok()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| is_number_char(&b)))
            .filter(|s| s.bytes().any(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse::<f64>().ok());
        parsed.ok_or_else(|| UnserializeError {
            offset: start,
            reason: format!("`{}` is not a float", String::from_utf8_lossy(text)),
        })
    }

    fn string_body(&mut self) -> Result<Vec<u8>, UnserializeError> {
        let len = self.length_until(b':')?;
        self.expect(b"\"")?;
        let available = self.bytes.len() - self.pos;
        if len > available {
            return self.fail(format!(
                "string of {len} bytes runs past the end of the data ({available} bytes left)"
            ));
        }
        let body = self.bytes[self.pos..self.pos + len].to_vec();
        self.pos += len;
        self.expect(b"\";")?;
        Ok(body)
    }

    fn value(&mut self, depth: usize) -> Result<Value, UnserializeError> {
        let Some(&tag) = self.bytes.get(self.pos) else {
            return self.fail("unexpected end of data");
        };
        if tag == b'N' {
            self.expect(b"N;")?;
            return Ok(Value::Null);
        }
        self.expect(&[tag, b':'])?;
        match tag {
            b'b' => match self.until(b';')? {
                b"0" => Ok(Value::Bool(false)),
                b"1" => Ok(Value::Bool(true)),
                _ => self.fail("a bool is b:0; or b:1;"),
            },
            b'i' => self.int_until(b';').map(Value::Int),
            b'd' => self.float_until_semicolon().map(Value::Float),
            b's' => self.string_body().map(Value::String),
            b'a' => self.array(depth),
            b'O' | b'C' | b'E' => self.fail("objects and enums are not supported"),
            b'r' | b'R' => self.fail("references are not supported"),
            other => {
                self.pos -= 2;
                self.fail(format!("unknown type tag `{}`", other.escape_ascii()))
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value, UnserializeError> {
        if depth >= MAX_DEPTH {
            return self.fail(format!("arrays nested deeper than {MAX_DEPTH}"));
        }
        let count = self.length_until(b':')?;
        self.expect(b"{")?;
        // Every entry takes at least 4 bytes (`i:0;N;` is 6): a count the data cannot hold is a
        // lie, and must not make us allocate.
        let left = self.bytes.len() - self.pos;
        if count > left / 4 {
            return self.fail(format!(
                "array claims {count} entries, the data holds fewer"
            ));
        }
        let mut entries: Vec<(ArrayKey, Value)> = Vec::with_capacity(count);
        let mut positions: HashMap<ArrayKey, usize> = HashMap::with_capacity(count);
        for _ in 0..count {
            let key = match self.bytes.get(self.pos) {
                Some(b'i') => {
                    self.expect(b"i:")?;
                    ArrayKey::Int(self.int_until(b';')?)
                }
                Some(b's') => {
                    self.expect(b"s:")?;
                    ArrayKey::from_php_string(self.string_body()?)
                }
                Some(_) => return self.fail("an array key is i: or s:"),
                None => return self.fail("unexpected end of data"),
            };
            let value = self.value(depth + 1)?;
            // A repeated key overwrites the earlier value in its place, as assigning to a PHP
            // array does.
            match positions.get(&key) {
                Some(&at) => entries[at].1 = value,
                None => {
                    positions.insert(key.clone(), entries.len());
                    entries.push((key, value));
                }
            }
        }
        self.expect(b"}")?;
        Ok(Value::Array(entries))
    }
}

impl Value {
    /// The bytes `echo $value;` prints: strings as they are, ints in decimal, `true` as `1`,
    /// `false` and null as nothing, floats with PHP's 14 significant digits, arrays as `Array`.
    pub fn echo(&self) -> Vec<u8> {
        match self {
            Value::Null | Value::Bool(false) => Vec::new(),
            Value::Bool(true) => b"1".to_vec(),
            Value::Int(i) => i.to_string().into_bytes(),
            Value::Float(f) => float::echo_repr(*f).into_bytes(),
            Value::String(bytes) => bytes.clone(),
            Value::Array(_) => b"Array".to_vec(),
        }
    }

    /// The value as JSON, numbers spelled as PHP's `json_encode` spells them (`1`, `-0`,
    /// `1.0e+17`); a list (keys 0, 1, 2, ...) becomes a JSON array, any other array an object.
    /// JSON has no byte strings, INF or NAN: those are errors, as in PHP.
    pub fn to_json(&self) -> Result<String, String> {
        let mut out = String::new();
        self.write_json(&mut out)?;
        Ok(out)
    }

    fn write_json(&self, out: &mut String) -> Result<(), String> {
        match self {
            Value::Null => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Int(i) => out.push_str(&i.to_string()),
            Value::Float(f) if !f.is_finite() => {
                return Err(format!(
                    "{} cannot be written as JSON",
                    float::serialize_repr(*f)
                ));
            }
            Value::Float(f) => out.push_str(&float::serialize_repr(*f).replace('E', "e")),
            Value::String(bytes) => out.push_str(&json_string(bytes)?),
            Value::Array(entries) => {
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
                        let name = match key {
                            ArrayKey::Int(n) => n.to_string().into_bytes(),
                            ArrayKey::String(s) => s.clone(),
                        };
                        out.push_str(&json_string(&name)?);
                        out.push(':');
                    }
                    item.write_json(out)?;
                }
                out.push(if is_list { ']' } else { '}' });
            }
        }
        Ok(())
    }
}

fn json_string(bytes: &[u8]) -> Result<String, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| {
        format!(
            "a {}-byte string is not UTF-8 and cannot be written as JSON",
            bytes.len()
        )
    })?;
    Ok(serde_json::Value::from(text).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn s(text: &str) -> Value {
        Value::String(text.as_bytes().to_vec())
    }

    #[test]
    fn serializes_every_kind_as_php_does() {
        let nested = Value::Array(vec![
            (
                ArrayKey::String(b"x".to_vec()),
                Value::Array(vec![
                    (ArrayKey::Int(0), Value::Int(1)),
                    (ArrayKey::Int(1), Value::Bool(true)),
                    (ArrayKey::Int(2), Value::Null),
                    (ArrayKey::Int(3), Value::Float(1.5)),
                ]),
            ),
            (ArrayKey::Int(5), s("é")),
        ]);
        let cases: Vec<(Value, &[u8])> = vec![
            (
                s("Hello from Writer: Shared Memory"),
                b"s:32:\"Hello from Writer: Shared Memory\";",
            ),
            (Value::Int(-42), b"i:-42;"),
            (Value::Float(0.1), b"d:0.1;"),
            (Value::Bool(false), b"b:0;"),
            (Value::Null, b"N;"),
            (
                nested,
                "a:2:{s:1:\"x\";a:4:{i:0;i:1;i:1;b:1;i:2;N;i:3;d:1.5;}i:5;s:2:\"é\";}".as_bytes(),
            ),
            (Value::String(b"a\0\"b".to_vec()), b"s:4:\"a\0\"b\";"),
        ];
        for (value, php) in cases {
            assert_eq!(serialize(&value), php, "{value:?}");
            assert_eq!(unserialize(php), Ok((value, php.len())));
        }
    }

    #[test]
    fn unserialize_accepts_what_php_accepts() {
        assert_eq!(unserialize(b"i:+5;").unwrap().0, Value::Int(5));
        assert_eq!(unserialize(b"d:1E+2;").unwrap().0, Value::Float(100.0));
        assert_eq!(unserialize(b"d:-.5e-1;").unwrap().0, Value::Float(-0.05));
        assert_eq!(
            unserialize(b"d:-INF;").unwrap().0,
            Value::Float(f64::NEG_INFINITY)
        );
        assert_eq!(unserialize(b"s:3:\"abc\";trailing"), Ok((s("abc"), 10)));
    }

    #[test]
    fn unserialize_rejects_clearly() {
        for (bytes, reason) in [
            (&b"s:10:\"abc\";"[..], "runs past the end"),
            (b"s:-1:\"\";", "negative length"),
            (b"s:3:\"abc", "unexpected end of data"),
            (b"s:3:\"abcd\";", "expected `\";`"),
            (b"i:9223372036854775808;", "not an integer in range"),
            (b"i:;", "not an integer"),
            (b"i:5", "unterminated"),
            (b"b:2;", "b:0; or b:1;"),
            (b"d:1e;", "not a float"),
            (b"a:1000000:{}", "holds fewer"),
            (b"a:1:{d:1;N;}", "i: or s:"),
            (b"O:8:\"stdClass\":0:{}", "objects"),
            (b"x:1;", "unknown type tag"),
            (b"", "unexpected end of data"),
        ] {
            let err = unserialize(bytes).unwrap_err();
            assert!(
                err.to_string().contains(reason),
                "{:?}: {err}",
                bytes.escape_ascii().to_string()
            );
        }
        let deep = "a:1:{i:0;".repeat(MAX_DEPTH + 1);
        assert!(
            unserialize(deep.as_bytes())
                .unwrap_err()
                .reason
                .contains("nested deeper")
        );
    }

    #[test]
    fn arrays_get_phps_keys() {
        let (value, _) = unserialize(b"a:3:{s:1:\"7\";i:1;s:2:\"07\";i:2;i:7;i:3;}").unwrap();
        assert_eq!(
            value,
            Value::Array(vec![
                (ArrayKey::Int(7), Value::Int(3)),
                (ArrayKey::String(b"07".to_vec()), Value::Int(2)),
            ])
        );
        assert_eq!(
            ArrayKey::from_php_string(b"-0".to_vec()),
            ArrayKey::String(b"-0".to_vec())
        );
        assert_eq!(
            ArrayKey::from_php_string(b"-12".to_vec()),
            ArrayKey::Int(-12)
        );
        assert_eq!(
            ArrayKey::from_php_string(b"9223372036854775808".to_vec()),
            ArrayKey::String(b"9223372036854775808".to_vec())
        );
    }

    #[test]
    fn echoes_as_php_does() {
        assert_eq!(Value::Bool(true).echo(), b"1");
        assert_eq!(Value::Bool(false).echo(), b"");
        assert_eq!(Value::Null.echo(), b"");
        assert_eq!(Value::Float(0.1 + 0.2).echo(), b"0.3");
        assert_eq!(Value::Int(i64::MIN).echo(), b"-9223372036854775808");
        assert_eq!(Value::Array(vec![]).echo(), b"Array");
    }

    #[test]
    fn json_spells_numbers_as_php() {
        let value = Value::Array(vec![
            (ArrayKey::String(b"a".to_vec()), Value::Float(1e17)),
            (ArrayKey::Int(0), s("é/x")),
            (
                ArrayKey::String(b"l".to_vec()),
                Value::Array(vec![
                    (ArrayKey::Int(0), Value::Float(1.0)),
                    (ArrayKey::Int(1), Value::Float(-0.0)),
                ]),
            ),
            (ArrayKey::String(b"e".to_vec()), Value::Array(vec![])),
        ]);
        assert_eq!(
            value.to_json().unwrap(),
            r#"{"a":1.0e+17,"0":"é/x","l":[1,-0],"e":[]}"#
        );
        assert!(Value::Float(f64::NAN).to_json().is_err());
        assert!(
            Value::String(vec![0xff])
                .to_json()
                .unwrap_err()
                .contains("not UTF-8")
        );
    }

    fn any_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::Int),
            any::<f64>()
                .prop_filter("NAN != NAN", |f| !f.is_nan())
                .prop_map(Value::Float),
            proptest::collection::vec(any::<u8>(), 0..40).prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            let key = prop_oneof![
                any::<i64>().prop_map(ArrayKey::Int),
                proptest::collection::vec(any::<u8>(), 0..8).prop_map(ArrayKey::from_php_string),
            ];
            // PHP arrays have unique keys: a later duplicate would overwrite an earlier one.
            proptest::collection::vec((key, inner), 0..8).prop_map(|entries| {
                let mut seen = std::collections::HashSet::new();
                Value::Array(
                    entries
                        .into_iter()
                        .filter(|(k, _)| seen.insert(k.clone()))
                        .collect(),
                )
            })
        })
    }

    proptest! {
        #[test]
        fn serialize_round_trips(value in any_value()) {
            let bytes = serialize(&value);
            prop_assert_eq!(unserialize(&bytes), Ok((value, bytes.len())));
        }

        #[test]
        fn unserialize_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Ok((_, used)) = unserialize(&bytes) {
                prop_assert!(used <= bytes.len());
            }
        }

        #[test]
        fn unserialize_survives_mutated_values(value in any_value(), cut in any::<prop::sample::Index>(), byte in any::<u8>()) {
            let mut bytes = serialize(&value);
            if !bytes.is_empty() {
                let at = cut.index(bytes.len());
                bytes[at] = byte;
                let _ = unserialize(&bytes);
                let _ = unserialize(&bytes[..at]);
            }
        }
    }
}
