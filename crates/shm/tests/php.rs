//! Interop with real PHP: the blog's shared-memory writers and readers (`tests/php/sysvshm-*.php`
//! with `shm_put_var`/`shm_get_var`, `tests/php/shmop-*.php` with `shmop_write`/`shmop_read`)
//! against our `shm-reader` and `shm-writer`, in both directions, with the blog's message, UTF-8,
//! binary, empty and the largest message a 1024-byte segment holds (943 bytes in PHP's sysvshm
//! layout, 1024 raw), and with ints, floats, bools and null as PHP's `echo` prints them. The
//! blog's order: the writer runs first and leaves the segment, the reader removes it. Each test
//! has its own key file and leaves no segment behind. Skipped (one line) without `php` outside
//! CI.

use std::ffi::OsString;
use std::path::Path;

use ipc_testkit::ours;
use ipc_testkit::php::{Php, payloads};
use ipc_testkit::{Finished, Proc, assert_no_sysv_objects, key_file, temp_dir};

const BLOG_MESSAGE: &str = "Hello from Writer: Shared Memory";
const SEGMENT: usize = 1024;
/// The longest string `shm_put_var` fits in a fresh 1024-byte segment (php-formats.md).
const LARGEST_SYSVSHM_STRING: usize = 943;

/// `shm-reader|shm-writer --key-file KEY --timeout 5 EXTRA...`, run to completion.
fn our_run(side: &str, key: &Path, extra: &[OsString]) -> Finished {
    let binary = match side {
        "reader" => env!("CARGO_BIN_EXE_shm-reader"),
        _ => env!("CARGO_BIN_EXE_shm-writer"),
    };
    let mut command = ours(binary);
    command
        .arg("--key-file")
        .arg(key)
        .args(["--timeout", "5"])
        .args(extra);
    Proc::spawn(&format!("shm-{side}"), &mut command).finish()
}

/// `--key-file KEY EXTRA...` for a PHP peer.
fn php_args(key: &Path, extra: &[OsString]) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["--key-file".into(), key.into()];
    args.extend_from_slice(extra);
    args
}

fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

/// PHP's `shm_put_var` (which serializes) into a segment our reader unserializes and prints.
#[test]
fn php_sysvshm_writer_to_our_reader() {
    let Some(php) = Php::find() else { return };
    for payload in payloads(BLOG_MESSAGE, LARGEST_SYSVSHM_STRING) {
        println!("case: {}", payload.name);
        let dir = temp_dir();
        let key = key_file(dir.path());
        let message = payload.sender_args(&dir.path().join("message"));
        php.run("sysvshm-writer.php", php_args(&key, &message))
            .assert_success()
            .assert_stdout(b"");
        our_run("reader", &key, &[])
            .assert_success()
            .assert_stdout(&payload.printed());
        assert_no_sysv_objects(&key, b'T');
    }
}

/// Our writer lays out PHP's header and record; PHP's `shm_get_var` reads the variable back.
#[test]
fn our_writer_to_php_sysvshm_reader() {
    let Some(php) = Php::find() else { return };
    for payload in payloads(BLOG_MESSAGE, LARGEST_SYSVSHM_STRING) {
        println!("case: {}", payload.name);
        let dir = temp_dir();
        let key = key_file(dir.path());
        let message = payload.sender_args(&dir.path().join("message"));
        our_run("writer", &key, &message)
            .assert_success()
            .assert_stdout(b"");
        php.run(
            "sysvshm-reader.php",
            php_args(&key, &os(&["--timeout", "5"])),
        )
        .assert_success()
        .assert_stdout(&payload.printed());
        assert_no_sysv_objects(&key, b'T');
    }
}

