//! Parsing what `strace -ttt -T -yy` writes for one thread (`-ff -o PREFIX` gives one file per
//! thread, so calls are never split into `<unfinished ...>` / `<... resumed>` halves by another
//! thread's output; a call still running when its process ends is `<unfinished ...>) = ?`).
//!
//! The parser never panics: a line it does not understand is an error for that line, and the
//! caller skips it. Strace quotes strings in arguments (`"..."` with C escapes) but not paths in
//! `-yy` annotations, so both are read with care: brackets and quotes nest, `->` is not a `>`.

use std::fmt;

/// One line of a per-thread trace file.
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    /// A system call: `TS NAME(ARGS) = RET <DUR>`.
    Call(Call),
    /// `TS --- SIGTERM {...} ---`
    Signal { ts_us: u64, text: String },
    /// `TS +++ exited with 0 +++` or `+++ killed by SIGKILL +++`
    Exit { ts_us: u64, text: String },
    /// `TS <... recvfrom resumed>ARGS) = RET <DUR>`: the end of a call whose start was printed
    /// as `<unfinished ...>` (strace still splits a call when its process ends or a signal
    /// comes in the middle). Its `ts_us` is when it returned; `args` the rest of them.
    Resumed(Call),
}

/// A parsed system call.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// Start, in microseconds since the epoch (`-ttt`).
    pub ts_us: u64,
    pub name: String,
    /// The arguments as strace printed them, without the outer parentheses.
    pub args: String,
    pub ret: Ret,
    /// Time spent in the call (`-T`), in microseconds; `None` when it did not return.
    pub dur_us: Option<u64>,
}

/// What a call returned.
#[derive(Debug, Clone, PartialEq)]
pub enum Ret {
    /// A value, with what strace printed after it (an fd's annotation, `(Timeout)`, ...).
    Value { value: i64, rest: String },
    /// `-1 ENOENT (No such file or directory)`
    Error { errno: String },
    /// `?`: the call never returned (the process ended in it) or strace could not tell.
    Unknown,
}

impl Ret {
    /// The returned value when the call succeeded.
    pub fn value(&self) -> Option<i64> {
        match self {
            Ret::Value { value, .. } => Some(*value),
            _ => None,
        }
    }
}

/// Why a line could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub &'static str);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for ParseError {}

/// Parses one line of `strace -ttt -T -yy` output (without a pid prefix).
pub fn parse_line(line: &str) -> Result<Line, ParseError> {
    let line = line.trim_end_matches(['\n', '\r']);
    let (ts, rest) = line.split_once(' ').ok_or(ParseError("no timestamp"))?;
    let ts_us = parse_ts(ts)?;
    let rest = rest.trim_start();
    if let Some(text) = rest.strip_prefix("--- ") {
        return Ok(Line::Signal {
            ts_us,
            text: text.trim_end_matches(" ---").to_string(),
        });
    }
    if let Some(text) = rest.strip_prefix("+++ ") {
        return Ok(Line::Exit {
            ts_us,
            text: text.trim_end_matches(" +++").to_string(),
        });
    }
    if let Some(resumed) = rest.strip_prefix("<... ") {
        let (name, tail) = resumed
            .split_once(" resumed>")
            .ok_or(ParseError("no 'resumed>' after '<...'"))?;
        if !is_call_name(name) {
            return Err(ParseError("not a call name"));
        }
        let whole = format!("{ts} {name}({tail}");
        return match parse_line(&whole)? {
            Line::Call(call) => Ok(Line::Resumed(call)),
            _ => Err(ParseError("not a resumed call")),
        };
    }
    // Without -ff a call can be cut with no result at all.
    if let Some(start) = rest.strip_suffix("<unfinished ...>") {
        // Ends in ") = ?", so this recursion ends at once.
        return parse_line(&format!("{ts} {}<unfinished ...>) = ?", start.trim_end()));
    }
    let open = rest
        .find('(')
        .ok_or(ParseError("no '(' after the call name"))?;
    let name = &rest[..open];
    if !is_call_name(name) {
        return Err(ParseError("not a call name"));
    }
    let after = &rest[open + 1..];
    // Strip ` <0.000123>` at the end (absent for calls that did not return).
    let (body, dur_us) = match after.rfind(" <") {
        Some(at) if after.ends_with('>') && is_duration(&after[at + 2..after.len() - 1]) => (
            &after[..at],
            Some(parse_ts(&after[at + 2..after.len() - 1])?),
        ),
        _ => (after, None),
    };
    // The arguments end at the last ") = " : a return value never contains one, an argument
    // string may.
    // strace pads short calls: `gettid()              = 28539`.
    let mut search_end = body.len();
    let (close, equals) = loop {
        let at = body[..search_end]
            .rfind("= ")
            .ok_or(ParseError("no ') = ' before the result"))?;
        let before = body[..at].trim_end();
        if before.ends_with(')') {
            break (before.len() - 1, at);
        }
        search_end = at;
    };
    let args = body[..close].trim_end();
    let ret_text = body[equals + 1..].trim();
    let args = args
        .strip_suffix("<unfinished ...>")
        .map(str::trim_end)
        .unwrap_or(args);
    let ret = parse_ret(ret_text)?;
    Ok(Line::Call(Call {
        ts_us,
        name: name.to_string(),
        args: args.trim_end_matches(',').trim_end().to_string(),
        ret,
        dur_us: if matches!(ret_text, "?") {
            None
        } else {
            dur_us
        },
    }))
}

