//! The three pictures of an [`Exchange`]: two terminal columns, an SVG sequence diagram and
//! Chrome trace-event JSON. All three share the rows: one per call in time order, a call that
//! blocked while the other process did something split into where it began and where it ended.

use std::fmt::Write as _;

use crate::model::{Class, Event, Exchange, Side};
use crate::strace;
use crate::strace::Ret;

/// What every picture says about the times in it.
pub const SLOWDOWN_NOTE: &str = "traced by strace: every system call stops both processes \
    for the tracer, so the times here are many times longer than an untraced run's";

/// What the shared-memory pictures say instead of an arrow.
pub const SHM_NOTE: &str = "shared memory: the bytes moved by plain memory writes: no system \
    call sees them; both processes attach the segment (shmat) and take the lock (semtimedop)";

/// Where a row sits in its call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowKind {
    /// The whole call on one line.
    Call,
    /// A call that blocked while the other process ran: where it began...
    Begin,
    /// ... and where it returned.
    End,
}

/// One line of the pictures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row {
    pub event: usize,
    pub kind: RowKind,
    pub at_us: u64,
}

/// The rows of `x` in time order.
pub fn rows(x: &Exchange) -> Vec<Row> {
    let starts: Vec<u64> = x.events.iter().map(|e| e.start_us).collect();
    let mut rows = Vec::with_capacity(x.events.len() + 8);
    for (i, e) in x.events.iter().enumerate() {
        let end = e.end_us();
        let next = starts.partition_point(|&s| s <= e.start_us);
        // Only a call that waited (1 ms or more) while the other process ran is split.
        let waited = e.repeat == 1
            && e.dur_us.is_some_and(|d| d >= 1000)
            && next < starts.len()
            && starts[next] < end;
        // A receive that began before the send it got its bytes from is split whatever its
        // length, so the picture never shows bytes arriving before they left.
        let early = x.links.iter().any(|l| {
            (l.recv == i && x.events[l.send].start_us > e.start_us)
                || (l.send == i && x.events[l.recv].end_us() < end)
        });
        let overlapped = waited || (early && e.repeat == 1 && e.dur_us.is_some());
        if e.dur_us.is_none() && e.repeat == 1 {
            rows.push(Row {
                event: i,
                kind: RowKind::Begin,
                at_us: e.start_us,
            });
        } else if overlapped {
            rows.push(Row {
                event: i,
                kind: RowKind::Begin,
                at_us: e.start_us,
            });
            rows.push(Row {
                event: i,
                kind: RowKind::End,
                at_us: end,
            });
        } else {
            rows.push(Row {
                event: i,
                kind: RowKind::Call,
                at_us: e.start_us,
            });
        }
    }
    rows.sort_by_key(|r| (r.at_us, r.kind == RowKind::End));
    rows
}

/// The call's arguments as a learner reads them: descriptors without their annotations,
/// socket addresses as `"/path"` or `host:port`, long strings cut.
pub fn short_args(e: &Event) -> String {
    let text = strace::strip_annotations(&e.args);
    shorten_strings(&simplify_sockaddrs(&text), 18)
}