/// One byte more than a 1024-byte segment holds: PHP's writer and ours both refuse it, and ours
/// removes the segment it created for it.
#[test]
fn a_sysvshm_string_too_big_for_the_segment_is_refused_by_both() {
    let Some(php) = Php::find() else { return };
    let dir = temp_dir();
    let key = key_file(dir.path());
    let file = dir.path().join("message");
    std::fs::write(&file, vec![b'x'; LARGEST_SYSVSHM_STRING + 1]).unwrap();
    let message = vec![OsString::from("--message-file"), file.into()];
    let ours = our_run("writer", &key, &message);
    assert_eq!(ours.status.code(), Some(1), "{ours:?}");
    assert_no_sysv_objects(&key, b'T');
    let theirs = php.run("sysvshm-writer.php", php_args(&key, &message));
    assert_eq!(theirs.status.code(), Some(1), "{theirs:?}");
    assert!(
        theirs.stderr.contains("Not enough shared memory left"),
        "{theirs:?}"
    );
    // PHP's shm_attach created the segment before the put failed; the reader side removes it.
    php.run(
        "sysvshm-reader.php",
        php_args(&key, &os(&["--timeout", "0.2"])),
    )
    .assert_failure(124, "timed out");
    assert_no_sysv_objects(&key, b'T');
}

/// Non-string values: the writer flag, what `echo` prints, what `json_encode` prints.
const VALUES: &[(&[&str], &str, &str)] = &[
    (&["--int", "-42"], "-42", "-42"),
    (
        &["--int", "9223372036854775807"],
        "9223372036854775807",
        "9223372036854775807",
    ),
    (&["--float", "0.1"], "0.1", "0.1"),
    (&["--float", "1e17"], "1.0E+17", "1.0e+17"),
    (
        &["--float", "0.30000000000000004"],
        "0.3",
        "0.30000000000000004",
    ),
    (&["--bool", "true"], "1", "true"),
    (&["--bool", "false"], "", "false"),
    (&["--null"], "", "null"),
];

/// PHP stores ints, floats, bools and null; our reader prints them as `echo` and as
/// `json_encode` would.
#[test]
fn php_sysvshm_values_read_by_our_reader() {
    let Some(php) = Php::find() else { return };
    for (flag, echoed, json) in VALUES {
        println!("case: {flag:?}");
        for (reader_args, printed) in [(vec![], echoed), (os(&["--format", "json"]), json)] {
            let dir = temp_dir();
            let key = key_file(dir.path());
            php.run("sysvshm-writer.php", php_args(&key, &os(flag)))
                .assert_success();
            our_run("reader", &key, &reader_args)
                .assert_success()
                .assert_stdout(format!("{printed}\n").as_bytes());
            assert_no_sysv_objects(&key, b'T');
        }
    }
}

/// Our writer's ints, floats, bools and null, as PHP's `shm_get_var` and `echo` show them.
#[test]
fn our_sysvshm_values_read_by_php() {
    let Some(php) = Php::find() else { return };
    for (flag, echoed, _) in VALUES {
        println!("case: {flag:?}");
        let dir = temp_dir();
        let key = key_file(dir.path());
        our_run("writer", &key, &os(flag)).assert_success();
        php.run(
            "sysvshm-reader.php",
            php_args(&key, &os(&["--timeout", "5"])),
        )
        .assert_success()
        .assert_stdout(format!("{echoed}\n").as_bytes());
        assert_no_sysv_objects(&key, b'T');
    }
}

/// PHP's `shmop_write` into a raw segment; our `--api shmop` reader prints up to the first NUL,
/// or exactly `--length N` bytes, which a payload with NULs needs.
#[test]
fn php_shmop_writer_to_our_reader() {
    let Some(php) = Php::find() else { return };
    for payload in payloads(BLOG_MESSAGE, SEGMENT) {
        println!("case: {}", payload.name);
        let dir = temp_dir();
        let key = key_file(dir.path());
        let message = payload.sender_args(&dir.path().join("message"));
        php.run("shmop-writer.php", php_args(&key, &message))
            .assert_success()
            .assert_stdout(b"");
        let mut reader_args = os(&["--api", "shmop"]);
        if payload.bytes.contains(&0) {
            reader_args.extend(os(&["--length", &payload.bytes.len().to_string()]));
        }
        our_run("reader", &key, &reader_args)
            .assert_success()
            .assert_stdout(&payload.printed());
        assert_no_sysv_objects(&key, b'T');
    }
}