fn is_call_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn is_duration(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

/// `1796067219.446534` (seconds with a fraction) as microseconds.
fn parse_ts(text: &str) -> Result<u64, ParseError> {
    let (secs, frac) = text.split_once('.').unwrap_or((text, ""));
    if secs.is_empty() || !secs.bytes().all(|b| b.is_ascii_digit()) || secs.len() > 12 {
        return Err(ParseError("bad seconds"));
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError("bad fraction"));
    }
    let secs: u64 = secs.parse().map_err(|_| ParseError("bad seconds"))?;
    let mut micros: u64 = 0;
    for (i, digit) in frac
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(6)
        .enumerate()
    {
        let _ = i;
        micros = micros * 10 + u64::from(digit - b'0');
    }
    secs.checked_mul(1_000_000)
        .and_then(|us| us.checked_add(micros))
        .ok_or(ParseError("time out of range"))
}

fn parse_ret(text: &str) -> Result<Ret, ParseError> {
    if text.starts_with('?') {
        return Ok(Ret::Unknown);
    }
    let (number, rest) = text.split_once(' ').unwrap_or((text, ""));
    // Annotated fds: `5<UNIX:[123]>`.
    let (number, annotation) = match number.find('<') {
        Some(at) => (&number[..at], &text[at..]),
        None => (number, rest),
    };
    let value = if let Some(hex) = number.strip_prefix("0x") {
        i64::from_str_radix(hex, 16)
            .or_else(|_| u64::from_str_radix(hex, 16).map(|v| v as i64))
            .map_err(|_| ParseError("bad hex result"))?
    } else {
        number
            .parse::<i64>()
            .map_err(|_| ParseError("bad result"))?
    };
    if value < 0 {
        let errno = rest.split_whitespace().next().unwrap_or("").to_string();
        if errno.starts_with('E') {
            return Ok(Ret::Error { errno });
        }
    }
    Ok(Ret::Value {
        value,
        rest: annotation.trim().to_string(),
    })
}

/// Splits `args` at top-level commas: commas inside quotes, `()`, `[]`, `{}` and `<>` (an fd's
/// annotation) do not split; `->` inside an annotation is not a closing `>`.
pub fn split_args(args: &str) -> Vec<&str> {
    let bytes = args.as_bytes();
    let mut parts = Vec::new();
    let mut depth: usize = 0;
    let mut in_quote = false;
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if in_quote {
            if b == b'\\' {
                i += 1;
            } else if b == b'"' {
                in_quote = false;
            }
        } else {
            match b {
                b'"' => in_quote = true,
                b'(' | b'[' | b'{' | b'<' => depth += 1,
                b'>' if i > 0 && bytes[i - 1] == b'-' => {}
                b')' | b']' | b'}' | b'>' => depth = depth.saturating_sub(1),
                b',' if depth == 0 => {
                    parts.push(args[start..i].trim());
                    start = i + 1;
                }
                _ => {}
            }
        }
        i += 1;
    }
    let last = args.get(start..).unwrap_or("").trim();
    if !last.is_empty() || !parts.is_empty() {
        parts.push(last);
    }
    parts
}

