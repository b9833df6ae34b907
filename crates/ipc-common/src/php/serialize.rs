//! PHP's values and the `serialize()` format that PHP's IPC functions carry them in.
//!
//! | value                     | bytes                                        |
//! |---------------------------|----------------------------------------------|
//! | null                      | `N;`                                         |
//! | bool                      | `b:1;`                                       |
//! | int                       | `i:-42;`                                     |
//! | float                     | `d:0.1;`                                     |
//! | string                    | `s:5:"hello";` (raw bytes)                   |
//! | array                     | `a:1:{i:0;s:1:"x";}`                         |
//! | object                    | `O:8:"stdClass":1:{s:1:"a";i:1;}`            |
//! | `Serializable` object     | `C:3:"Foo":5:{hello}` (the class's own bytes)|
//! | enum case                 | `E:11:"Suit:Hearts";`                        |
//! | the same object again     | `r:2;` (the 2nd value written)               |
//! | a PHP reference (`&$x`)   | `R:2;`                                       |
//!
//! [`unserialize`](super::unserialize) resolves `r:` and `R:` into copies of what they refer to,
//! and a reference to a value that contains it into [`Value::Recursion`].

use super::{float, unserialize};

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
    /// An object with its properties in order, names as PHP mangles them: `name` public,
    /// `\0*\0name` protected, `\0Class\0name` private (see [`unmangle`]). For a class with
    /// `__serialize`, the properties are the array that method returned, int keys included
    /// (`i:0;`); PHP names an object's property by the string of such an int.
    Object {
        class: Vec<u8>,
        properties: Vec<(ArrayKey, Value)>,
    },
    /// An object of a class implementing `Serializable`: only the class's own `unserialize()`
    /// can read `payload`, which is kept as it came.
    Custom {
        class: Vec<u8>,
        payload: Vec<u8>,
    },
    /// An enum case (`Suit::Hearts`): `serialize()` carries its name, not a backed enum's value.
    Enum {
        class: Vec<u8>,
        case: Vec<u8>,
    },
    /// Where PHP's value refers back to an array or object that contains it (`$a['me'] = &$a`,
    /// `$node->parent = $tree`): the container `up` levels above this one (1 is the array or
    /// object holding this entry). A tree cannot hold the cycle itself.
    Recursion {
        up: usize,
    },
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

/// Who may see a property, from PHP's mangling of its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Visibility<'a> {
    Public,
    Protected,
    /// Private to the named class.
    Private(&'a [u8]),
}

/// A property's visibility and plain name: `\0*\0b` is protected `b`, `\0P\0c` private `c` of
/// `P`; a name that does not start with NUL is public. A malformed mangled name (no second NUL)
/// is taken as public, whole.
pub fn unmangle(name: &[u8]) -> (Visibility<'_>, &[u8]) {
    let Some(rest) = name.strip_prefix(b"\0") else {
        return (Visibility::Public, name);
    };
    match rest.iter().position(|&b| b == 0) {
        Some(1) if rest[0] == b'*' => (Visibility::Protected, &rest[2..]),
        Some(end) => (Visibility::Private(&rest[..end]), &rest[end + 1..]),
        None => (Visibility::Public, name),
    }
}

impl Value {
    /// The class of an object, `Serializable` object or enum case (PHP's `get_class`).
    pub fn class_name(&self) -> Option<&[u8]> {
        match self {
            Value::Object { class, .. }
            | Value::Custom { class, .. }
            | Value::Enum { class, .. } => Some(class),
            _ => None,
        }
    }

    pub(crate) fn is_object(&self) -> bool {
        self.class_name().is_some()
    }
}

