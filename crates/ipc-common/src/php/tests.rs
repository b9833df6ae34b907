//! The php module's own tests; `tests/php_vectors.rs` checks it against real PHP.

use super::unserialize::MAX_DEPTH;
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
        (b"s:-1:\"\";", "takes no sign"),
        (b"s:3:\"abc", "unexpected end of data"),
        (b"s:3:\"abcd\";", "expected `\";`"),
        (b"i:9223372036854775808;", "not an integer in range"),
        (b"i:;", "not an integer"),
        (b"i:5", "unterminated"),
        (b"b:2;", "b:0; or b:1;"),
        (b"d:1e;", "not a float"),
        (b"a:1000000:{}", "holds fewer"),
        (b"a:1:{d:1;N;}", "i: or s:"),
        (b"O:0:\"\":0:{}", "not a class name"),
        (b"O:3:\"a-b\":0:{}", "not a class name"),
        (b"E:4:\"Suit\";", "Class:Case"),
        (b"R:1;", "comes later or not at all"),
        (b"a:1:{i:0;R:2;}", "comes later or not at all"),
        (b"a:2:{i:0;i:1;i:0;R:2;}", "reference to itself"),
        (b"a:2:{i:0;a:0:{}i:1;r:2;}", "not an object"),
        (b"C:3:\"Foo\":5:{abc}", "runs past the end"),
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
    let deep = "a:1:{i:0;".repeat(MAX_DEPTH + 1) + "N;" + &"}".repeat(MAX_DEPTH + 1);
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
    assert_eq!(Value::Bool(true).echo().unwrap(), b"1");
    assert_eq!(Value::Bool(false).echo().unwrap(), b"");
    assert_eq!(Value::Null.echo().unwrap(), b"");
    assert_eq!(Value::Float(0.1 + 0.2).echo().unwrap(), b"0.3");
    assert_eq!(
        Value::Int(i64::MIN).echo().unwrap(),
        b"-9223372036854775808"
    );
    assert_eq!(Value::Array(vec![]).echo().unwrap(), b"Array");
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
        r#"{"a":1.0e+17,"0":"\u00e9\/x","l":[1,-0],"e":[]}"#
    );
    assert!(Value::Float(f64::NAN).to_json().is_err());
    assert!(
        Value::String(vec![0xff])
            .to_json()
            .unwrap_err()
            .to_string()
            .contains("not UTF-8")
    );
}

fn class_name() -> impl Strategy<Value = Vec<u8>> {
    "[A-Za-z_][A-Za-z0-9_]{0,5}(\\\\[A-Za-z_][A-Za-z0-9_]{0,5})?".prop_map(String::into_bytes)
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
        (class_name(), "[A-Za-z_][A-Za-z0-9_]{0,5}").prop_map(|(class, case)| Value::Enum {
            class,
            case: case.into_bytes()
        }),
        (class_name(), proptest::collection::vec(any::<u8>(), 0..20))
            .prop_map(|(class, payload)| Value::Custom { class, payload }),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        let key = prop_oneof![
            any::<i64>().prop_map(ArrayKey::Int),
            proptest::collection::vec(any::<u8>(), 0..8).prop_map(ArrayKey::from_php_string),
        ];
        // PHP arrays have unique keys: a later duplicate would overwrite an earlier one.
        let array = proptest::collection::vec((key, inner.clone()), 0..8).prop_map(|entries| {
            let mut seen = std::collections::HashSet::new();
            Value::Array(
                entries
                    .into_iter()
                    .filter(|(k, _)| seen.insert(k.clone()))
                    .collect(),
            )
        });
        let name = prop_oneof![
            "[a-z0-9]{0,4}".prop_map(|n| ArrayKey::String(n.into_bytes())),
            any::<i64>().prop_map(ArrayKey::Int),
            "[a-z]{1,4}".prop_map(|n| ArrayKey::String(format!("\0*\0{n}").into_bytes())),
            "[a-z]{1,4}".prop_map(|n| ArrayKey::String(format!("\0P\0{n}").into_bytes())),
        ];
        let object = (class_name(), proptest::collection::vec((name, inner), 0..6)).prop_map(
            |(class, properties)| {
                let mut seen = std::collections::HashSet::new();
                Value::Object {
                    class,
                    // 7 and "7" name the same property.
                    properties: properties
                        .into_iter()
                        .filter(|(k, _)| {
                            seen.insert(match k {
                                ArrayKey::Int(n) => n.to_string().into_bytes(),
                                ArrayKey::String(s) => s.clone(),
                            })
                        })
                        .collect(),
                }
            },
        );
        prop_oneof![array, object]
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
            for bytes in [&bytes[..], &bytes[..at]] {
                if let Ok((value, used)) = unserialize(bytes) {
                    prop_assert!(used <= bytes.len());
                    let _ = (value.echo(), value.to_json());
                }
            }
        }
    }
}

fn b(text: &str) -> Vec<u8> {
    text.as_bytes().to_vec()
}

fn key(text: &str) -> ArrayKey {
    ArrayKey::String(b(text))
}

