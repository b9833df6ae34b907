//! `unserialize()`, as PHP 8.2's `php_var_unserialize` reads: every value kind `serialize()`
//! writes, references resolved as PHP resolves them, nesting up to PHP's 4096 levels.
//!
//! Two passes, neither recursive, so nesting costs heap, not stack:
//! 1. the bytes become a graph: every value a node, and `r:n`/`R:n` an edge to the node that
//!    the n-th numbered place holds at that moment (PHP numbers places, not values: a key
//!    written twice replaces the value in its place, and a later reference sees the new one);
//! 2. the graph becomes a [`Value`] tree: a node reached twice is copied (within a budget), a
//!    node reached again from inside itself becomes [`Value::Recursion`].

use std::collections::HashMap;
use std::fmt;

use super::serialize::{ArrayKey, Value};

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

/// PHP's `unserialize_max_depth` default: arrays with entries and objects nest up to this deep.
pub const MAX_DEPTH: usize = 4096;

/// What references may add by copying shared values, in nodes (a string counts one per 16
/// bytes): a few bytes of `r:` can otherwise ask for exponentially many copies.
const MAX_COPIED: usize = 1 << 18;

/// `Serializable` payloads parsed (for their numbering) inside one another, at most: deeper
/// ones are kept unread, as they cost a stack frame each.
const MAX_PAYLOAD_NESTING: usize = 8;

/// `unserialize($bytes)`: reads exactly one value and returns it with the number of bytes it
/// used. Trailing bytes are the caller's business (PHP's `shm_get_var` and `msg_receive` ignore
/// them).
pub fn unserialize(bytes: &[u8]) -> Result<(Value, usize), UnserializeError> {
    let mut graph = Graph::default();
    let mut parser = Parser {
        bytes,
        pos: 0,
        graph: &mut graph,
        depth: 0,
        payload_nesting: 0,
    };
    parser.parse(Place::Top)?;
    let used = parser.pos;
    let root = graph.root.ok_or_else(|| UnserializeError {
        offset: used,
        reason: "no value".into(),
    })?;
    let value = graph
        .tree(root, bytes.len().saturating_add(MAX_COPIED))
        .map_err(|reason| UnserializeError {
            offset: used,
            reason,
        })?;
    Ok((value, used))
}

/// How many places PHP numbers while reading a `Serializable` payload, assuming the class's
/// `unserialize()` calls `unserialize()` on it as its `serialize()` called `serialize()` (the
/// usual way): PHP numbers those on, and later `r:n` count them. A payload that is not one
/// serialized value numbers nothing.
pub(crate) fn slots_in_payload(payload: &[u8]) -> usize {
    let mut graph = Graph::default();
    let mut parser = Parser {
        bytes: payload,
        pos: 0,
        graph: &mut graph,
        depth: 0,
        payload_nesting: 1,
    };
    match parser.parse(Place::Top) {
        Ok(()) => graph.slots.len(),
        Err(_) => 0,
    }
}

type NodeId = usize;

/// Stands for an entry whose value is still being read.
const UNSET: NodeId = usize::MAX;

#[derive(Debug)]
enum Node {
    Leaf(Value),
    Array(Vec<(ArrayKey, NodeId)>),
    Object {
        class: Vec<u8>,
        properties: Vec<(ArrayKey, NodeId)>,
    },
}

/// A place a value sits in, as PHP numbers them for `r:n`/`R:n`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    Top,
    Entry {
        node: NodeId,
        index: usize,
    },
    /// The value a `Serializable` payload holds, read for its numbering.
    Payload(NodeId),
}

#[derive(Default)]
struct Graph {
    nodes: Vec<Node>,
    /// The numbered places, in order: `r:1` is `slots[0]`.
    slots: Vec<Place>,
    root: Option<NodeId>,
    payloads: HashMap<NodeId, NodeId>,
}

impl Graph {
    fn get(&self, place: Place) -> Option<NodeId> {
        let id = match place {
            Place::Top => self.root?,
            Place::Payload(node) => *self.payloads.get(&node)?,
            Place::Entry { node, index } => match self.nodes.get(node)? {
                Node::Array(entries)
                | Node::Object {
                    properties: entries,
                    ..
                } => entries.get(index)?.1,
                Node::Leaf(_) => return None,
            },
        };
        (id != UNSET).then_some(id)
    }

