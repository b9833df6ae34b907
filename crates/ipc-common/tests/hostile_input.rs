//! Every byte parser a peer or a user can feed, run on arbitrary input: endpoint URLs, the
//! command line's value parsers, the sequence stamp and stream framing of load runs, PHP's
//! `unserialize` format and the sysvshm layout. Each must answer with a value or an error, never
//! a panic, and never allocate more than its input justifies.
//!
//! Each test prints `hostile inputs tried: N <what>` (shown with `--nocapture`;
//! `scripts/reliability.sh` adds them up).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::SocketAddr;
use std::path::Path;

use ipc_common::php::{self, JsonFlags, sysvshm, unserialize};
use ipc_common::runtime::cli::{Mode, parse_proj_id};
use ipc_common::runtime::trust::parse_user;
use ipc_common::runtime::wait::Timeout;
use ipc_common::seq::{self, Deframer, SeqChecker};
use ipc_common::sockets::endpoint::{DgramEndpoint, MAX_UNIX_PATH, StreamEndpoint};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// Counts the bytes each thread has allocated and not freed, and the most at any one time, so
/// that a test can bound what a parser allocates for an input (tests run on threads of their
/// own, so counts do not mix).
struct Counting;

thread_local! {
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn count(grow: usize, shrink: usize) {
    let _ = LIVE.try_with(|live| {
        let now = (live.get() + grow).saturating_sub(shrink);
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

// SAFETY: every call goes to System as it came; the counting touches only const-initialized
// thread-locals, which neither allocate nor panic.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            count(layout.size(), 0);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) };
        count(0, layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            count(new_size, layout.size());
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The most `f` had allocated at once beyond what was live when it started.
fn peak_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let start = LIVE.with(Cell::get);
    PEAK.with(|peak| peak.set(start));
    let result = f();
    (result, PEAK.with(Cell::get) - start)
}

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

/// Serialized-looking values, right and wrong: every tag PHP has, counts and lengths that may
/// lie, and `r:`/`R:` to any number.
fn serialized() -> impl Strategy<Value = String> {
    let number = prop_oneof![0u64..12, Just(u64::MAX), any::<u64>()];
    let class = prop_oneof![
        Just("stdClass"),
        Just("P"),
        Just("App\\X"),
        Just("a-b"),
        Just("")
    ];
    let leaf = prop_oneof![
        Just("N;".to_string()),
        Just("b:1;".to_string()),
        any::<i64>().prop_map(|n| format!("i:{n};")),
        Just("d:0.5;".to_string()),
        Just("d:NAN;".to_string()),
        ("[a-z\\x00\\xff/]{0,6}", number.clone()).prop_map(|(s, lie)| format!(
            "s:{}:\"{s}\";",
            if lie % 5 == 0 { lie } else { s.len() as u64 }
        )),
        (class.clone(), "[A-Za-z]{0,3}")
            .prop_map(|(c, case)| format!("E:{}:\"{c}:{case}\";", c.len() + 1 + case.len())),
        (class.clone(), "[a-z:;{}]{0,6}").prop_map(|(c, p)| format!(
            "C:{}:\"{c}\":{}:{{{p}}}",
            c.len(),
            p.len()
        )),
        number.clone().prop_map(|n| format!("r:{n};")),
        number.clone().prop_map(|n| format!("R:{n};")),
    ];
    leaf.prop_recursive(6, 80, 6, move |inner| {
        let key = prop_oneof![
            any::<i8>().prop_map(|n| format!("i:{n};")),
            "[a-z0-9\\x00*]{0,3}".prop_map(|s| format!("s:{}:\"{s}\";", s.len())),
            Just("N;".to_string()),
        ];
        let entries = vec((key, inner), 0..5);
        (entries, class.clone(), number.clone(), any::<bool>()).prop_map(
            |(entries, class, lie, object)| {
                let count = if lie % 7 == 0 {
                    lie
                } else {
                    entries.len() as u64
                };
                let body: String = entries.into_iter().map(|(k, v)| k + &v).collect();
                if object {
                    format!("O:{}:\"{class}\":{count}:{{{body}}}", class.len())
                } else {
                    format!("a:{count}:{{{body}}}")
                }
            },
        )
    })
}

/// What unserialize may allocate for `len` bytes: its graph and tree (a few hundred bytes per
/// value, each value at least 2 bytes), and what references may copy, by design at most 2^18
/// values.
fn allowed(len: usize, references: bool) -> usize {
    1024 * len + 64 * 1024 + if references { 48 << 20 } else { 0 }
}

#[test]
fn php_serialized_bytes_parse_or_fail_cleanly() {
    let text = prop_oneof![
        vec(any::<u8>(), 0..200),
        "[aibdsN:;{}\"0-9.E+-]{0,120}".prop_map(String::into_bytes),
        "[aibdsNOCErR:;{}\"0-9.E+-]{0,120}".prop_map(String::into_bytes),
        // Lengths and counts far beyond the input must not be allocated for.
        ("[asOC]", any::<u64>()).prop_map(|(kind, n)| format!("{kind}:{n}:{{").into_bytes()),
        ("[aO]", any::<u64>()).prop_map(|(kind, n)| match kind.as_str() {
            "O" => format!("O:8:\"stdClass\":{n}:{{").into_bytes(),
            _ => format!("a:{n}:{{").repeat(64).into_bytes(),
        }),
        // Values as PHP writes them, cut or with a byte changed anywhere.
        (
            serialized(),
            any::<prop::sample::Index>(),
            any::<u8>(),
            0..3
        )
            .prop_map(|(text, at, byte, how)| {
                let mut bytes = text.into_bytes();
                if !bytes.is_empty() {
                    let at = at.index(bytes.len());
                    match how {
                        0 => bytes.truncate(at),
                        1 => bytes[at] = byte,
                        _ => {}
                    }
                }
                bytes
            }),
    ];
    tried("PHP serialize() byte strings", 3000, text, |bytes| {
        let (result, peak) = peak_allocation(|| unserialize(&bytes));
        let references = bytes.iter().any(|&b| b == b'r' || b == b'R');
        prop_assert!(
            peak <= allowed(bytes.len(), references),
            "{peak} bytes allocated for {} bytes of input",
            bytes.len()
        );
        if let Ok((value, used)) = result {
            prop_assert!(used <= bytes.len());
            let _ = value.echo();
            let _ = value.to_json();
            let _ = value.to_json_with(JsonFlags::UNESCAPED);
            // What we read, we can write, and read back as the same bytes.
            let again = php::serialize(&value);
            if let Ok((back, _)) = unserialize(&again) {
                prop_assert_eq!(php::serialize(&back), again);
            }
        }
        Ok(())
    });
}

/// A few hundred bytes of references that each refer twice to the level before ask for 2^60
/// copies; nesting at PHP's limit in every form; counts that claim the earth at every level.
#[test]
fn php_serialized_bombs_are_refused_within_bounded_memory() {
    let mut doubling = String::from("a:60:{i:0;a:2:{i:0;s:1:\"x\";i:1;s:1:\"x\";}");
    for level in 1..60 {
        // Value 1 is the outer array, 2 level 0 (3 and 4 its strings), 5 level 1, 6 level 2, ...
        let previous = if level == 1 { 2 } else { 5 + level - 2 };
        doubling.push_str(&format!(
            "i:{level};a:2:{{i:0;R:{previous};i:1;R:{previous};}}"
        ));
    }
    doubling.push('}');
    let nested = |open: &str, leaf: &str, close: &str, levels: usize| {
        open.repeat(levels) + leaf + &close.repeat(levels)
    };
    let object = "O:8:\"stdClass\":1:{s:1:\"a\";";
    let bombs = [
        (doubling, false),
        (nested("a:1:{i:0;", "N;", "}", php::MAX_DEPTH), true),
        (nested("a:1:{i:0;", "N;", "}", php::MAX_DEPTH + 1), false),
        (nested(object, "N;", "}", php::MAX_DEPTH), true),
        (nested(object, "N;", "}", 100_000), false),
        (nested("a:1:{i:0;", "R:1;", "}", php::MAX_DEPTH), true),
        (nested("a:1:{i:0;", "r:1;", "}", php::MAX_DEPTH), false),
        (nested("a:99999999:{i:0;", "N;", "}", 4000), false),
        (nested("C:1:\"S\":", "", "", 1000), false),
    ];
    // The counting itself counts.
    let (_, peak) = peak_allocation(|| std::hint::black_box(vec![1u8; 1 << 20]));
    assert!(peak >= 1 << 20, "{peak}");
    for (bytes, readable) in bombs {
        let references = bytes.contains("R:") || bytes.contains("r:");
        let (result, peak) = peak_allocation(|| unserialize(bytes.as_bytes()));
        assert_eq!(result.is_ok(), readable, "{}...: {result:?}", &bytes[..40]);
        assert!(
            peak <= allowed(bytes.len(), references),
            "{peak} bytes allocated for {} bytes of input {}...",
            bytes.len(),
            &bytes[..40]
        );
        if let Ok((value, _)) = result {
            // "Array" or PHP's Error for an object; JSON goes no deeper than 512.
            assert!(value.echo().map_or_else(
                |err| err.to_string().contains("stdClass"),
                |bytes| bytes == b"Array"
            ));
            assert!(value.to_json().is_err());
        }
    }
    println!("hostile inputs tried: 9 PHP serialize() bombs");
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
