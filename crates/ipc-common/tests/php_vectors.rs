//! `ipc_common::php` against vectors captured from real PHP 8.2 by
//! `tests/php/capture-vectors.php` (run it again to refresh `tests/php_vectors/*.json`):
//! `serialize()`, `unserialize()`, `echo` and `json_encode()` (default flags, and
//! `JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE`) of every kind of value (objects, enums,
//! `Serializable`, shared objects, references and cycles included), nesting at PHP's limits, the
//! whole sysvshm segment after each `shm_put_var`/`shm_remove_var`, and the mtext `msg_send`
//! queues.
//! Byte-compatibility stays tested where PHP is not installed.
//!
//! Each test checks every vector and then reports all mismatches at once, PHP's bytes beside ours.

use std::path::Path;

use ipc_common::php::{self, ArrayKey, Value, sysvshm};
use serde_json::Value as Json;

fn fixture(name: &str) -> Json {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/php_vectors")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("read {}: {err}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|err| panic!("parse {}: {err}", path.display()))
}

fn entries<'a>(json: &'a Json, field: &str) -> &'a Vec<Json> {
    json[field]
        .as_array()
        .unwrap_or_else(|| panic!("no {field} list"))
}

fn hex(text: &Json) -> Vec<u8> {
    let text = text.as_str().expect("a hex string");
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex digits"))
        .collect()
}

/// Rebuilds a value from the fixture's exact description (see capture-vectors.php).
fn value(desc: &Json) -> Value {
    let int = |n: &Json| n.as_i64().expect("an i64");
    match desc[0].as_str().expect("a value kind") {
        "null" => Value::Null,
        "bool" => Value::Bool(desc[1].as_bool().expect("a bool")),
        "int" => Value::Int(int(&desc[1])),
        "float" => {
            let bits = u64::from_str_radix(desc[1].as_str().expect("hex bits"), 16);
            Value::Float(f64::from_bits(bits.expect("64 hex bits")))
        }
        "string" => Value::String(hex(&desc[1])),
        "array" => Value::Array(entries_of(&desc[1])),
        "object" => Value::Object {
            class: hex(&desc[1]),
            properties: entries_of(&desc[2]),
        },
        "custom" => Value::Custom {
            class: hex(&desc[1]),
            payload: hex(&desc[2]),
        },
        "enum" => Value::Enum {
            class: hex(&desc[1]),
            case: hex(&desc[2]),
        },
        "recursion" => Value::Recursion {
            up: desc[1].as_u64().expect("levels up") as usize,
        },
        other => panic!("unknown value kind {other}"),
    }
}

/// `[[key, value], ...]` with keys `["int", n]` or `["string", "<hex>"]`.
fn entries_of(desc: &Json) -> Vec<(ArrayKey, Value)> {
    desc.as_array()
        .expect("entries")
        .iter()
        .map(|entry| {
            let key = match entry[0][0].as_str() {
                Some("int") => ArrayKey::Int(entry[0][1].as_i64().expect("an i64")),
                Some("string") => ArrayKey::String(hex(&entry[0][1])),
                other => panic!("bad key kind {other:?}"),
            };
            (key, value(&entry[1]))
        })
        .collect()
}

/// Equality that tells -0.0 from 0.0 and takes any NaN for NaN, as a byte format must.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Float(x), Value::Float(y)) => {
            (x.is_nan() && y.is_nan()) || x.to_bits() == y.to_bits()
        }
        (Value::Array(xs), Value::Array(ys)) => {
            xs.len() == ys.len()
                && xs
                    .iter()
                    .zip(ys)
                    .all(|((kx, vx), (ky, vy))| kx == ky && same(vx, vy))
        }
        (
            Value::Object {
                class: cx,
                properties: xs,
            },
            Value::Object {
                class: cy,
                properties: ys,
            },
        ) => {
            // PHP names properties by strings: i:5 and s:1:"5" name the same one.
            let name = |key: &ArrayKey| match key {
                ArrayKey::Int(n) => n.to_string().into_bytes(),
                ArrayKey::String(s) => s.clone(),
            };
            cx == cy
                && xs.len() == ys.len()
                && xs
                    .iter()
                    .zip(ys)
                    .all(|((kx, vx), (ky, vy))| name(kx) == name(ky) && same(vx, vy))
        }
        _ => a == b,
    }
}

fn show(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}

