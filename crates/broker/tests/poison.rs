//! An entry nobody can print (a "poison" entry, written by someone else before a good message):
//! readers fail on it, leaving it pending, until Redis has delivered it --max-deliveries times;
//! then one reader moves it to the dead-letter stream (same id, same fields) and acknowledges it
//! in one EVAL, and prints the good message. Nothing is deleted from the stream.

mod common;

use common::{GROUP, PRINTED, READER, STREAM, Server, WRITER, available, ours};
use ipc_testkit::run;

const DEAD: &str = "ipc-message-queues:dead";

/// An entry as XRANGE gives it: id and its fields, in order, as bytes.
type Entries = Vec<(String, Vec<Vec<u8>>)>;

fn entries(server: &Server, key: &str) -> Entries {
    redis::cmd("XRANGE")
        .arg(key)
        .arg("-")
        .arg("+")
        .query(&mut server.admin())
        .expect("XRANGE")
}

/// A bad entry then the blog's message; the bad entry's id.
fn poison_then_good(server: &Server, fields: &[(&str, &[u8])]) -> String {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(STREAM).arg("*");
    for (name, value) in fields {
        cmd.arg(*name).arg(*value);
    }
    let id: String = cmd.query(&mut server.admin()).expect("XADD the bad entry");
    run("writer", &mut ours(WRITER, &server.unix_url(), &[]), None).assert_success();
    id
}

fn reader(url: &str, extra: &[&str]) -> std::process::Command {
    let mut args = vec!["--claim-after", "0"];
    args.extend_from_slice(extra);
    ours(READER, url, &args)
}

#[test]
fn fault_an_entry_nobody_can_print_is_moved_aside_after_max_deliveries() {
    if !available() {
        return;
    }
    let server = Server::start(&[]);
    let url = server.unix_url();
    let fields: &[(&str, &[u8])] = &[("type", b"1"), ("note", b"someone else's")];
    let bad = poison_then_good(&server, fields);

    for (n, left) in [
        ("once", "2 more deliveries"),
        ("2 times", "1 more delivery"),
    ] {
        run("reader", &mut reader(&url, &[]), None).assert_failure(
            1,
            &format!(
                "has no `body` string field: not one of ours: left pending, not acknowledged; \
                 delivered {n}: after {left} it is moved to stream {DEAD} (--max-deliveries 3)"
            ),
        );
        assert_eq!(server.pending(STREAM, GROUP), 1);
    }
    let third = run("reader", &mut reader(&url, &[]), None);
    third.assert_success().assert_stdout(PRINTED);
    for part in [
        format!("entry {bad} of stream {STREAM} has no `body` string field"),
        format!("delivered 3 times, so moved to stream {DEAD} as entry {bad} and acknowledged"),
        format!("redis-cli XRANGE {DEAD} {bad} {bad}"),
    ] {
        assert!(third.stderr.contains(&part), "{part}: {}", third.stderr);
    }

    // Moved, not dropped: the dead-letter stream holds exactly the bad entry, its id and
    // fields; the stream still holds both (acknowledged, never deleted); nothing pending.
    let expected: Vec<Vec<u8>> = fields
        .iter()
        .flat_map(|(name, value)| [name.as_bytes().to_vec(), value.to_vec()])
        .collect();
    assert_eq!(entries(&server, DEAD), vec![(bad.clone(), expected)]);
    assert_eq!(entries(&server, STREAM).len(), 2);
    assert_eq!(server.pending(STREAM, GROUP), 0);
    run("reader", &mut reader(&url, &["--timeout", "0.5"]), None)
        .assert_failure(124, "waiting for a message");
}

#[test]
fn fault_with_max_deliveries_0_an_unprintable_entry_is_never_moved() {
    if !available() {
        return;
    }
    let server = Server::start(&[]);
    let url = server.unix_url();
    poison_then_good(&server, &[("type", b"1"), ("body", b"not serialized")]);
    for _ in 0..4 {
        run(
            "reader",
            &mut reader(&url, &["--max-deliveries", "0"]),
            None,
        )
        .assert_failure(1, "never moved aside (--max-deliveries 0)");
    }
    let exists: usize = server.query(&["EXISTS", DEAD]);
    assert_eq!(exists, 0);
    assert_eq!(server.pending(STREAM, GROUP), 1);
    // A reader that can print it (--raw) still gets it: it was never moved.
    run(
        "reader",
        &mut reader(&url, &["--raw", "--max-deliveries", "0"]),
        None,
    )
    .assert_success()
    .assert_stdout(b"not serialized\n");
}

/// --dead-letter KEY, --max-deliveries 1, binary fields kept byte for byte, and a dead-letter
/// stream that already holds a later id: the entry gets a new id there, which the line names.
#[test]
fn fault_a_dead_letter_stream_of_ours_with_later_ids_takes_the_entry_under_a_new_id() {
    if !available() {
        return;
    }
    let server = Server::start(&[]);
    let url = server.unix_url();
    let body: &[u8] = &[0, 0xff, b'\n', 0x80];
    let bad = poison_then_good(&server, &[("type", b"1"), ("body", body)]);
    let _: String = server.query(&["XADD", "parked", "9999999999999-0", "older", "x"]);
    let moved = run(
        "reader",
        &mut reader(&url, &["--max-deliveries", "1", "--dead-letter", "parked"]),
        None,
    );
    moved.assert_success().assert_stdout(PRINTED);
    let parked = entries(&server, "parked");
    assert_eq!(parked.len(), 2);
    let (there, fields) = &parked[1];
    assert_ne!(there, &bad);
    assert_eq!(
        fields,
        &vec![
            b"type".to_vec(),
            b"1".to_vec(),
            b"body".to_vec(),
            body.to_vec()
        ]
    );
    assert!(
        moved
            .stderr
            .contains(&format!("moved to stream parked as entry {there}")),
        "{}",
        moved.stderr
    );
    assert_eq!(server.pending(STREAM, GROUP), 0);
}

/// A Redis that refuses scripts: the entry cannot be moved and acknowledged in one step, so it
/// is not moved at all (today's behaviour), and the reader says why.
#[test]
fn fault_without_scripting_an_unprintable_entry_stays_pending() {
    if !available() {
        return;
    }
    // EVAL renamed away, and an ACL without @scripting (NOPERM).
    for acl in [false, true] {
        let server = match acl {
            false => Server::start(&["--rename-command", "EVAL", ""]),
            true => Server::start(&[]),
        };
        if acl {
            let _: () = server.query(&["ACL", "SETUSER", "default", "-@scripting"]);
        }
        let url = server.unix_url();
        poison_then_good(&server, &[("body", b"not serialized")]);
        run(
            "reader",
            &mut reader(&url, &["--max-deliveries", "1"]),
            None,
        )
        .assert_failure(1, "Redis refused the script that moves and acknowledges it");
        assert_eq!(server.pending(STREAM, GROUP), 1);
        let exists: usize = server.query(&["EXISTS", DEAD]);
        assert_eq!(exists, 0);
    }
}