fn list(items: Vec<Value>) -> Value {
    Value::Array(
        items
            .into_iter()
            .enumerate()
            .map(|(i, v)| (ArrayKey::Int(i as i64), v))
            .collect(),
    )
}

fn object(class: &str, properties: Vec<(&str, Value)>) -> Value {
    Value::Object {
        class: b(class),
        properties: properties.into_iter().map(|(k, v)| (key(k), v)).collect(),
    }
}

/// PHP 8.2's bytes for these (captured in tests/php_vectors too).
#[test]
fn objects_enums_and_custom_objects_read_as_php_wrote_them() {
    let php = "O:1:\"P\":4:{s:1:\"a\";i:1;s:4:\"\0*\0b\";i:2;s:4:\"\0P\0c\";i:3;s:1:\"o\";O:8:\"stdClass\":1:{s:1:\"n\";i:1;}}";
    let p = object(
        "P",
        vec![
            ("a", Value::Int(1)),
            ("\0*\0b", Value::Int(2)),
            ("\0P\0c", Value::Int(3)),
            ("o", object("stdClass", vec![("n", Value::Int(1))])),
        ],
    );
    assert_eq!(unserialize(php.as_bytes()), Ok((p.clone(), php.len())));
    assert_eq!(serialize(&p), php.as_bytes());
    assert_eq!(p.class_name(), Some(&b"P"[..]));
    assert_eq!(p.to_json().unwrap(), r#"{"a":1,"o":{"n":1}}"#);
    assert_eq!(
        p.echo().unwrap_err().to_string(),
        "Object of class P could not be converted to string (PHP's echo throws this Error too; \
         --format json shows the object)"
    );
    assert_eq!(unmangle(b"\0*\0b"), (Visibility::Protected, &b"b"[..]));
    assert_eq!(unmangle(b"\0P\0c"), (Visibility::Private(b"P"), &b"c"[..]));
    assert_eq!(unmangle(b"a"), (Visibility::Public, &b"a"[..]));

    // An int property name is kept as written, and is the same property as its string; an
    // empty object is {}.
    let php = b"O:8:\"stdClass\":3:{i:0;i:1;s:0:\"\";i:2;s:1:\"0\";i:3;}";
    let (value, _) = unserialize(php).unwrap();
    let expected = Value::Object {
        class: b("stdClass"),
        properties: vec![(ArrayKey::Int(0), Value::Int(3)), (key(""), Value::Int(2))],
    };
    assert_eq!(value, expected);
    assert_eq!(value.to_json().unwrap(), r#"{"0":3,"":2}"#);
    assert_eq!(object("stdClass", vec![]).to_json().unwrap(), "{}");

    let php = "a:4:{i:0;O:1:\"M\":2:{s:1:\"x\";i:5;i:7;s:5:\"seven\";}i:1;E:11:\"Suit:Hearts\";i:2;r:5;i:3;E:6:\"Pure:A\";}";
    let hearts = Value::Enum {
        class: b("Suit"),
        case: b("Hearts"),
    };
    let expected = list(vec![
        Value::Object {
            class: b("M"),
            properties: vec![(key("x"), Value::Int(5)), (ArrayKey::Int(7), s("seven"))],
        },
        hearts.clone(),
        hearts.clone(),
        Value::Enum {
            class: b("Pure"),
            case: b("A"),
        },
    ]);
    assert_eq!(
        unserialize(php.as_bytes()),
        Ok((expected.clone(), php.len()))
    );
    assert!(
        hearts
            .echo()
            .unwrap_err()
            .to_string()
            .contains("class Suit")
    );
    assert!(
        hearts
            .to_json()
            .unwrap_err()
            .to_string()
            .contains("Suit::Hearts")
    );

    // The Serializable payload numbers its values: r:6 is the stdClass after it.
    let php = "a:4:{i:0;C:1:\"S\":22:{a:2:{i:0;i:1;i:1;i:2;}}i:1;O:8:\"stdClass\":1:{s:1:\"n\";i:1;}i:2;r:6;i:3;r:2;}";
    let custom = Value::Custom {
        class: b("S"),
        payload: b("a:2:{i:0;i:1;i:1;i:2;}"),
    };
    let o = object("stdClass", vec![("n", Value::Int(1))]);
    let expected = list(vec![custom.clone(), o.clone(), o, custom.clone()]);
    assert_eq!(unserialize(php.as_bytes()), Ok((expected, php.len())));
    assert!(
        custom
            .to_json()
            .unwrap_err()
            .to_string()
            .contains("Serializable")
    );
}

#[test]
fn references_resolve_as_php_resolves_them() {
    // R: refers to a place: a key written again changes what a later R: sees (PHP gives 5).
    let (value, _) = unserialize(b"a:3:{i:0;i:1;i:0;i:5;i:1;R:2;}").unwrap();
    assert_eq!(value, list(vec![Value::Int(5), Value::Int(5)]));
    let (value, _) = unserialize(b"a:3:{i:0;i:1;i:1;i:2;i:2;R:2;}").unwrap();
    assert_eq!(
        value,
        list(vec![Value::Int(1), Value::Int(2), Value::Int(1)])
    );

    // $b = [1]; $b[] = &$b;
    let php = b"a:2:{i:0;i:1;i:1;a:2:{i:0;i:1;i:1;R:3;}}";
    let (value, used) = unserialize(php).unwrap();
    let inner = list(vec![Value::Int(1), Value::Recursion { up: 1 }]);
    assert_eq!(value, list(vec![Value::Int(1), inner]));
    assert_eq!((serialize(&value), used), (php.to_vec(), php.len()));
    assert_eq!(value.echo().unwrap(), b"Array");
    assert_eq!(value.to_json(), Err(PrintError::Recursion));

    // $c->self = $c;
    let php = b"O:8:\"stdClass\":1:{s:4:\"self\";r:1;}";
    let (value, _) = unserialize(php).unwrap();
    assert_eq!(
        value,
        object("stdClass", vec![("self", Value::Recursion { up: 1 })])
    );
    assert_eq!(serialize(&value), php);
    // A cycle through a private property is not followed by json_encode.
    let (value, _) = unserialize(b"O:1:\"Q\":2:{s:4:\"\0Q\0s\";r:1;s:1:\"a\";i:1;}").unwrap();
    assert_eq!(value.to_json().unwrap(), r#"{"a":1}"#);
}

#[test]
fn nesting_goes_as_deep_as_phps_and_no_deeper() {
    let nest = |levels: usize, leaf: &str| "a:1:{i:0;".repeat(levels) + leaf + &"}".repeat(levels);
    // PHP counts arrays with entries and every object; 4096 of them, not 4097.
    for (bytes, ok) in [
        (nest(MAX_DEPTH, "N;"), true),
        (nest(MAX_DEPTH, "a:0:{}"), true),
        (nest(MAX_DEPTH - 1, "O:8:\"stdClass\":0:{}"), true),
        (nest(MAX_DEPTH + 1, "N;"), false),
        (nest(MAX_DEPTH, "O:8:\"stdClass\":0:{}"), false),
    ] {
        let got = unserialize(bytes.as_bytes());
        assert_eq!(got.is_ok(), ok, "{got:?}");
        if let Ok((value, used)) = got {
            assert_eq!(used, bytes.len());
            assert_eq!(serialize(&value), bytes.as_bytes());
            assert_eq!(value.echo().unwrap(), b"Array");
            assert_eq!(value.to_json(), Err(PrintError::TooDeep));
        }
    }
    // References cannot build a deeper tree than PHP could parse.
    let deep = nest(MAX_DEPTH - 1, "N;");
    let bytes = format!("a:2:{{i:0;{deep}i:1;{}}}", nest(MAX_DEPTH - 1, "R:2;"));
    assert!(unserialize(bytes.as_bytes()).is_err());
}

#[test]
fn json_nests_512_deep_as_php() {
    let nest = |levels: usize| (0..levels).fold(Value::Int(1), |inner, _| list(vec![inner]));
    assert_eq!(nest(512).to_json().unwrap().len(), 1025);
    assert_eq!(nest(513).to_json(), Err(PrintError::TooDeep));
}

/// Each level refers twice to the level before: 60 levels, a few hundred bytes, ask for 2^60
/// copies.
#[test]
fn references_cannot_blow_up_memory() {
    // Value 1 is the outer array, 2 level 0 (3 and 4 its strings), 5 level 1, 6 level 2, ...
    let mut php = String::from("a:60:{i:0;a:2:{i:0;s:1:\"x\";i:1;s:1:\"x\";}");
    for level in 1..60 {
        let previous = if level == 1 { 2 } else { 5 + level - 2 };
        php.push_str(&format!(
            "i:{level};a:2:{{i:0;R:{previous};i:1;R:{previous};}}"
        ));
    }
    php.push('}');
    assert!(php.len() < 2000);
    let err = unserialize(php.as_bytes()).unwrap_err();
    assert!(err.reason.contains("would copy more than"), "{err}");
    // 10 levels (2^10 copies) are fine.
    let cut = php.find("i:10;").unwrap();
    let ten = php[..cut].replacen("a:60:", "a:10:", 1) + "}";
    let (value, _) = unserialize(ten.as_bytes()).unwrap();
    let Value::Array(levels) = &value else {
        panic!("{value:?}")
    };
    // Level 9 is a whole binary tree: 1023 `a:2:{}`, 2046 keys `i:0;`, 1024 `s:1:"x";`.
    assert_eq!(
        serialize(&levels[9].1).len(),
        1023 * 6 + 2046 * 4 + 1024 * 8
    );
}

#[test]
fn json_escapes_as_php_json_encode() {
    let text = s("a/b é \u{2028} \u{1F980} \x7f \x1f <>&' \"\\\n");
    assert_eq!(
        text.to_json().unwrap(),
        "\"a\\/b \\u00e9 \\u2028 \\ud83e\\udd80 \x7f \\u001f <>&' \\\"\\\\\\n\""
    );
    assert_eq!(
        text.to_json_with(JsonFlags::UNESCAPED).unwrap(),
        "\"a/b é \\u2028 \u{1F980} \x7f \\u001f <>&' \\\"\\\\\\n\""
    );
}