/// Our `--api shmop` writer; PHP's reader echoes the whole segment as the blog's does: the
/// message, then the NULs of the rest of the 1024 bytes.
#[test]
fn our_shmop_writer_to_php_reader() {
    let Some(php) = Php::find() else { return };
    for payload in payloads(BLOG_MESSAGE, SEGMENT) {
        println!("case: {}", payload.name);
        let dir = temp_dir();
        let key = key_file(dir.path());
        let mut message = payload.sender_args(&dir.path().join("message"));
        message.extend(os(&["--api", "shmop"]));
        our_run("writer", &key, &message)
            .assert_success()
            .assert_stdout(b"");
        let mut segment = payload.bytes.clone();
        segment.resize(SEGMENT, 0);
        segment.push(b'\n');
        php.run("shmop-reader.php", php_args(&key, &os(&["--timeout", "5"])))
            .assert_success()
            .assert_stdout(&segment);
        assert_no_sysv_objects(&key, b'T');
    }
}

/// PHP's `sem_get` lock and ours are one lock: while a PHP writer holds it (`sem_acquire`), our
/// writer waits for it; once PHP has put its variable and let go, ours goes in beside it, and
/// both read back intact. No semaphore set is left: its last user removes it.
#[test]
fn our_writer_waits_for_php_holding_the_sem_get_lock() {
    let Some(php) = Php::find() else { return };
    let dir = temp_dir();
    let key = key_file(dir.path());
    let go = dir.path().join("go");
    let php_args_lock = os(&["--lock", "--timeout", "5", "--message", "from PHP"]);
    let mut args = php_args(&key, &php_args_lock);
    args.extend([OsString::from("--hold-until"), go.clone().into()]);
    let mut holder = php.spawn("sysvshm-writer.php", args);
    holder.wait_for_stderr("holding the lock");

    let mut command = ours(env!("CARGO_BIN_EXE_shm-writer"));
    command.arg("--key-file").arg(&key).args([
        "--timeout",
        "5",
        "--var",
        "2",
        "--message",
        "from Rust",
    ]);
    let mut writer = Proc::spawn("shm-writer", &mut command);
    writer.wait_for_stderr("waiting for the lock");
    std::fs::write(&go, b"").unwrap();
    holder.finish().assert_success();
    writer.finish().assert_success();

    our_run("reader", &key, &os(&["--var", "1", "--keep"]))
        .assert_success()
        .assert_stdout(b"from PHP\n");
    our_run("reader", &key, &os(&["--var", "2"]))
        .assert_success()
        .assert_stdout(b"from Rust\n");
    assert_no_sysv_objects(&key, b'T');
}

/// One store, two writers: PHP's `shm_put_var` adds its variable to the store our writer laid
/// out, and each side then reads the other's variable intact.
#[test]
fn php_and_our_variables_share_one_segment() {
    let Some(php) = Php::find() else { return };
    let dir = temp_dir();
    let key = key_file(dir.path());
    our_run(
        "writer",
        &key,
        &os(&["--var", "1", "--message", "from Rust"]),
    )
    .assert_success();
    let php_writer = os(&[
        "--var",
        "2",
        "--message",
        "from PHP",
        "--lock",
        "--timeout",
        "5",
    ]);
    php.run("sysvshm-writer.php", php_args(&key, &php_writer))
        .assert_success();
    our_run("reader", &key, &os(&["--var", "2", "--keep"]))
        .assert_success()
        .assert_stdout(b"from PHP\n");
    php.run(
        "sysvshm-reader.php",
        php_args(&key, &os(&["--var", "1", "--timeout", "5"])),
    )
    .assert_success()
    .assert_stdout(b"from Rust\n");
    assert_no_sysv_objects(&key, b'T');
}
