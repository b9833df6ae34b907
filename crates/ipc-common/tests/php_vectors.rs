//! `ipc_common::php` against vectors captured from real PHP 8.2 by
//! `tests/php/capture-vectors.php` (run it again to refresh `tests/php_vectors/*.json`):
//! `serialize()`, `unserialize()`, `echo` and `json_encode()` of every kind of value, the whole
//! sysvshm segment after each `shm_put_var`/`shm_remove_var`, and the mtext `msg_send` queues.
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
        "array" => Value::Array(
            desc[1]
                .as_array()
                .expect("array entries")
                .iter()
                .map(|entry| {
                    let key = match entry[0][0].as_str() {
                        Some("int") => ArrayKey::Int(int(&entry[0][1])),
                        Some("string") => ArrayKey::String(hex(&entry[0][1])),
                        other => panic!("bad array key kind {other:?}"),
                    };
                    (key, value(&entry[1]))
                })
                .collect(),
        ),
        other => panic!("unknown value kind {other}"),
    }
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
        let ours = php::serialize(&value(&vector["value"]));
        let theirs = hex(&vector["serialized"]);
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

#[test]
fn echo_prints_what_php_echoes() {
    let vectors = fixture("values.json");
    let mut failures = Vec::new();
    for vector in entries(&vectors, "values") {
        let ours = value(&vector["value"]).echo().unwrap_or_default();
        let theirs = hex(&vector["echo"]);
        if ours != theirs {
            failures.push(format!(
                "  echo {}: PHP {:?} ours {:?}",
                vector["php"],
                show(&theirs),
                show(&ours)
            ));
        }
    }
    assert_none_failed("echo", failures);
}

/// PHP's `json_encode($v, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE)`, what
/// `--format json` mirrors; where PHP refuses (INF, NAN, non-UTF-8 strings) we must refuse too.
#[test]
fn json_matches_php_json_encode() {
    let vectors = fixture("values.json");
    let mut failures = Vec::new();
    for vector in entries(&vectors, "values") {
        let ours = value(&vector["value"]).to_json_with(php::JsonFlags::UNESCAPED);
        let agrees = match (&vector["json"], &ours) {
            (Json::Null, Err(_)) => true,
            (Json::String(theirs), Ok(ours)) => theirs == ours,
            _ => false,
        };
        if !agrees {
            failures.push(format!(
                "  json_encode({}): PHP {} ours {ours:?}",
                vector["php"], vector["json"]
            ));
        }
    }
    assert_none_failed("json", failures);
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