/// `serialize($value)`. A value that went through [`unserialize`](super::unserialize) comes
/// out as PHP wrote it, but for objects shared between several places, which are written out
/// again at each (as PHP reads them back: equal, no longer the same object).
pub fn serialize(value: &Value) -> Vec<u8> {
    let mut writer = Writer::default();
    // A stack of what is left to write rather than recursion: nesting costs heap, not stack.
    let mut tasks = vec![Task::Value(value)];
    while let Some(task) = tasks.pop() {
        match task {
            Task::Value(value) => writer.value(value, &mut tasks),
            Task::Key(ArrayKey::Int(i)) => {
                writer.out.extend_from_slice(format!("i:{i};").as_bytes());
            }
            Task::Key(ArrayKey::String(s)) => write_string(&mut writer.out, s),
            Task::Close => {
                writer.open.pop();
                writer.out.push(b'}');
            }
        }
    }
    writer.out
}

enum Task<'a> {
    Value(&'a Value),
    Key(&'a ArrayKey),
    /// The `}` of an array or object.
    Close,
}

/// PHP numbers every value it writes (but `R:`), so that `r:n`/`R:n` can name the n-th.
#[derive(Default)]
struct Writer {
    out: Vec<u8>,
    written: usize,
    /// The number of each array or object being written, and whether it is an object.
    open: Vec<(usize, bool)>,
}

impl Writer {
    /// Writes `value`, or its start with what is left of it pushed onto `tasks`.
    fn value<'a>(&mut self, value: &'a Value, tasks: &mut Vec<Task<'a>>) {
        if let Value::Recursion { up } = value {
            self.recursion(*up);
            return;
        }
        self.written += 1;
        let out = &mut self.out;
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
                self.open.push((self.written, false));
                tasks.push(Task::Close);
                for (key, item) in entries.iter().rev() {
                    tasks.push(Task::Value(item));
                    tasks.push(Task::Key(key));
                }
            }
            Value::Object { class, properties } => {
                write_class(out, b'O', class);
                out.extend_from_slice(format!(":{}:{{", properties.len()).as_bytes());
                self.open.push((self.written, true));
                tasks.push(Task::Close);
                for (name, item) in properties.iter().rev() {
                    tasks.push(Task::Value(item));
                    tasks.push(Task::Key(name));
                }
            }
            Value::Custom { class, payload } => {
                write_class(out, b'C', class);
                out.extend_from_slice(format!(":{}:{{", payload.len()).as_bytes());
                out.extend_from_slice(payload);
                out.push(b'}');
                // The class's serialize() calls serialize() itself, which numbers on.
                self.written += unserialize::slots_in_payload(payload);
            }
            Value::Enum { class, case } => {
                let name_len = class.len() + 1 + case.len();
                out.extend_from_slice(format!("E:{name_len}:\"").as_bytes());
                out.extend_from_slice(class);
                out.push(b':');
                out.extend_from_slice(case);
                out.extend_from_slice(b"\";");
            }
            Value::Recursion { .. } => {}
        }
    }

    /// `r:n;` back to an enclosing object, `R:n;` to an enclosing array (as a PHP reference).
    /// One that points above the outermost value cannot come from `unserialize` and is
    /// written as null.
    fn recursion(&mut self, up: usize) {
        let target = self
            .open
            .len()
            .checked_sub(up)
            .filter(|_| up > 0)
            .and_then(|at| self.open.get(at));
        match target {
            Some(&(number, true)) => {
                self.written += 1;
                self.out
                    .extend_from_slice(format!("r:{number};").as_bytes());
            }
            Some(&(number, false)) => self
                .out
                .extend_from_slice(format!("R:{number};").as_bytes()),
            None => {
                self.written += 1;
                self.out.extend_from_slice(b"N;");
            }
        }
    }
}

fn write_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(format!("s:{}:\"", bytes.len()).as_bytes());
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\";");
}

fn write_class(out: &mut Vec<u8>, tag: u8, class: &[u8]) {
    out.extend_from_slice(format!("{}:{}:\"", tag as char, class.len()).as_bytes());
    out.extend_from_slice(class);
    out.push(b'"');
}