/// Every annotated descriptor in `text`: `(fd, annotation)` for each `N<...>`.
pub fn annotated_fds(text: &str) -> Vec<(i32, &str)> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut in_quote = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if in_quote {
            if b == b'\\' {
                i += 1;
            } else if b == b'"' {
                in_quote = false;
            }
            i += 1;
            continue;
        }
        if b == b'"' {
            in_quote = true;
            i += 1;
            continue;
        }
        if b == b'<' && i > 0 && bytes[i - 1].is_ascii_digit() {
            let mut digits_start = i;
            while digits_start > 0 && bytes[digits_start - 1].is_ascii_digit() {
                digits_start -= 1;
            }
            // Only a number that starts a token: `5<`, `fd=5<`, `[3<`.
            let token_start = digits_start == 0
                || matches!(
                    bytes[digits_start - 1],
                    b' ' | b'=' | b'[' | b'(' | b',' | b'{'
                );
            if let (true, Some(end)) = (token_start, annotation_end(bytes, i)) {
                if let Ok(fd) = text[digits_start..i].parse::<i32>() {
                    found.push((fd, &text[i + 1..end]));
                }
                i = end + 1;
                continue;
            }
        }
        i += 1;
    }
    found
}

/// `text` with every descriptor's annotation removed: `5<UNIX:[1,"/x"]>` becomes `5`.
pub fn strip_annotations(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut in_quote = false;
    let mut i = 0;
    let mut copied = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if in_quote {
            if b == b'\\' {
                i += 1;
            } else if b == b'"' {
                in_quote = false;
            }
        } else if b == b'"' {
            in_quote = true;
        } else if b == b'<'
            && i > 0
            && (bytes[i - 1].is_ascii_digit() || text[..i].ends_with("AT_FDCWD"))
        {
            if let Some(end) = annotation_end(bytes, i) {
                out.push_str(&text[copied..i]);
                copied = end + 1;
                i = end + 1;
                continue;
            }
        }
        i += 1;
    }
    out.push_str(text.get(copied..).unwrap_or(""));
    out
}