#[track_caller]
fn assert_none_failed(what: &str, failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{} {what} vector(s) differ from PHP:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn serialize_writes_what_php_writes() {
    let vectors = fixture("values.json");
    let mut failures = Vec::new();
    for vector in entries(&vectors, "values") {
        let expected = value(&vector["value"]);
        let ours = php::serialize(&expected);
        let theirs = hex(&vector["serialized"]);
        // PHP writes an object it meets again as r:n (and a PHP reference as R:n), we write it
        // again: what PHP reads back from ours must be the same value.
        if vector["shared"] == true {
            match php::unserialize(&ours) {
                Ok((back, used)) if same(&back, &expected) && used == ours.len() => {}
                other => failures.push(format!(
                    "  serialize({}) gave {}, which reads back as {other:?}",
                    vector["php"],
                    show(&ours)
                )),
            }
            continue;
        }
        if ours != theirs {
            failures.push(format!(
                "  serialize({}): PHP {} ours {}",
                vector["php"],
                show(&theirs),
                show(&ours)
            ));
        }
    }
    assert_none_failed("serialize", failures);
}

#[test]
fn unserialize_reads_what_php_writes() {
    let vectors = fixture("values.json");
    let mut failures = Vec::new();
    for vector in entries(&vectors, "values") {
        let bytes = hex(&vector["serialized"]);
        let expected = value(&vector["value"]);
        match php::unserialize(&bytes) {
            Ok((got, used)) if same(&got, &expected) && used == bytes.len() => {}
            other => failures.push(format!(
                "  unserialize({}) of {}: {other:?}, expected {expected:?} using {} bytes",
                vector["php"],
                show(&bytes),
                bytes.len()
            )),
        }
    }
    assert_none_failed("unserialize", failures);
}

/// `echo` prints PHP's bytes, or fails where PHP's `echo` throws, saying what PHP says.
fn check_echo(what: &Json, value: &Value, vector: &Json, failures: &mut Vec<String>) {
    let ours = value.echo();
    let agrees = match (&vector["echo"], &ours) {
        (Json::Null, Err(err)) => {
            let theirs = vector["echo_error"].as_str().expect("echo_error");
            err.to_string().contains(theirs)
        }
        (Json::String(_), Ok(ours)) => *ours == hex(&vector["echo"]),
        _ => false,
    };
    if !agrees {
        failures.push(format!(
            "  echo {what}: PHP {} {}, ours {:?}",
            vector["echo"],
            vector["echo_error"],
            ours.map(|bytes| show(&bytes))
        ));
    }
}

#[test]
fn echo_prints_what_php_echoes() {
    let vectors = fixture("values.json");
    let mut failures = Vec::new();
    for vector in entries(&vectors, "values") {
        check_echo(
            &vector["php"],
            &value(&vector["value"]),
            vector,
            &mut failures,
        );
    }
    assert_none_failed("echo", failures);
}

/// Where `--format json` knowingly parts from `json_encode` on what PHP's `serialize()` writes,
/// because the serialized bytes lack what PHP knows from the class declaration. A difference
/// that goes away fails the test until its line is removed here.
const JSON_DIFFERENCES: &[(&str, &str)] = &[
    (
        "new Tagged",
        "__unserialize decides what the object keeps; we show what __serialize wrote",
    ),
    (
        "new Legacy",
        "a Serializable payload only its class reads: we refuse it",
    ),
    (
        "[new Legacy, new Legacy]",
        "a Serializable payload only its class reads: we refuse it",
    ),
    (
        "(function () { $o = new stdClass; $l = new Legacy; return [$l, $o, $o, $l]; })()",
        "a Serializable payload only its class reads: we refuse it",
    ),
    (
        "Suit::Hearts",
        "serialize() carries the case, not the backed value: we refuse it",
    ),
    (
        "Level::Low",
        "serialize() carries the case, not the backed value: we refuse it",
    ),
    (
        "['suit' => Suit::Spades]",
        "serialize() carries the case, not the backed value: we refuse it",
    ),
];

/// `json_encode($v)` and `json_encode($v, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE)`:
/// where PHP refuses (INF, NAN, non-UTF-8, recursion, depth, pure enums) we refuse too, in
/// PHP's words. Returns whether ours differs from PHP's.
fn check_json(what: &Json, value: &Value, vector: &Json, failures: &mut Vec<String>) -> bool {
    let mut differs = false;
    for (field, flags) in [
        ("json", php::JsonFlags::DEFAULT),
        ("json_unescaped", php::JsonFlags::UNESCAPED),
    ] {
        let ours = value.to_json_with(flags);
        let agrees = match (&vector[field], &ours) {
            (Json::Null, Err(err)) => match vector["json_error"].as_str() {
                Some(theirs) => err
                    .to_string()
                    .contains(theirs.split(',').next().expect("a message")),
                None => false,
            },
            (Json::String(theirs), Ok(ours)) => theirs == ours,
            _ => false,
        };
        if !agrees {
            differs = true;
            failures.push(format!(
                "  {field} of {what}: PHP {} {}, ours {ours:?}",
                vector[field], vector["json_error"]
            ));
        }
    }
    differs
}

#[test]
fn json_matches_php_json_encode() {
    let vectors = fixture("values.json");
    let mut failures = Vec::new();
    for vector in entries(&vectors, "values") {
        let php = vector["php"].as_str().expect("php source");
        let mut mismatches = Vec::new();
        let differs = check_json(
            &vector["php"],
            &value(&vector["value"]),
            vector,
            &mut mismatches,
        );
        let known = JSON_DIFFERENCES.iter().any(|(source, _)| *source == php);
        if differs && !known {
            failures.extend(mismatches);
        } else if !differs && known {
            failures.push(format!(
                "  json_encode({php}) now agrees with PHP: remove it from JSON_DIFFERENCES"
            ));
        }
    }
    assert_none_failed("json", failures);
}

/// Nesting at PHP's limits: unserialize() takes 4096 arrays with entries and objects, no more;
/// json_encode() writes 512 arrays and objects, no more.
#[test]
fn nesting_goes_as_deep_as_php_and_no_deeper() {
    let vectors = fixture("values.json");
    let mut failures = Vec::new();
    for vector in entries(&vectors, "nesting") {
        let part = |field: &str| vector[field].as_str().expect("a string").to_string();
        let levels = vector["levels"].as_u64().expect("levels") as usize;
        let bytes = part("prefix").repeat(levels) + &part("leaf") + &part("suffix").repeat(levels);
        let what = Json::String(format!("{} x {levels} + {}", part("prefix"), part("leaf")));
        match (
            php::unserialize(bytes.as_bytes()),
            vector["unserialized"] == true,
        ) {
            (Err(_), false) => {}
            (Ok((value, used)), true) => {
                if used != bytes.len() || php::serialize(&value) != bytes.as_bytes() {
                    failures.push(format!("  {what}: does not serialize back to PHP's bytes"));
                }
                check_echo(&what, &value, vector, &mut failures);
                check_json(&what, &value, vector, &mut failures);
            }
            (Ok(_), false) => failures.push(format!("  {what}: PHP refuses it, we read it")),
            (Err(err), true) => failures.push(format!("  {what}: PHP reads it, we refuse: {err}")),
        }
    }
    assert_none_failed("nesting", failures);
}

/// Replays each scenario on a fresh segment image and compares the WHOLE image with PHP's after
/// every step (header, records, padding and the stale bytes a removal leaves past the end), then
/// reads every variable back out of PHP's own image.
#[test]
fn sysvshm_segments_match_php_byte_for_byte() {
    let vectors = fixture("sysvshm.json");
    let mut failures = Vec::new();
    for scenario in entries(&vectors, "scenarios") {
        let name = scenario["name"].as_str().expect("a name");
        let size = scenario["size"].as_u64().expect("a size") as usize;
        let mut image = vec![0u8; size];
        sysvshm::initialize(&mut image, size).expect("initialize");
        let mut live: Vec<(i64, Value)> = Vec::new();
        for (n, step) in entries(scenario, "steps").iter().enumerate() {
            let key = step["key"].as_i64().expect("an i64 key");
            live.retain(|(k, _)| *k != key);
            if step["op"] == "put" {
                let value = value(&step["value"]);
                if let Err(err) = sysvshm::put(&mut image, key, &php::serialize(&value)) {
                    failures.push(format!("  {name} step {n}: put {key}: {err}"));
                }
                live.push((key, value));
            } else if !sysvshm::remove(&mut image, key).expect("remove") {
                failures.push(format!("  {name} step {n}: remove {key} found nothing"));
            }
            let php_image = hex(&step["segment"]);
            if image != php_image {
                let at = image.iter().zip(&php_image).position(|(a, b)| a != b);
                failures.push(format!(
                    "  {name} step {n} ({} {key}): images differ first at byte {at:?}",
                    step["op"]
                ));
                image = php_image.clone();
            }
            for (key, expected) in &live {
                match sysvshm::get(&php_image, *key).map(|bytes| bytes.map(php::unserialize)) {
                    Ok(Some(Ok((got, _)))) if same(&got, expected) => {}
                    other => failures.push(format!(
                        "  {name} step {n}: get {key} from PHP's image gave {other:?}, expected {expected:?}"
                    )),
                }
            }
        }
    }
    assert_none_failed("sysvshm", failures);
}

/// php-formats.md: a fresh 1024-byte segment holds one string of at most 943 bytes.
#[test]
fn the_largest_string_php_stores_is_the_largest_we_allow() {
    assert_eq!(sysvshm::max_string_len(1024), 943);
    let mut image = vec![0u8; 1024];
    sysvshm::initialize(&mut image, 1024).unwrap();
    let too_big = php::serialize(&Value::String(vec![b'x'; 944]));
    assert!(matches!(
        sysvshm::put(&mut image, 1, &too_big),
        Err(sysvshm::StoreError::NoSpace { .. })
    ));
}

#[test]
fn queue_mtext_is_what_msg_send_queues() {
    let vectors = fixture("mq.json");
    let mut failures = Vec::new();
    for vector in entries(&vectors, "messages") {
        let expected = value(&vector["value"]);
        let mtext = hex(&vector["mtext"]);
        let ours = php::serialize(&expected);
        if ours != mtext {
            failures.push(format!(
                "  msg_send({}): PHP queued {} ours {}",
                vector["php"],
                show(&mtext),
                show(&ours)
            ));
        }
        match php::unserialize(&mtext) {
            Ok((got, _)) if same(&got, &expected) => {}
            other => failures.push(format!(
                "  msg_receive({}): {other:?}, expected {expected:?}",
                vector["php"]
            )),
        }
    }
    assert_none_failed("mq", failures);
}

/// Where `ipc_common::php::unserialize` knowingly parts from PHP on input `serialize()` never
/// writes, and why it is tolerable. A difference that goes away fails the test below until its
/// line is removed here, so the list only shrinks.
const KNOWN_DIFFERENCES: &[(&str, &str)] = &[
    (
        "i:9223372036854775808;",
        "PHP clamps an out-of-range int to PHP_INT_MAX; we refuse it",
    ),
    (
        "i:-9223372036854775809;",
        "PHP clamps an out-of-range int to PHP_INT_MIN; we refuse it",
    ),
    (
        "C:7:\"Unknown\":3:{abc}",
        "PHP, lacking the class, drops the payload (with a warning); we keep it",
    ),
    (
        "a:1:{i:0;R:1;}",
        "the same array containing itself: PHP's outermost array is not the reference, so it \
         shows the cycle one level later",
    ),
];

/// Inputs `serialize()` never writes, as a hand-made segment or queue message may hold them:
/// whatever PHP's `unserialize()` accepts we read as the same value, whatever it refuses we
/// refuse, but for [`KNOWN_DIFFERENCES`].
#[test]
fn unserialize_agrees_with_php_on_odd_input() {
    let vectors = fixture("unserialize.json");
    let mut failures = Vec::new();
    for vector in entries(&vectors, "inputs") {
        let input = vector["input"].as_str().expect("an input");
        let ours = php::unserialize(input.as_bytes());
        let agrees = match (&vector["value"], &ours) {
            (Json::Null, Err(_)) => true,
            (Json::Null, Ok(_)) | (_, Err(_)) => false,
            (php, Ok((value, _))) => same(value, &self::value(php)),
        };
        let known = KNOWN_DIFFERENCES.iter().any(|(odd, _)| *odd == input);
        if agrees && known {
            failures.push(format!(
                "  unserialize({input:?}) now agrees with PHP: remove it from KNOWN_DIFFERENCES"
            ));
        } else if !agrees && !known {
            let php = match &vector["value"] {
                Json::Null => "refused".to_string(),
                php => format!("{:?}", value(php)),
            };
            failures.push(format!(
                "  unserialize({input:?}): PHP {php}, ours {ours:?}"
            ));
        }
    }
    assert_none_failed("unserialize", failures);
}