fn simplify_sockaddrs(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("{sa_family=") {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let end = tail.find('}').map_or(tail.len(), |e| e + 1);
        let addr = &tail[..end];
        let field = |name: &str| {
            let from = addr.find(name)? + name.len();
            let value = &addr[from..];
            let stop = value.find([',', '}', ')']).unwrap_or(value.len());
            Some(value[..stop].trim_end_matches(')').to_string())
        };
        if let Some(path) = field("sun_path=") {
            out.push_str(&path);
        } else if let (Some(port), Some(host)) = (
            field("sin_port=htons(").or_else(|| field("sin6_port=htons(")),
            field("inet_addr(").or_else(|| field("inet_pton(AF_INET6, ")),
        ) {
            let _ = write!(out, "{}:{port}", host.trim_matches('"'));
        } else {
            out.push_str(addr);
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

fn shorten_strings(text: &str, keep: usize) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '"' {
            out.push(c);
            continue;
        }
        let mut body = String::new();
        let mut closed = false;
        while let Some(c) = chars.next() {
            if c == '\\' {
                body.push(c);
                if let Some(n) = chars.next() {
                    body.push(n);
                }
            } else if c == '"' {
                closed = true;
                break;
            } else {
                body.push(c);
            }
        }
        // strace marks a string it cut with `...` after the closing quote.
        let cut_by_strace = chars.peek() == Some(&'.');
        if cut_by_strace {
            while chars.peek() == Some(&'.') {
                chars.next();
            }
        }
        out.push('"');
        // Paths are what a learner looks for: keep more of them than of payloads.
        let keep = if body.starts_with('/') {
            keep.max(44)
        } else {
            keep
        };
        if body.chars().count() > keep || cut_by_strace {
            out.extend(body.chars().take(keep));
            out.push('…');
        } else {
            out.push_str(&body);
        }
        if closed {
            out.push('"');
        }
    }
    out
}

/// `name(args) = result` cut to `width` characters, the name and the result always kept.
pub fn fit_call(e: &Event, width: usize, with_result: bool) -> String {
    let result = if with_result {
        let mut r = format!(" = {}", e.ret_text());
        if e.repeat > 1 {
            let _ = write!(r, " ×{}", e.repeat);
        }
        r
    } else {
        String::new()
    };
    let args = short_args(e);
    let fixed = e.name.chars().count() + 2 + result.chars().count();
    let room = width.saturating_sub(fixed);
    let args = if args.chars().count() > room {
        let mut cut: String = args.chars().take(room.saturating_sub(1)).collect();
        cut.push('…');
        cut
    } else {
        args
    };
    let text = format!("{}({args}){result}", e.name);
    clip(&text, width)
}

fn clip(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// `491.1 ms`, `12 µs`.
pub fn duration(us: u64) -> String {
    if us >= 1000 {
        format!("{:.1} ms", us as f64 / 1000.0)
    } else {
        format!("{us} µs")
    }
}

/// The text of a row in a column `width` wide.
pub fn row_text(x: &Exchange, index: usize, row: &Row, width: usize) -> String {
    let e = &x.events[index];
    let mark = x
        .link_of(index)
        .map(|l| format!(" [#{}]", l.id))
        .unwrap_or_default();
    let room = width.saturating_sub(mark.chars().count());
    let text = match row.kind {
        RowKind::Call => {
            // How long the call took, or a retry loop kept trying: worth more than arguments.
            let took = e.end_us().saturating_sub(e.start_us);
            let extra = match (took >= 1000, e.repeat > 1) {
                (false, _) => String::new(),
                (true, true) => format!(" in {}", duration(took)),
                (true, false) => format!(" ({})", duration(took)),
            };
            let t = fit_call(e, room.saturating_sub(extra.chars().count()), true);
            format!("{t}{extra}")
        }
        RowKind::Begin if e.dur_us.is_none() => {
            let t = fit_call(e, room.saturating_sub(16), false);
            format!("{t} never returned")
        }
        RowKind::Begin => {
            let t = fit_call(e, room.saturating_sub(8), false);
            format!("{t} blocks…")
        }
        RowKind::End => clip(
            &format!(
                "… {} = {} after {}",
                e.name,
                e.ret_text(),
                duration(e.dur_us.unwrap_or(0))
            ),
            room,
        ),
    };
    // Only the row where the bytes move carries the mark: the send's call, the receive's end.
    let marked = match row.kind {
        RowKind::Call => true,
        RowKind::Begin => e.class == Class::Send,
        RowKind::End => e.class != Class::Send,
    };
    if marked {
        format!("{text}{mark}")
    } else {
        text
    }
}

/// Options of the terminal picture.
#[derive(Debug, Clone, Copy)]
pub struct TextStyle {
    pub width: usize,
    pub color: bool,
}

const GUTTER: usize = 13;

/// The two columns (reader | writer), one line per row, an arrow between them per transfer.
pub fn text(x: &Exchange, title: &str, style: TextStyle) -> String {
    let width = style.width.max(60);
    // time (8), a space, the reader, " │", the gutter, "│ ", the writer.
    let col = (width - 9 - GUTTER - 2) / 2;
    let paint = |code: &str, text: &str| {
        if style.color && !text.trim().is_empty() {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    };
    let mut out = String::new();
    let _ = writeln!(out, "{}", paint("1", &clip(title, width)));
    for line in wrap(SLOWDOWN_NOTE, width) {
        let _ = writeln!(out, "{}", paint("2", &line));
    }
    let head = |side: Side| {
        clip(
            &format!(
                "{}: {} (pid {})",
                side.name(),
                x.labels[side.index()],
                x.pids[side.index()]
            ),
            col,
        )
    };
    let _ = writeln!(
        out,
        "{:>8} {} │{}│ {}",
        "ms",
        paint("1;36", &pad(&head(Side::Reader), col)),
        " ".repeat(GUTTER - 2),
        paint("1;33", &head(Side::Writer)),
    );
    let _ = writeln!(out, "{}", "─".repeat(width));
    for row in rows(x) {
        let e = &x.events[row.event];
        let text = row_text(x, row.event, &row, col);
        let code = match (&e.ret, e.side) {
            (Ret::Error { .. }, _) => "31",
            (_, Side::Reader) => "36",
            (_, Side::Writer) => "33",
        };
        let painted = paint(code, &pad(&text, col));
        let (left, right) = match e.side {
            Side::Reader => (painted, String::new()),
            Side::Writer => (pad("", col), paint(code, &text)),
        };
        let arrow = gutter_arrow(x, row.event, &row);
        let gutter = match &arrow {
            Some(a) => paint("1;32", a),
            None => " ".repeat(GUTTER - 2),
        };
        let time = (row.at_us.saturating_sub(x.origin_us)) as f64 / 1000.0;
        let line = format!("{time:>8.3} {left} │{gutter}│ {right}");
        let _ = writeln!(out, "{}", line.trim_end());
    }
    let _ = writeln!(out, "{}", "─".repeat(width));
    for line in legend(x) {
        for wrapped in wrap(&line, width) {
            let _ = writeln!(out, "{wrapped}");
        }
    }
    out
}

/// The arrow in the gutter on the row where a send hands its bytes over.
fn gutter_arrow(x: &Exchange, index: usize, row: &Row) -> Option<String> {
    let e = &x.events[index];
    if e.class != Class::Send || row.kind == RowKind::End {
        return None;
    }
    let links: Vec<_> = x.links.iter().filter(|l| l.send == index).collect();
    let first = links.first()?;
    let bytes: u64 = links.iter().map(|l| l.bytes).sum();
    let inner = GUTTER - 2;
    let mut label = format!("#{} {bytes} B", first.id);
    if label.chars().count() > inner - 2 {
        label = format!("#{}", first.id);
    }
    let fill = inner - 1 - label.chars().count();
    Some(match e.side {
        Side::Writer => format!("◀{}{label}", "─".repeat(fill)),
        Side::Reader => format!("{label}{}▶", "─".repeat(fill)),
    })
}

fn pad(text: &str, width: usize) -> String {
    let n = text.chars().count();
    format!("{text}{}", " ".repeat(width.saturating_sub(n)))
}

/// `text` in lines of at most `width` characters, continuation lines indented by two.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
            line.push_str("  ");
        } else if !line.is_empty() && !line.ends_with("  ") {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.trim().is_empty() {
        lines.push(line);
    }
    lines
}

/// The lines under the pictures: each transfer with its channel, what found no counterpart,
/// the shared-memory lesson.
pub fn legend(x: &Exchange) -> Vec<String> {
    let mut lines = Vec::new();
    if x.links.is_empty() && !x.shared_memory {
        lines.push("no transfer was linked: no bytes went from one process to the other".into());
    }
    for l in &x.links {
        let (s, r) = (&x.events[l.send], &x.events[l.recv]);
        lines.push(format!(
            "#{}: {} {} -> {} {}: {} bytes through the {}",
            l.id,
            s.side.name(),
            s.name,
            r.side.name(),
            r.name,
            l.bytes,
            l.via
        ));
    }
    for &i in &x.unlinked {
        let e = &x.events[i];
        lines.push(format!(
            "no counterpart: {} {}(…) = {} (nothing in the other process's trace took or sent these bytes)",
            e.side.name(),
            e.name,
            e.ret_text()
        ));
    }
    if x.shared_memory {
        lines.push(SHM_NOTE.to_string());
    }
    if x.unparsed > 0 {
        lines.push(format!(
            "{} strace lines could not be read and were skipped",
            x.unparsed
        ));
    }
    lines
}

fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters XML 1.0 does not allow at all.
            c if ((c as u32) < 0x20 && c != '\n' && c != '\t')
                || matches!(c, '\u{fffe}' | '\u{ffff}') =>
            {
                out.push('?');
            }
            c => out.push(c),
        }
    }
    out
}

