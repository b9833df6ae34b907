//! Every byte parser a peer or a user can feed, run on arbitrary input: endpoint URLs, the
//! command line's value parsers, the sequence stamp and stream framing of load runs, PHP's
//! `unserialize` format and the sysvshm layout. Each must answer with a value or an error, never
//! a panic, and never allocate more than its input justifies.
//!
//! Each test prints `hostile inputs tried: N <what>` (shown with `--nocapture`;
//! `scripts/reliability.sh` adds them up).

use std::net::SocketAddr;
use std::path::Path;

use ipc_common::cli::{Mode, parse_proj_id};
use ipc_common::endpoint::{DgramEndpoint, MAX_UNIX_PATH, StreamEndpoint};
use ipc_common::php::{sysvshm, unserialize};
use ipc_common::seq::{self, Deframer, SeqChecker};
use ipc_common::trust::parse_user;
use ipc_common::wait::Timeout;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// Runs `test` on `cases` inputs from `strategy`, failing with the smallest input that breaks
/// it, and says how many inputs were tried.
fn tried<S: Strategy>(
    what: &str,
    cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    let mut runner = TestRunner::new(Config {
        cases,
        // Never write regression files into the source tree from a test run.
        failure_persistence: None,
        ..Config::default()
    });
    if let Err(err) = runner.run(&strategy, test) {
        panic!("{what}: {err}");
    }
    println!("hostile inputs tried: {cases} {what}");
}

/// Whatever follows a scheme: any characters, NULs and very long runs included.
fn anything() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[\\x00-\\x7f]{0,40}",
        "/[a-z/. ]{0,200}",
        Just(String::new()),
    ]
}

/// Authorities built from the characters of literal addresses only, so that the resolver is
/// never asked about a name: a test must not depend on DNS.
fn literal_ish() -> impl Strategy<Value = String> {
    "[0-9.:\\[\\]%/]{0,30}"
}

fn url() -> impl Strategy<Value = String> {
    let scheme = prop_oneof![
        Just("udg"),
        Just("udp"),
        Just("unix"),
        Just("tcp"),
        Just("UDP"),
        Just("http"),
        Just(""),
    ];
    prop_oneof![
        any::<String>(),
        (scheme.clone(), anything()).prop_map(|(s, rest)| format!("{s}://{rest}")),
        (scheme, literal_ish()).prop_map(|(s, rest)| format!("{s}://{rest}")),
    ]
}

/// A URL that does not name a host by name (see [`literal_ish`]).
fn resolves_nothing(url: &str) -> bool {
    let Some((scheme, rest)) = url.split_once("://") else {
        return true;
    };
    !matches!(scheme, "udp" | "tcp")
        || !rest.contains(':')
        || rest.chars().all(|c| "0123456789.:[]%/".contains(c))
}

#[test]
fn endpoint_urls_parse_or_fail_cleanly() {
    tried("endpoint URLs", 3000, url(), |url| {
        prop_assume!(resolves_nothing(&url));
        match url.parse::<DgramEndpoint>() {
            Ok(DgramEndpoint::Unix(path)) => check_path(&path, &url)?,
            Ok(DgramEndpoint::Udp(addr)) => check_addr(addr, &url)?,
            Err(why) => prop_assert!(!why.is_empty()),
        }
        match url.parse::<StreamEndpoint>() {
            Ok(StreamEndpoint::Unix(path)) => check_path(&path, &url)?,
            Ok(StreamEndpoint::Tcp(addr)) => check_addr(addr, &url)?,
            Err(why) => prop_assert!(!why.is_empty()),
        }
        // What parses prints back as a URL that parses to the same endpoint.
        if let Ok(endpoint) = url.parse::<DgramEndpoint>() {
            prop_assert_eq!(endpoint.to_string().parse::<DgramEndpoint>(), Ok(endpoint));
        }
        if let Ok(endpoint) = url.parse::<StreamEndpoint>() {
            prop_assert_eq!(endpoint.to_string().parse::<StreamEndpoint>(), Ok(endpoint));
        }
        Ok(())
    });
}