    fn set(&mut self, place: Place, id: NodeId) {
        match place {
            Place::Top => self.root = Some(id),
            Place::Payload(node) => {
                self.payloads.insert(node, id);
            }
            Place::Entry { node, index } => {
                let slot = match self.nodes.get_mut(node) {
                    Some(
                        Node::Array(entries)
                        | Node::Object {
                            properties: entries,
                            ..
                        },
                    ) => entries.get_mut(index).map(|e| &mut e.1),
                    _ => None,
                };
                if let Some(slot) = slot {
                    *slot = id;
                }
            }
        }
    }

    fn add(&mut self, node: Node) -> NodeId {
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    fn is_object(&self, id: NodeId) -> bool {
        match self.nodes.get(id) {
            Some(Node::Object { .. }) => true,
            Some(Node::Leaf(value)) => value.is_object(),
            _ => false,
        }
    }

    /// The value tree under `root`, copying what is shared while the copies cost at most
    /// `budget` nodes in all.
    fn tree(&self, root: NodeId, budget: usize) -> Result<Value, String> {
        struct Open {
            node: NodeId,
            next: usize,
            built: Built,
        }
        enum Built {
            Array(Vec<(ArrayKey, Value)>),
            Object(Vec<u8>, Vec<(ArrayKey, Value)>),
        }
        const CLOSED: usize = usize::MAX;
        // The depth at which each node is open (an ancestor of where we are), or CLOSED.
        let mut open_at = vec![CLOSED; self.nodes.len()];
        let mut spent = 0usize;
        let mut stack: Vec<Open> = Vec::new();
        let mut child = Some(root);
        let mut done: Option<Value> = None;
        loop {
            if let Some(id) = child.take() {
                let depth = stack.len();
                let node = self.nodes.get(id).ok_or("a reference to nothing")?;
                let value = if open_at[id] != CLOSED {
                    Some(Value::Recursion {
                        up: depth - open_at[id],
                    })
                } else {
                    spent += 1;
                    match node {
                        Node::Leaf(value) => {
                            if let Value::String(bytes) | Value::Custom { payload: bytes, .. } =
                                value
                            {
                                spent += bytes.len() / 16;
                            }
                            Some(value.clone())
                        }
                        Node::Array(entries) if entries.is_empty() => Some(Value::Array(vec![])),
                        Node::Array(entries) => {
                            stack.push(Open {
                                node: id,
                                next: 0,
                                built: Built::Array(Vec::with_capacity(entries.len())),
                            });
                            None
                        }
                        Node::Object { class, properties } => {
                            stack.push(Open {
                                node: id,
                                next: 0,
                                built: Built::Object(
                                    class.clone(),
                                    Vec::with_capacity(properties.len()),
                                ),
                            });
                            None
                        }
                    }
                };
                if spent > budget {
                    return Err(format!(
                        "references to shared values would copy more than {MAX_COPIED} values"
                    ));
                }
                match value {
                    Some(value) => done = Some(value),
                    None if depth >= MAX_DEPTH => {
                        return Err(format!(
                            "references nest the value deeper than {MAX_DEPTH} levels"
                        ));
                    }
                    None => open_at[id] = depth,
                }
            }
            let Some(top) = stack.last_mut() else {
                return done.ok_or_else(|| "no value".to_string());
            };
            let node = &self.nodes[top.node];
            if let Some(value) = done.take() {
                let keys = match node {
                    Node::Array(entries)
                    | Node::Object {
                        properties: entries,
                        ..
                    } => entries,
                    Node::Leaf(_) => return Err("a reference to nothing".into()),
                };
                let key = keys[top.next - 1].0.clone();
                if let ArrayKey::String(bytes) = &key {
                    spent += bytes.len() / 16;
                }
                match &mut top.built {
                    Built::Array(built) | Built::Object(_, built) => built.push((key, value)),
                }
            }
            let next = match node {
                Node::Array(entries)
                | Node::Object {
                    properties: entries,
                    ..
                } => entries.get(top.next).map(|e| e.1),
                Node::Leaf(_) => None,
            };
            if next.is_some() {
                top.next += 1;
                child = next;
            } else if let Some(closed) = stack.pop() {
                open_at[closed.node] = CLOSED;
                done = Some(match closed.built {
                    Built::Array(entries) => Value::Array(entries),
                    Built::Object(class, properties) => Value::Object { class, properties },
                });
            }
        }
    }
}

/// An array or object whose entries are being read.
struct Frame {
    node: NodeId,
    remaining: usize,
    /// Where each key already read sits: a key written again replaces the value in its place.
    positions: HashMap<ArrayKey, usize>,
    is_object: bool,
}

struct Parser<'a, 'g> {
    bytes: &'a [u8],
    pos: usize,
    graph: &'g mut Graph,
    /// Arrays with entries and objects open, as PHP counts them against its limit.
    depth: usize,
    payload_nesting: usize,
}

impl Parser<'_, '_> {
    fn fail<T>(&self, reason: impl Into<String>) -> Result<T, UnserializeError> {
        Err(UnserializeError {
            offset: self.pos,
            reason: reason.into(),
        })
    }