/// The SVG sequence diagram: a lifeline per process and one for the kernel objects between
/// them, an arrow into the kernel where a send hands bytes over and one out of it where the
/// receive takes them, a box over the time a call blocked.
pub fn svg(x: &Exchange, title: &str) -> String {
    const ROW: f64 = 20.0;
    const TOP: f64 = 110.0;
    const WIDTH: f64 = 1240.0;
    let lane = |side: Side| match side {
        Side::Reader => 440.0,
        Side::Writer => 860.0,
    };
    let kernel = 650.0;
    let label_chars = 52;
    let rows = rows(x);
    let legend = legend(x);
    let mut y_of_row = Vec::with_capacity(rows.len());
    for (i, _) in rows.iter().enumerate() {
        y_of_row.push(TOP + ROW * (i as f64 + 0.5));
    }
    let bottom = TOP + ROW * rows.len() as f64 + 10.0;
    let height = bottom + 40.0 + 18.0 * (legend.len() as f64 + 2.0);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="DejaVu Sans Mono, Menlo, Consolas, monospace" font-size="11">"#
    );
    let _ = writeln!(
        s,
        r##"<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#2e7d32"/></marker></defs>"##
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="16" y="24" font-size="15" font-weight="bold">{}</text>"#,
        xml(title)
    );
    let _ = writeln!(
        s,
        r##"<text x="16" y="42" fill="#666">{}</text>"##,
        xml(&clip(SLOWDOWN_NOTE, 165))
    );
    // Heads and lifelines.
    let heads = [
        (
            lane(Side::Reader),
            format!("reader: {}", x.labels[0]),
            format!("pid {}", x.pids[0]),
            "#1565c0",
        ),
        (kernel, "kernel".to_string(), kernel_object(x), "#555"),
        (
            lane(Side::Writer),
            format!("writer: {}", x.labels[1]),
            format!("pid {}", x.pids[1]),
            "#e65100",
        ),
    ];
    for (cx, name, sub, color) in &heads {
        let name = clip(name, 30);
        let sub = clip(sub, 30);
        let _ = writeln!(
            s,
            r#"<rect x="{}" y="56" width="204" height="38" rx="4" fill="white" stroke="{color}" stroke-width="1.5"/>"#,
            cx - 102.0
        );
        let _ = writeln!(
            s,
            r#"<text x="{cx}" y="72" text-anchor="middle" font-weight="bold" fill="{color}">{}</text><text x="{cx}" y="87" text-anchor="middle" fill="{color}">{}</text>"#,
            xml(&name),
            xml(&sub)
        );
        let _ = writeln!(
            s,
            r#"<line x1="{cx}" y1="94" x2="{cx}" y2="{bottom}" stroke="{color}" stroke-dasharray="4 3" stroke-opacity="0.6"/>"#
        );
    }
    let _ = writeln!(
        s,
        r##"<text x="16" y="{}" fill="#666">ms</text>"##,
        TOP - 4.0
    );
    // Blocking boxes first, under the text.
    for (i, row) in rows.iter().enumerate() {
        if row.kind != RowKind::Begin {
            continue;
        }
        let e = &x.events[row.event];
        let end_row = rows
            .iter()
            .position(|r| r.event == row.event && r.kind == RowKind::End);
        let y0 = y_of_row[i] - 7.0;
        let y1 = end_row.map_or(bottom, |j| y_of_row[j] + 7.0);
        let color = if e.side == Side::Reader {
            "#1565c0"
        } else {
            "#e65100"
        };
        let _ = writeln!(
            s,
            r#"<rect x="{}" y="{y0}" width="12" height="{}" fill="{color}" fill-opacity="0.18" stroke="{color}"><title>{} blocked {}</title></rect>"#,
            lane(e.side) - 6.0,
            y1 - y0,
            xml(&e.name),
            xml(&e.dur_us.map_or("until the end".to_string(), duration))
        );
    }
    // Calls.
    for (i, row) in rows.iter().enumerate() {
        let e = &x.events[row.event];
        let y = y_of_row[i];
        let text = row_text(x, row.event, row, label_chars);
        let fill = match (&e.ret, e.side) {
            (Ret::Error { .. }, _) => "#c62828",
            (_, Side::Reader) => "#0d47a1",
            (_, Side::Writer) => "#bf360c",
        };
        let (tx, anchor) = match e.side {
            Side::Reader => (lane(Side::Reader) - 12.0, "end"),
            Side::Writer => (lane(Side::Writer) + 12.0, "start"),
        };
        let time = row.at_us.saturating_sub(x.origin_us) as f64 / 1000.0;
        let _ = writeln!(
            s,
            r##"<text x="16" y="{}" fill="#888">{time:.3}</text><circle cx="{}" cy="{y}" r="3" fill="{fill}"/><text x="{tx}" y="{}" text-anchor="{anchor}" fill="{fill}"><title>{}</title>{}</text>"##,
            y + 4.0,
            lane(e.side),
            y + 4.0,
            xml(&format!("{}({}) = {}", e.name, e.args, e.ret_text())),
            xml(&text)
        );
    }
    // Transfers: into the kernel at the send, out of it at the receive.
    let y_where = |event: usize, want_end: bool| {
        rows.iter()
            .enumerate()
            .filter(|(_, r)| r.event == event)
            .find(|(_, r)| (r.kind == RowKind::End) == want_end || r.kind == RowKind::Call)
            .or_else(|| rows.iter().enumerate().find(|(_, r)| r.event == event))
            .map(|(i, _)| y_of_row[i])
    };
    for l in &x.links {
        let (se, re) = (&x.events[l.send], &x.events[l.recv]);
        let (Some(ys), Some(yr)) = (y_where(l.send, false), y_where(l.recv, true)) else {
            continue;
        };
        let (xs, xr) = (lane(se.side), lane(re.side));
        // Each transfer waits in the kernel on its own bar, a little apart from the others'.
        let kx = kernel + 6.0 * ((l.id + 2) % 3) as f64 - 6.0;
        let toward = |from: f64| if from < kx { -1.0 } else { 1.0 };
        let _ = writeln!(
            s,
            r##"<line x1="{xs}" y1="{ys}" x2="{}" y2="{ys}" stroke="#2e7d32" stroke-width="2" marker-end="url(#arrow)"/>"##,
            kx + 6.0 * toward(xs)
        );
        let _ = writeln!(
            s,
            r##"<line x1="{kx}" y1="{ys}" x2="{kx}" y2="{yr}" stroke="#2e7d32" stroke-width="3" stroke-opacity="0.5"/>"##
        );
        let _ = writeln!(
            s,
            r##"<line x1="{kx}" y1="{yr}" x2="{}" y2="{yr}" stroke="#2e7d32" stroke-width="2" marker-end="url(#arrow)"/>"##,
            xr + if xr < kx { 8.0 } else { -8.0 }
        );
        let _ = writeln!(
            s,
            r##"<text x="{}" y="{}" text-anchor="middle" fill="#2e7d32" font-weight="bold">#{} {} B</text>"##,
            (xs + kernel) / 2.0,
            ys - 4.0,
            l.id,
            l.bytes
        );
    }
    if x.shared_memory {
        // Between the first and the last attach, the bytes moved where strace cannot see.
        let attached: Vec<f64> = rows
            .iter()
            .enumerate()
            .filter(|(_, r)| {
                let e = &x.events[r.event];
                e.name == "shmat" && e.ret.value().is_some()
            })
            .map(|(i, _)| y_of_row[i])
            .collect();
        if let (Some(first), Some(last)) = (attached.first(), attached.last()) {
            let y = (first + last) / 2.0;
            let _ = writeln!(
                s,
                r##"<rect x="{}" y="{}" width="236" height="34" rx="4" fill="#f3e5f5" stroke="#6a1b9a"/><text x="{kernel}" y="{}" text-anchor="middle" fill="#6a1b9a">the bytes move by memory writes:</text><text x="{kernel}" y="{}" text-anchor="middle" fill="#6a1b9a">no system call sees them</text>"##,
                kernel - 118.0,
                y - 17.0,
                y - 3.0,
                y + 11.0
            );
        }
        for (i, row) in rows.iter().enumerate() {
            let e = &x.events[row.event];
            if e.name == "shmat" && e.ret.value().is_some() {
                let _ = writeln!(
                    s,
                    r##"<line x1="{}" y1="{y}" x2="{kernel}" y2="{y}" stroke="#6a1b9a" stroke-width="1.5" stroke-dasharray="5 3"/><text x="{}" y="{}" text-anchor="middle" fill="#6a1b9a">segment mapped</text>"##,
                    lane(e.side),
                    (lane(e.side) + kernel) / 2.0,
                    y_of_row[i] - 4.0,
                    y = y_of_row[i]
                );
            }
        }
    }
    let mut y = bottom + 28.0;
    for line in &legend {
        let color = if line.starts_with('#') {
            "#2e7d32"
        } else {
            "#333"
        };
        let _ = writeln!(
            s,
            r#"<text x="16" y="{y}" fill="{color}">{}</text>"#,
            xml(&clip(line, 165))
        );
        y += 18.0;
    }
    s.push_str("</svg>\n");
    s
}