/// A Unix socket path that parsed is one `bind(2)` can take.
fn check_path(path: &Path, url: &str) -> Result<(), TestCaseError> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    prop_assert!(!bytes.is_empty() && bytes.len() <= MAX_UNIX_PATH, "{url:?}");
    prop_assert!(!bytes.contains(&0), "{url:?}");
    Ok(())
}

fn check_addr(addr: SocketAddr, url: &str) -> Result<(), TestCaseError> {
    prop_assert!(
        url.contains(&addr.port().to_string()),
        "{url:?} gave {addr}"
    );
    Ok(())
}

#[test]
fn command_line_values_parse_or_fail_cleanly() {
    tried(
        "command-line values (--mode, --timeout, --proj)",
        3000,
        prop_oneof![any::<String>(), "[0-9oxe.+-]{0,12}"],
        |text| {
            if let Ok(Mode(bits)) = text.parse::<Mode>() {
                prop_assert!(bits <= 0o777);
            }
            if let Ok(timeout) = text.parse::<Timeout>() {
                prop_assert!(
                    timeout
                        .duration()
                        .is_none_or(|d| d.as_secs() <= 1_000_000_000)
                );
            }
            if let Ok(proj) = parse_proj_id(&text) {
                prop_assert!(proj != 0);
            }
            // Numbers only: a name would ask the password database, which is fine but slow.
            if text.parse::<u32>().is_ok() {
                prop_assert!(parse_user(&text).is_ok());
            }
            Ok(())
        },
    );
}

/// Splits `bytes` at the given points (taken modulo its length).
fn pieces(bytes: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut at: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    at.push(0);
    at.push(bytes.len());
    at.sort_unstable();
    at.windows(2).map(|w| bytes[w[0]..w[1]].to_vec()).collect()
}

/// What a deframer must yield from `stream` as a whole: the frames up to the first one over
/// `max_len` (then an error), or up to an incomplete tail (then nothing more).
fn reference(stream: &[u8], max_len: usize) -> (Vec<Vec<u8>>, bool) {
    let mut frames = Vec::new();
    let mut rest = stream;
    while rest.len() >= 4 {
        let len = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
        if len > max_len {
            return (frames, true);
        }
        if rest.len() < 4 + len {
            break;
        }
        frames.push(rest[4..4 + len].to_vec());
        rest = &rest[4 + len..];
    }
    (frames, false)
}

/// A byte stream: well-formed frames, perhaps with a few bytes overwritten, or plain noise.
fn stream() -> impl Strategy<Value = Vec<u8>> {
    let framed = vec(vec(any::<u8>(), 0..300), 0..12).prop_map(|payloads| {
        let mut out = Vec::new();
        for (seq, payload) in payloads.iter().enumerate() {
            seq::frame_into(&mut out, seq as u64, payload);
        }
        out
    });
    let damaged =
        (framed.clone(), vec((any::<usize>(), any::<u8>()), 1..4)).prop_map(|(mut bytes, hits)| {
            for (at, byte) in hits {
                if !bytes.is_empty() {
                    let len = bytes.len();
                    bytes[at % len] = byte;
                }
            }
            bytes
        });
    prop_oneof![framed, damaged, vec(any::<u8>(), 0..2000)]
}