    fn expect(&mut self, literal: &[u8]) -> Result<(), UnserializeError> {
        let rest = &self.bytes[self.pos..];
        if rest.starts_with(literal) {
            self.pos += literal.len();
            Ok(())
        } else if rest.len() < literal.len() && literal.starts_with(rest) {
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

    /// A length or count: PHP takes plain digits here (a sign only in an object's count and a
    /// `Serializable` payload's length, `signed`).
    fn length_until(&mut self, end: u8, signed: bool) -> Result<usize, UnserializeError> {
        let start = self.pos;
        if !signed && matches!(self.bytes.get(self.pos), Some(b'+' | b'-')) {
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

    /// `len` bytes, which the data must hold.
    fn take(&mut self, len: usize, what: &str) -> Result<&[u8], UnserializeError> {
        let available = self.bytes.len() - self.pos;
        if len > available {
            return self.fail(format!(
                "{what} of {len} bytes runs past the end of the data ({available} bytes left)"
            ));
        }
        let body = &self.bytes[self.pos..self.pos + len];
        self.pos += len;
        Ok(body)
    }

    /// `len:"bytes"` then `after`.
    fn quoted(&mut self, what: &str, after: &[u8]) -> Result<Vec<u8>, UnserializeError> {
        let len = self.length_until(b':', false)?;
        self.expect(b"\"")?;
        let body = self.take(len, what)?.to_vec();
        self.expect(&[&b"\""[..], after].concat())?;
        Ok(body)
    }

    /// `len:"Class"`: a name PHP accepts as a class (no check that the class exists: we have
    /// none).
    fn class_name(&mut self, after: &[u8]) -> Result<Vec<u8>, UnserializeError> {
        let start = self.pos;
        let name = self.quoted("class name", after)?;
        if !valid_class_name(&name) {
            return Err(UnserializeError {
                offset: start,
                reason: format!("`{}` is not a class name", name.escape_ascii()),
            });
        }
        Ok(name)
    }

    /// Reads one value into `place` and every value inside it.
    fn parse(&mut self, place: Place) -> Result<(), UnserializeError> {
        let mut frames: Vec<Frame> = Vec::new();
        let mut place = place;
        loop {
            if let Some(frame) = self.value(place)? {
                frames.push(frame);
            }
            place = loop {
                let Some(frame) = frames.last_mut() else {
                    return Ok(());
                };
                if frame.remaining == 0 {
                    self.expect(b"}")?;
                    self.depth -= 1;
                    frames.pop();
                    continue;
                }
                frame.remaining -= 1;
                break self.key(frame)?;
            };
        }
    }

    /// An entry's key, and the place its value goes.
    fn key(&mut self, frame: &mut Frame) -> Result<Place, UnserializeError> {
        let key = match self.bytes.get(self.pos) {
            Some(b'i') => {
                self.expect(b"i:")?;
                ArrayKey::Int(self.int_until(b';')?)
            }
            Some(b's') => {
                self.expect(b"s:")?;
                let name = self.quoted("string", b";")?;
                // An object keeps a numeric string name as a string (`(object)['7' => 1]` has
                // property "7"), an array makes it an int key.
                if frame.is_object {
                    ArrayKey::String(name)
                } else {
                    ArrayKey::from_php_string(name)
                }
            }
            Some(_) if frame.is_object => return self.fail("a property name is i: or s:"),
            Some(_) => return self.fail("an array key is i: or s:"),
            None => return self.fail("unexpected end of data"),
        };
        // PHP names an object's property by a string: i:7 and s:1:"7" are the same one.
        let identity = match (&key, frame.is_object) {
            (ArrayKey::Int(n), true) => ArrayKey::String(n.to_string().into_bytes()),
            _ => key.clone(),
        };
        let index = match frame.positions.get(&identity) {
            Some(&index) => index,
            None => {
                let entries = match &mut self.graph.nodes[frame.node] {
                    Node::Array(entries)
                    | Node::Object {
                        properties: entries,
                        ..
                    } => entries,
                    Node::Leaf(_) => {
                        return self.fail("internal: a key for something that has none");
                    }
                };
                entries.push((key, UNSET));
                frame.positions.insert(identity, entries.len() - 1);
                entries.len() - 1
            }
        };
        Ok(Place::Entry {
            node: frame.node,
            index,
        })
    }

    /// Reads the value at the cursor into `place`; an array or object with entries to read is
    /// returned as a frame.
    fn value(&mut self, place: Place) -> Result<Option<Frame>, UnserializeError> {
        let start = self.pos;
        let Some(&tag) = self.bytes.get(self.pos) else {
            return self.fail("unexpected end of data");
        };
        if tag == b'N' {
            self.expect(b"N;")?;
            self.leaf(place, Value::Null);
            return Ok(None);
        }
        self.expect(&[tag, b':'])?;
        let value = match tag {
            b'b' => match self.until(b';')? {
                b"0" => Value::Bool(false),
                b"1" => Value::Bool(true),
                _ => return self.fail("a bool is b:0; or b:1;"),
            },
            b'i' => Value::Int(self.int_until(b';')?),
            b'd' => Value::Float(self.float_until_semicolon()?),
            b's' => Value::String(self.quoted("string", b";")?),
            b'E' => {
                let name = self.quoted("enum case name", b";")?;
                let Some(colon) = name.iter().position(|&b| b == b':') else {
                    self.pos = start;
                    return self.fail("an enum case is E:len:\"Class:Case\";");
                };
                let (class, case) = (&name[..colon], &name[colon + 1..]);
                // PHP looks the enum and its case up: a name no declaration can have is none.
                if !declarable(class, true) || !declarable(case, false) {
                    self.pos = start;
                    return self.fail(format!(
                        "`{}` is not an enum case name",
                        name.escape_ascii()
                    ));
                }
                Value::Enum {
                    class: class.to_vec(),
                    case: case.to_vec(),
                }
            }
            b'C' => return self.custom(place).map(|()| None),
            b'a' => return self.array(place),
            b'O' => return self.object(place).map(Some),
            b'r' | b'R' => return self.reference(place, tag == b'r').map(|()| None),
            other => {
                self.pos = start;
                return self.fail(format!("unknown type tag `{}`", other.escape_ascii()));
            }
        };
        self.leaf(place, value);
        Ok(None)
    }

    fn leaf(&mut self, place: Place, value: Value) {
        let id = self.graph.add(Node::Leaf(value));
        self.graph.set(place, id);
        self.graph.slots.push(place);
    }

    fn enter(&mut self) -> Result<(), UnserializeError> {
        if self.depth >= MAX_DEPTH {
            return self.fail(format!(
                "arrays and objects nested deeper than {MAX_DEPTH}, PHP's limit"
            ));
        }
        self.depth += 1;
        Ok(())
    }

    /// A count the data cannot hold is a lie (every entry takes at least 4 bytes: `i:0;N;` is
    /// 6), and must not make us allocate.
    fn check_count(&self, count: usize, what: &str) -> Result<(), UnserializeError> {
        let left = self.bytes.len() - self.pos;
        if count > left / 4 {
            return self.fail(format!(
                "{what} claims {count} entries, the data holds fewer"
            ));
        }
        Ok(())
    }

    fn array(&mut self, place: Place) -> Result<Option<Frame>, UnserializeError> {
        let count = self.length_until(b':', false)?;
        self.expect(b"{")?;
        self.check_count(count, "array")?;
        if count == 0 {
            // PHP counts only arrays with entries against its depth limit.
            self.expect(b"}")?;
            self.leaf(place, Value::Array(vec![]));
            return Ok(None);
        }
        self.enter()?;
        let id = self.graph.add(Node::Array(Vec::new()));
        self.graph.set(place, id);
        self.graph.slots.push(place);
        Ok(Some(Frame {
            node: id,
            remaining: count,
            positions: HashMap::new(),
            is_object: false,
        }))
    }

    fn object(&mut self, place: Place) -> Result<Frame, UnserializeError> {
        let class = self.class_name(b":")?;
        let count = self.length_until(b':', true)?;
        self.expect(b"{")?;
        self.check_count(count, "object")?;
        self.enter()?;
        let id = self.graph.add(Node::Object {
            class,
            properties: Vec::new(),
        });
        self.graph.set(place, id);
        self.graph.slots.push(place);
        Ok(Frame {
            node: id,
            remaining: count,
            positions: HashMap::new(),
            is_object: true,
        })
    }

    /// `C:len:"Class":len:{payload}`.
    fn custom(&mut self, place: Place) -> Result<(), UnserializeError> {
        let class = self.class_name(b":")?;
        let len = self.length_until(b':', true)?;
        self.expect(b"{")?;
        let payload_at = self.pos;
        let payload = self.take(len, "Serializable payload")?.to_vec();
        self.expect(b"}")?;
        let id = self.graph.add(Node::Leaf(Value::Custom { class, payload }));
        self.graph.set(place, id);
        self.graph.slots.push(place);
        if self.payload_nesting < MAX_PAYLOAD_NESTING {
            self.read_payload(id, payload_at, len);
        }
        Ok(())
    }

    /// Numbers what the payload holds, as PHP does when the class's `unserialize()` calls
    /// `unserialize()`; a payload that is not a serialized value numbers nothing.
    fn read_payload(&mut self, id: NodeId, at: usize, len: usize) {
        let (nodes, slots) = (self.graph.nodes.len(), self.graph.slots.len());
        let mut inner = Parser {
            bytes: &self.bytes[at..at + len],
            pos: 0,
            graph: &mut *self.graph,
            depth: self.depth,
            payload_nesting: self.payload_nesting + 1,
        };
        if inner.parse(Place::Payload(id)).is_err() {
            self.graph.nodes.truncate(nodes);
            self.graph.slots.truncate(slots);
            self.graph.payloads.remove(&id);
            self.graph.payloads.retain(|&from, _| from < nodes);
        }
    }

    /// `r:n;` (the same object as the n-th place holds) or `R:n;` (a PHP reference to the n-th
    /// place): PHP refuses a number it has not given, a place referring to itself, and `r:` to
    /// anything but an object.
    fn reference(&mut self, place: Place, object: bool) -> Result<(), UnserializeError> {
        let start = self.pos - 2;
        let n = self.length_until(b';', false)?;
        let target = n
            .checked_sub(1)
            .and_then(|at| self.graph.slots.get(at))
            .copied();
        let fail = |reason: String| {
            Err(UnserializeError {
                offset: start,
                reason,
            })
        };
        let Some(target) = target else {
            return fail(format!(
                "a reference to value {n}, which comes later or not at all"
            ));
        };
        if target == place {
            return fail(format!("value {n} is a reference to itself"));
        }
        let Some(id) = self.graph.get(target) else {
            return fail(format!("a reference to value {n}, which holds nothing"));
        };
        if object && !self.graph.is_object(id) {
            return fail(format!(
                "r:{n} refers to a value that is not an object (R: refers to any)"
            ));
        }
        self.graph.set(place, id);
        // PHP numbers the place an `r:` fills, not one an `R:` fills.
        if object {
            self.graph.slots.push(place);
        }
        Ok(())
    }
}

/// A name a declaration can have: identifiers (`[A-Za-z_\x80-\xff][A-Za-z0-9_\x80-\xff]*`),
/// separated by `\` if `qualified`.
fn declarable(name: &[u8], qualified: bool) -> bool {
    let identifier = |part: &[u8]| {
        part.first()
            .is_some_and(|&b| b.is_ascii_alphabetic() || b == b'_' || b >= 0x80)
            && part
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80)
    };
    if qualified {
        name.split(|&b| b == b'\\').all(identifier)
    } else {
        identifier(name)
    }
}

/// What PHP's `zend_is_valid_class_name` accepts, less a leading NUL or `\`.
fn valid_class_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name[0] != b'\\'
        && name
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'\\' || b >= 0x80)
}