/// What the kernel lifeline stands for: the channel of the first transfer, shortened.
fn kernel_object(x: &Exchange) -> String {
    if x.shared_memory {
        return "a shared memory segment".to_string();
    }
    match x.links.first() {
        // `Unix stream socket /tmp/x.sock (inode 1)` -> `Unix stream socket`.
        Some(l) => {
            let head = l.via.split(" (inode").next().unwrap_or(&l.via);
            head.split(" /").next().unwrap_or(head).trim().to_string()
        }
        None => "the IPC object".to_string(),
    }
}

/// Chrome trace-event JSON (Perfetto, chrome://tracing): a track per process and thread, a
/// slice per call, a flow from each send to the receive that took its bytes.
pub fn chrome_json(x: &Exchange) -> String {
    use serde_json::{Value, json};
    let mut events: Vec<Value> = Vec::new();
    for side in [Side::Reader, Side::Writer] {
        events.push(json!({
            "ph": "M", "name": "process_name", "pid": x.pids[side.index()],
            "args": {"name": format!("{}: {}", side.name(), x.labels[side.index()])}
        }));
        events.push(json!({
            "ph": "M", "name": "process_sort_index", "pid": x.pids[side.index()],
            "args": {"sort_index": side.index()}
        }));
    }
    let mut threads: Vec<(Side, u32)> = x.events.iter().map(|e| (e.side, e.tid)).collect();
    threads.sort_unstable();
    threads.dedup();
    for (side, tid) in threads {
        let pid = x.pids[side.index()];
        let name = if tid == pid {
            "main thread".to_string()
        } else {
            format!("thread {tid}")
        };
        events.push(json!({
            "ph": "M", "name": "thread_name", "pid": pid, "tid": tid, "args": {"name": name}
        }));
    }
    let rel = |us: u64| us.saturating_sub(x.origin_us) as f64;
    // A slice needs a width to be seen and to hold a flow's end.
    let width = |e: &Event| e.end_us().saturating_sub(e.start_us).max(1) as f64;
    for (i, e) in x.events.iter().enumerate() {
        let mut args = json!({
            "call": format!("{}({})", e.name, e.args),
            "result": e.ret_text(),
        });
        if e.repeat > 1 {
            args["repeated"] = json!(e.repeat);
        }
        if let Some(bytes) = e.bytes {
            args["bytes"] = json!(bytes);
        }
        let links: Vec<usize> = x
            .links
            .iter()
            .filter(|l| l.send == i || l.recv == i)
            .map(|l| l.id)
            .collect();
        if let Some(l) = x.link_of(i) {
            args["transfer"] = json!(format!("#{} {} bytes via {}", l.id, l.bytes, l.via));
            args["links"] = json!(links);
        }
        events.push(json!({
            "ph": "X", "name": e.name, "cat": format!("{:?}", e.class).to_lowercase(),
            "pid": x.pids[e.side.index()], "tid": e.tid,
            "ts": rel(e.start_us), "dur": width(e), "args": args
        }));
    }
    for l in &x.links {
        let (s, r) = (&x.events[l.send], &x.events[l.recv]);
        let name = format!("#{} {} B", l.id, l.bytes);
        events.push(json!({
            "ph": "s", "id": l.id, "name": name, "cat": "transfer", "args": {"bytes": l.bytes},
            "pid": x.pids[s.side.index()], "tid": s.tid,
            "ts": rel(s.start_us) + width(s) / 2.0
        }));
        events.push(json!({
            "ph": "f", "bp": "e", "id": l.id, "name": name, "cat": "transfer",
            "pid": x.pids[r.side.index()], "tid": r.tid,
            "ts": rel(r.start_us) + width(r) / 2.0
        }));
    }
    let doc = json!({
        "traceEvents": events,
        "displayTimeUnit": "ms",
        "otherData": {"note": SLOWDOWN_NOTE, "legend": legend(x)}
    });
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}