#[test]
fn framed_streams_split_anywhere_deframe_like_the_whole() {
    let cases = (stream(), vec(any::<usize>(), 0..20), 0usize..600);
    tried(
        "framed byte streams, split at random points",
        2000,
        cases,
        |(bytes, cuts, max_len)| {
            let (expected, refused) = reference(&bytes, max_len);
            let mut deframer = Deframer::new(max_len);
            let mut got = Vec::new();
            let mut failed = false;
            'feed: for piece in pieces(&bytes, &cuts) {
                deframer.push(&piece);
                loop {
                    match deframer.next_message() {
                        Ok(Some(message)) => {
                            prop_assert!(message.len() <= max_len);
                            got.push(message.to_vec());
                        }
                        Ok(None) => break,
                        Err(_) => {
                            failed = true;
                            break 'feed;
                        }
                    }
                }
            }
            prop_assert_eq!(&got, &expected);
            prop_assert_eq!(failed, refused);
            if !failed {
                let consumed: usize = got.iter().map(|m| 4 + m.len()).sum();
                prop_assert_eq!(deframer.leftover(), bytes.len() - consumed);
            }
            Ok(())
        },
    );
}

#[test]
fn a_huge_length_is_refused_as_soon_as_its_four_bytes_arrive() {
    tried(
        "oversized frame headers",
        500,
        (17u32.., vec(any::<u8>(), 0..64), 1usize..4),
        |(len, tail, split)| {
            let mut deframer = Deframer::new(16);
            let header = len.to_le_bytes();
            deframer.push(&header[..split]);
            prop_assert!(matches!(deframer.next_message(), Ok(None)));
            deframer.push(&header[split..]);
            prop_assert!(deframer.next_message().is_err());
            deframer.push(&tail);
            prop_assert!(deframer.next_message().is_err());
            Ok(())
        },
    );
}

#[test]
fn stamped_messages_check_or_fail_cleanly() {
    let message = prop_oneof![
        vec(any::<u8>(), 0..40),
        ("[0-9]{10}", vec(any::<u8>(), 0..20)).prop_map(|(digits, tail)| {
            let mut bytes = digits.into_bytes();
            bytes.push(b'|');
            bytes.extend(tail);
            bytes
        }),
    ];
    tried(
        "sequence-stamped messages",
        3000,
        (vec(message, 1..20), 1u64..50),
        |(messages, expected)| {
            let mut checker = SeqChecker::new(expected, None);
            for message in &messages {
                if let Ok((seq, payload)) = seq::unstamp(message) {
                    prop_assert_eq!(payload.len(), message.len() - seq::STAMP_LEN);
                    prop_assert_eq!(checker.observe(message).is_ok(), seq < expected);
                } else {
                    prop_assert!(checker.observe(message).is_err());
                }
            }
            prop_assert!(checker.missing() <= expected);
            Ok(())
        },
    );
}

#[test]
fn php_serialized_bytes_parse_or_fail_cleanly() {
    let text = prop_oneof![
        vec(any::<u8>(), 0..200),
        "[aibdsN:;{}\"0-9.E+-]{0,120}".prop_map(String::into_bytes),
        // Lengths and counts far beyond the input must not be allocated for.
        ("[as]", any::<u64>()).prop_map(|(kind, n)| format!("{kind}:{n}:{{").into_bytes()),
    ];
    tried("PHP serialize() byte strings", 3000, text, |bytes| {
        if let Ok((value, used)) = unserialize(&bytes) {
            prop_assert!(used <= bytes.len());
            let _ = (value.echo(), value.to_json());
        }
        Ok(())
    });
}

#[test]
fn sysvshm_images_read_or_fail_cleanly() {
    let image = (vec(any::<u8>(), 0..600), any::<bool>()).prop_map(|(mut bytes, magic)| {
        if magic && bytes.len() >= 8 {
            bytes[..7].copy_from_slice(b"PHP_SM\0");
        }
        bytes
    });
    tried(
        "sysvshm segment images",
        3000,
        (image, any::<i64>()),
        |(mut image, key)| {
            let _ = sysvshm::records(&image);
            if let Ok(Some(bytes)) = sysvshm::get(&image, key) {
                prop_assert!(bytes.len() <= image.len());
            }
            let _ = sysvshm::remove(&mut image, key);
            let _ = sysvshm::put(&mut image, key, b"s:1:\"x\";");
            Ok(())
        },
    );
}