/// The index of the `>` closing the annotation that opens at `open`.
fn annotation_end(bytes: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_quote = false;
    let mut i = open;
    while i < bytes.len() {
        let b = bytes[i];
        if in_quote {
            if b == b'\\' {
                i += 1;
            } else if b == b'"' {
                in_quote = false;
            }
        } else {
            match b {
                b'"' => in_quote = true,
                b'<' => depth += 1,
                b'>' if i > 0 && bytes[i - 1] == b'-' => {}
                b'>' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        return Some(i);
                    }
                }
                _ => {}
            }
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_with_annotations() {
        let line = r#"1796067219.452332 recvfrom(5<UNIX:[20892,"/tmp/s.sock"]>, "Hi, ) = 3", 8388576, MSG_TRUNC, NULL, NULL) = 37 <0.000013>"#;
        let Line::Call(call) = parse_line(line).unwrap() else {
            panic!("not a call")
        };
        assert_eq!(call.ts_us, 1_796_067_219_452_332);
        assert_eq!(call.name, "recvfrom");
        assert_eq!(call.dur_us, Some(13));
        assert_eq!(call.ret.value(), Some(37));
        let args = split_args(&call.args);
        assert_eq!(args.len(), 6, "{args:?}");
        assert_eq!(args[1], r#""Hi, ) = 3""#);
        assert_eq!(
            annotated_fds(&call.args),
            vec![(5, r#"UNIX:[20892,"/tmp/s.sock"]"#)]
        );
    }

    #[test]
    fn results_errors_and_unfinished() {
        let Line::Call(c) = parse_line(
            "1.5 socket(AF_UNIX, SOCK_DGRAM|SOCK_CLOEXEC, 0) = 5<UNIX:[20892]> <0.000019>",
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(c.ts_us, 1_500_000);
        assert_eq!(
            c.ret,
            Ret::Value {
                value: 5,
                rest: "<UNIX:[20892]>".into()
            }
        );
        let Line::Call(c) = parse_line(
            "2.0 msgget(0x5400c284, 000) = -1 ENOENT (No such file or directory) <0.000060>",
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(
            c.ret,
            Ret::Error {
                errno: "ENOENT".into()
            }
        );
        let Line::Call(c) =
            parse_line("3.0 recvfrom(3<UNIX-STREAM:[22219->22220]>,  <unfinished ...>) = ?")
                .unwrap()
        else {
            panic!()
        };
        assert_eq!(c.ret, Ret::Unknown);
        assert_eq!(c.dur_us, None);
        assert_eq!(
            annotated_fds(&c.args),
            vec![(3, "UNIX-STREAM:[22219->22220]")]
        );
        assert!(matches!(
            parse_line("4.0 +++ exited with 0 +++").unwrap(),
            Line::Exit { .. }
        ));
        assert!(parse_line("4.0 exit_group(0)         = ?").is_ok());
        let Line::Call(c) = parse_line("5.0 gettid()              = 28539 <0.000007>").unwrap()
        else {
            panic!()
        };
        assert_eq!((c.args.as_str(), c.ret.value()), ("", Some(28539)));
        assert!(parse_line("garbage").is_err());
        let Line::Resumed(c) =
            parse_line(r#"7.5 <... recvfrom resumed>"hi", 1024, 0, NULL, NULL) = 2 <0.300000>"#)
                .unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (c.name.as_str(), c.ret.value(), c.dur_us),
            ("recvfrom", Some(2), Some(300_000))
        );
        let Line::Call(c) = parse_line("8.0 read(3</x>, <unfinished ...>").unwrap() else {
            panic!()
        };
        assert_eq!((c.ret, c.dur_us), (Ret::Unknown, None));
        assert!(parse_line("1.0 read(3, \"abc").is_err());
    }

    #[test]
    fn stripping_annotations() {
        assert_eq!(
            strip_annotations(
                r#"5<UNIX:[1->2,"/x"]>, "a<b>", [{fd=0</dev/null<char 1:3>>}], AT_FDCWD</tmp>"#
            ),
            r#"5, "a<b>", [{fd=0}], AT_FDCWD"#
        );
    }

    #[test]
    fn nested_annotations() {
        let fds = annotated_fds(
            "[{fd=0</dev/null<char 1:3>>, events=0}, {fd=5</tmp/f>, events=POLLIN}], 2, 0",
        );
        assert_eq!(fds, vec![(0, "/dev/null<char 1:3>"), (5, "/tmp/f")]);
    }
}

#[cfg(test)]
mod hostile {
    //! Hostile and truncated lines: errors, never a panic, through the whole pipeline.
    use proptest::prelude::*;

    use super::*;
    use crate::model::{Exchange, SideLog};
    use crate::render;

    const REAL: [&str; 8] = [
        r#"1796067219.452332 recvfrom(5<UNIX:[20892,"/tmp/s.sock"]>, "Hello from Sender: UDP/UDS [Datagram]", 8388576, MSG_TRUNC, NULL, NULL) = 37 <0.000013>"#,
        r#"1796067219.943456 sendto(5<UNIX:[20172->20892]>, "Hello from Sender: UDP/UDS [Datagram]", 37, MSG_NOSIGNAL, NULL, 0) = 37 <0.000048>"#,
        r#"1796067232.121325 mknodat(AT_FDCWD</tmp/x>, "/tmp/trzfifo", S_IFIFO|0600) = 0 <0.000097>"#,
        r#"1796067252.1 msgsnd(0, {mtype=1, mtext="s:32:\"Hello from Writer: Message Queue\";"}, 40, IPC_NOWAIT) = 0 <0.000055>"#,
        r#"1796067252.2 msgrcv(0, {mtype=1, mtext="s:32:\"Hello\";\0"...}, 8192, 0, IPC_NOWAIT) = 40 <0.000009>"#,
        r#"1796067238.1 accept4(5<UNIX-STREAM:[126223,"/tmp/s.sock"]>, {sa_family=AF_UNIX}, [128 => 2], SOCK_CLOEXEC) = 6<UNIX-STREAM:[126238->127132,"/tmp/s.sock"]> <0.000115>"#,
        r#"1796067245.3 sendto(5<UDP:[127.0.0.1:40334->127.0.0.1:39123]>, "Hello", 5, MSG_NOSIGNAL, NULL, 0) = 5 <0.000127>"#,
        r#"1796067219.452129 recvfrom(3<UNIX-STREAM:[20887->20888]>,  <unfinished ...>) = ?"#,
    ];

    fn exercise(reader: Vec<String>, writer: Vec<String>) {
        let log = |lines: Vec<String>| SideLog::parse("x", vec![(1, lines.join("\n"))]);
        let (r, w) = (log(reader), log(writer));
        for all in [false, true] {
            let x = Exchange::build(&r, &w, all, &["/tmp/s.sock".to_string()]);
            let _ = render::text(
                &x,
                "t",
                render::TextStyle {
                    width: 100,
                    color: true,
                },
            );
            let _ = render::svg(&x, "t");
            let _ = render::chrome_json(&x);
        }
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(line in "\\PC{0,200}") {
            let _ = parse_line(&line);
            let _ = split_args(&line);
            let _ = annotated_fds(&line);
            let _ = strip_annotations(&line);
        }

        #[test]
        fn strace_like_noise_never_panics(line in "[0-9. a-z_(){}\\[\\]<>\"\\\\=,:>-]{0,120}") {
            let _ = parse_line(&line);
            let _ = annotated_fds(&line);
            let _ = strip_annotations(&line);
            exercise(vec![line.clone()], vec![line]);
        }

        #[test]
        fn truncated_and_mangled_real_lines(
            which in 0..REAL.len(),
            cut in 0usize..300,
            insert in "\\PC{0,8}",
            at in 0usize..300,
        ) {
            let real = REAL[which];
            let cut = real.char_indices().map(|(i, _)| i).nth(cut).unwrap_or(real.len());
            let truncated = real[..cut].to_string();
            let at = real.char_indices().map(|(i, _)| i).nth(at).unwrap_or(real.len());
            let mangled = format!("{}{insert}{}", &real[..at], &real[at..]);
            let _ = parse_line(&truncated);
            let _ = parse_line(&mangled);
            exercise(
                vec![truncated, REAL[0].to_string(), REAL[5].to_string()],
                vec![mangled, REAL[1].to_string(), REAL[3].to_string(), REAL[4].to_string()],
            );
        }
    }

    #[test]
    fn nested_markers_do_not_recurse_deeply() {
        let deep = format!(
            "1.0 {}) = 1 <0.1>",
            "<... <unfinished ...> resumed>".repeat(10_000)
        );
        assert!(parse_line(&deep).is_err());
        let long = format!("1.0 read({}) = 1 <0.1>", "<".repeat(100_000));
        let _ = parse_line(&long);
        let _ = annotated_fds(&long);
    }

    #[test]
    fn real_lines_parse_and_link() {
        let reader = vec![REAL[0].to_string(), REAL[4].to_string()];
        let writer = vec![REAL[1].to_string(), REAL[3].to_string()];
        for line in REAL {
            assert!(parse_line(line).is_ok(), "{line}");
        }
        let log = |lines: Vec<String>| SideLog::parse("x", vec![(1, lines.join("\n"))]);
        let x = Exchange::build(&log(reader), &log(writer), false, &[]);
        assert_eq!(x.links.len(), 2, "{:?}", x.links);
        assert!(x.links.iter().all(|l| l.bytes == 37 || l.bytes == 40));
        assert!(x.unlinked.is_empty());
    }
}
