//! The real `shm-writer` and `shm-reader`, run against each other (both start orders, both APIs)
//! and against segments the tests lay out themselves, each test on its own key file. Every test
//! ends by checking that no segment or semaphore set is left under its key.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use ipc_common::php::sysvsem::Semaphore;
use ipc_common::php::{Value, serialize, sysvshm};
use ipc_common::runtime::wait::{Deadline, Timeout};
use ipc_common::sysv::{self, Attached, Key, ShmId};
use ipc_testkit::{Finished, Proc, Signal, assert_no_sysv_objects, bounded, ours};

const MESSAGE: &[u8] = b"Hello from Writer: Shared Memory";

/// A test's private directory, whose `key` file keys the test's SysV objects. If the test fails
/// half-way, dropping it removes what is left under that key (only this test uses it), so one
/// red test does not leak segments into later runs.
struct TestDir(tempfile::TempDir);

impl TestDir {
    fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let Ok(key) = sysv::ftok(&self.path().join("key"), b'T') else {
            return;
        };
        if let Ok(Some(id)) = sysv::shm_open(key) {
            let _ = sysv::shm_remove(id);
        }
        if let Ok(Some(id)) = sysv::sem_open(key) {
            let _ = sysv::sem_remove(id);
        }
    }
}

fn temp_dir() -> TestDir {
    TestDir(ipc_testkit::temp_dir())
}

/// `bin --key-file KEY --timeout 5 EXTRA...`, unless EXTRA sets its own timeout.
fn command(bin: &str, key_file: &Path, extra: &[&str]) -> Command {
    let mut command = ours(bin);
    command.arg("--key-file").arg(key_file);
    bounded(command, extra)
}

fn writer(key_file: &Path, extra: &[&str]) -> Command {
    command(env!("CARGO_BIN_EXE_shm-writer"), key_file, extra)
}

fn reader(key_file: &Path, extra: &[&str]) -> Command {
    command(env!("CARGO_BIN_EXE_shm-reader"), key_file, extra)
}

fn write(key_file: &Path, extra: &[&str]) -> Finished {
    ipc_testkit::run("shm-writer", &mut writer(key_file, extra), None)
}

fn read(key_file: &Path, extra: &[&str]) -> Finished {
    ipc_testkit::run("shm-reader", &mut reader(key_file, extra), None)
}

fn key_of(key_file: &Path) -> Key {
    sysv::ftok(key_file, b'T').expect("ftok the test's key file")
}

fn segment(key_file: &Path) -> Option<ShmId> {
    sysv::shm_open(key_of(key_file)).expect("shmget")
}

/// The segment under the test's key, byte for byte, as it is now.
fn snapshot(key_file: &Path) -> Vec<u8> {
    let id = segment(key_file).expect("the segment exists");
    Attached::attach(id, true)
        .expect("shmat")
        .snapshot()
        .expect("copy the segment")
}

/// A segment laid out by the test itself (`IPC_EXCL`: a key collision fails loudly).
fn make_segment(key_file: &Path, image: &[u8]) -> ShmId {
    let id = sysv::shm_create(key_of(key_file), image.len(), 0o600).expect("shmget create");
    Attached::attach(id, false)
        .expect("shmat")
        .write(0, image)
        .expect("write the image");
    id
}

/// A fresh PHP store of `total` bytes holding `vars` (already serialized).
fn store(total: usize, vars: &[(i64, &[u8])]) -> Vec<u8> {
    let mut image = vec![0; total];
    sysvshm::initialize(&mut image, total).unwrap();
    for (var, bytes) in vars {
        sysvshm::put(&mut image, *var, bytes).unwrap();
    }
    image
}

fn with_newline(bytes: &[u8]) -> Vec<u8> {
    [bytes, b"\n"].concat()
}

/// Both start orders; `key_file` may not exist yet (then the writer creates it).
fn pair(
    key_file: &Path,
    reader_first: bool,
    writer_args: &[&str],
    reader_args: &[&str],
) -> Finished {
    if reader_first {
        let mut read = Proc::spawn("shm-reader", &mut reader(key_file, reader_args));
        read.wait_for_stderr("waiting for");
        write(key_file, writer_args).assert_success();
        read.finish()
    } else {
        write(key_file, writer_args).assert_success();
        read(key_file, reader_args)
    }
}

#[test]
fn the_blog_message_passes_in_both_orders_with_both_apis() {
    for api in ["sysv", "shmop"] {
        for reader_first in [false, true] {
            let dir = temp_dir();
            // The writer creates the key file; in reader-first order the reader waits for it.
            let key_file = dir.path().join("key");
            let args = ["--api", api];
            let got = pair(&key_file, reader_first, &args, &args);
            got.assert_success().assert_stdout(&with_newline(MESSAGE));
            assert!(key_file.exists(), "the key file stays, as in the blog");
            assert_no_sysv_objects(&key_file, b'T');
        }
    }
}

#[test]
fn the_writer_leaves_phps_exact_layout_and_no_lock_behind() {
    let dir = temp_dir();
    let key_file = ipc_testkit::key_file(dir.path());
    write(&key_file, &[]).assert_success();

    // What PHP's shm_put_var($shm, 1, 'Hello from Writer: Shared Memory') leaves in a fresh
    // 1024-byte segment, spelled out independently of the code under test.
    let mut expected = vec![0u8; 1024];
    expected[..7].copy_from_slice(b"PHP_SM\0");
    for (at, value) in [
        (8, 40i64),
        (16, 112),
        (24, 912),
        (32, 1024),
        (40, 1),
        (48, 40),
        (56, 72),
    ] {
        expected[at..at + 8].copy_from_slice(&value.to_le_bytes());
    }
    expected[64..104].copy_from_slice(b"s:32:\"Hello from Writer: Shared Memory\";");
    assert_eq!(snapshot(&key_file), expected);

    // The lock's semaphore set went with its last user, the writer.
    assert_eq!(sysv::sem_open(key_of(&key_file)), Ok(None));

    read(&key_file, &[])
        .assert_success()
        .assert_stdout(&with_newline(MESSAGE));
    assert_no_sysv_objects(&key_file, b'T');
}

#[test]
fn a_943_byte_string_fits_1024_bytes_and_944_is_refused() {
    let dir = temp_dir();
    let key_file = ipc_testkit::key_file(dir.path());
    let fits = "x".repeat(943);
    write(&key_file, &["--message", &fits]).assert_success();
    read(&key_file, &[])
        .assert_success()
        .assert_stdout(&with_newline(fits.as_bytes()));

    let too_long = "x".repeat(944);
    let refused = write(&key_file, &["--message", &too_long]);
    refused.assert_failure(1, "not enough shared memory left");
    refused.assert_failure(1, "at most 943 bytes");
    assert_eq!(
        segment(&key_file),
        None,
        "the failed run removed its segment"
    );
    assert_no_sysv_objects(&key_file, b'T');
}

#[test]
fn binary_utf8_and_empty_values_round_trip() {
    let binary: Vec<u8> = (0..=255u8).chain([0, 0xff, 0]).collect();
    let utf8 = "Grüße aus Köln, 東京 🦀".as_bytes();
    for (api, payload) in [
        ("sysv", &binary[..]),
        ("sysv", utf8),
        ("sysv", b""),
        ("shmop", utf8),
    ] {
        let dir = temp_dir();
        let key_file = ipc_testkit::key_file(dir.path());
        let file = dir.path().join("payload");
        std::fs::write(&file, payload).unwrap();
        let file = file.to_str().unwrap();
        let got = pair(
            &key_file,
            false,
            &["--api", api, "--message-file", file],
            &["--api", api],
        );
        got.assert_success().assert_stdout(&with_newline(payload));
        assert_no_sysv_objects(&key_file, b'T');
    }
    // shmop has no length: an empty or all-NUL message cannot be told from a segment not yet
    // written, so no reader would ever take it. Refused, and the run leaves nothing.
    for payload in [&b""[..], b"\0\0"] {
        let dir = temp_dir();
        let key_file = ipc_testkit::key_file(dir.path());
        let file = dir.path().join("payload");
        std::fs::write(&file, payload).unwrap();
        let file = file.to_str().unwrap();
        write(&key_file, &["--api", "shmop", "--message-file", file])
            .assert_failure(1, "cannot be told from a segment nobody has written yet");
        assert_no_sysv_objects(&key_file, b'T');
    }
}

/// Writer flags, the bytes PHP's serialize() gives that value, what `echo` prints, its JSON.
type Scalar = (
    &'static [&'static str],
    &'static str,
    &'static str,
    &'static str,
);

#[test]
fn php_scalars_are_stored_exactly_and_printed_as_php_echoes_them() {
    let cases: [Scalar; 7] = [
        (&["--int", "42"], "i:42;", "42", "42"),
        (&["--int", "-7"], "i:-7;", "-7", "-7"),
        (&["--float", "2.5"], "d:2.5;", "2.5", "2.5"),
        (&["--float", "0.1"], "d:0.1;", "0.1", "0.1"),
        (&["--bool", "true"], "b:1;", "1", "true"),
        (&["--bool", "false"], "b:0;", "", "false"),
        (&["--null"], "N;", "", "null"),
    ];
    for (args, serialized, echoed, json) in cases {
        let dir = temp_dir();
        let key_file = ipc_testkit::key_file(dir.path());
        write(&key_file, args).assert_success();
        assert_eq!(
            sysvshm::get(&snapshot(&key_file), 1).unwrap(),
            Some(serialized.as_bytes()),
            "{args:?}"
        );
        read(&key_file, &["--format", "json", "--keep"])
            .assert_success()
            .assert_stdout(&with_newline(json.as_bytes()));
        read(&key_file, &[])
            .assert_success()
            .assert_stdout(&with_newline(echoed.as_bytes()));
        assert_no_sysv_objects(&key_file, b'T');
    }
}

#[test]
fn infinity_is_stored_but_json_has_no_way_to_say_it() {
    let dir = temp_dir();
    let key_file = ipc_testkit::key_file(dir.path());
    write(&key_file, &["--float", "-INF"]).assert_success();
    assert_eq!(
        sysvshm::get(&snapshot(&key_file), 1).unwrap(),
        Some(&b"d:-INF;"[..])
    );
    read(&key_file, &["--format", "json"]).assert_failure(1, "-INF cannot be written as JSON");
    read(&key_file, &[])
        .assert_success()
        .assert_stdout(b"-INF\n");
    assert_no_sysv_objects(&key_file, b'T');
}

#[test]
fn several_variables_share_one_segment_as_in_php() {
    let dir = temp_dir();
    let key_file = ipc_testkit::key_file(dir.path());
    write(&key_file, &["--var", "1", "--message", "first"]).assert_success();
    write(&key_file, &["--var", "2", "--int", "7"]).assert_success();
    write(&key_file, &["--var", "1", "--message", "replaced"]).assert_success();

    // PHP's replace drops the old record and appends the new one: var 2 now comes first.
    let image = snapshot(&key_file);
    let keys: Vec<i64> = sysvshm::records(&image)
        .unwrap()
        .iter()
        .map(|r| r.key)
        .collect();
    assert_eq!(keys, [2, 1]);
    read(&key_file, &["--var", "2", "--keep"])
        .assert_success()
        .assert_stdout(b"7\n");
    read(&key_file, &["--var", "1", "--keep"])
        .assert_success()
        .assert_stdout(b"replaced\n");

    write(&key_file, &["--remove-var", "2"]).assert_success();
    write(&key_file, &["--remove-var", "2"]).assert_failure(1, "variable 2");
    assert_eq!(sysvshm::get(&snapshot(&key_file), 2).unwrap(), None);
    read(&key_file, &["--var", "1"])
        .assert_success()
        .assert_stdout(b"replaced\n");
    assert_no_sysv_objects(&key_file, b'T');
}

#[test]
fn an_existing_segment_smaller_than_the_size_is_refused() {
    for api in ["sysv", "shmop"] {
        let dir = temp_dir();
        let key_file = ipc_testkit::key_file(dir.path());
        let id = make_segment(&key_file, &[0; 512]);
        let refused = write(&key_file, &["--api", api]);
        refused.assert_failure(1, "with 512 bytes, fewer than the 1024 bytes needed");
        refused.assert_failure(1, &key_of(&key_file).to_string());
        assert_eq!(segment(&key_file), Some(id), "not ours to remove");
        assert_eq!(snapshot(&key_file), [0; 512], "left untouched");
        sysv::shm_remove(id).unwrap();
        assert_no_sysv_objects(&key_file, b'T');
    }
}

#[test]
fn a_reader_gives_up_naming_what_it_waited_for() {
    let dir = temp_dir();
    let key_file = dir.path().join("key");
    let timeout = ["--timeout", "0.3"];
    read(&key_file, &timeout).assert_failure(124, "waiting for key file");

    std::fs::write(&key_file, b"").unwrap();
    read(&key_file, &timeout).assert_failure(
        124,
        "waiting for the writer to create shared memory segment",
    );
    read(&key_file, &["--api", "shmop", "--timeout", "0.3"])
        .assert_failure(124, "waiting for the writer to create");

    write(&key_file, &["--var", "2"]).assert_success();
    read(&key_file, &timeout)
        .assert_failure(124, "waiting for variable 1 in shared memory segment");
    // A reader that times out removes nothing it did not create: variable 2 is still there.
    read(&key_file, &["--var", "2"])
        .assert_success()
        .assert_stdout(&with_newline(MESSAGE));
    assert_no_sysv_objects(&key_file, b'T');
}

#[test]
fn sigterm_while_waiting_removes_what_that_process_created() {
    let dir = temp_dir();
    let key_file = ipc_testkit::key_file(dir.path());
    let key = key_of(&key_file);

    // A writer stuck behind a lock we hold: it created the segment, and must take it away.
    let deadline = Deadline::after(Timeout::from_duration(Duration::from_secs(20)));
    let lock = Semaphore::get(key, 1, 0o600, &deadline).unwrap();
    let held = lock.acquire(&deadline).unwrap();
    let mut stuck = Proc::spawn("shm-writer", &mut writer(&key_file, &[]));
    stuck.wait_for_stderr("waiting for the lock");
    assert!(
        segment(&key_file).is_some(),
        "the writer created the segment"
    );
    stuck.signal(Signal::SIGTERM);
    let ended = stuck.finish();
    assert_eq!(ended.status.code(), Some(143), "{ended:?}");
    assert_eq!(segment(&key_file), None, "the writer removed its segment");
    drop(held);
    drop(lock);

    // A reader waiting for a variable in a segment we made: it created the lock's set only.
    let id = make_segment(&key_file, &store(1024, &[]));
    let mut waiting = Proc::spawn("shm-reader", &mut reader(&key_file, &[]));
    waiting.wait_for_stderr("waiting for variable 1");
    assert!(
        sysv::sem_open(key).unwrap().is_some(),
        "the reader created the lock"
    );
    waiting.signal(Signal::SIGTERM);
    let ended = waiting.finish();
    assert_eq!(ended.status.code(), Some(143), "{ended:?}");
    assert_eq!(
        sysv::sem_open(key).unwrap(),
        None,
        "the reader removed its lock"
    );
    assert_eq!(segment(&key_file), Some(id), "not the reader's to remove");
    sysv::shm_remove(id).unwrap();
    assert_no_sysv_objects(&key_file, b'T');
}

#[test]
fn keep_leaves_the_segment_for_the_next_reader() {
    for api in ["sysv", "shmop"] {
        let dir = temp_dir();
        let key_file = ipc_testkit::key_file(dir.path());
        write(&key_file, &["--api", api]).assert_success();
        for _ in 0..2 {
            read(&key_file, &["--api", api, "--keep"])
                .assert_success()
                .assert_stdout(&with_newline(MESSAGE));
            assert!(segment(&key_file).is_some());
        }
        read(&key_file, &["--api", api])
            .assert_success()
            .assert_stdout(&with_newline(MESSAGE));
        assert_eq!(segment(&key_file), None);
        assert_no_sysv_objects(&key_file, b'T');
    }
}

#[test]
fn a_hostile_segment_is_a_clean_error_and_is_left_alone() {
    let at = |image: &mut Vec<u8>, offset: usize, value: i64| {
        image[offset..offset + 8].copy_from_slice(&value.to_le_bytes());
    };
    let good = store(1024, &[(1, b"s:2:\"hi\";")]);
    let mut header_out_of_bounds = good.clone();
    at(&mut header_out_of_bounds, 32, 1 << 20); // total past the segment
    at(&mut header_out_of_bounds, 24, (1 << 20) - 80);
    let mut record_out_of_bounds = good.clone();
    at(&mut record_out_of_bounds, 56, 100_000); // record size past `end`
    let mut negative_length = good.clone();
    at(&mut negative_length, 48, -5);
    let unterminated = store(1024, &[(1, b"i:42")]);
    let cases = [
        (header_out_of_bounds, "does not fit a 1024-byte segment"),
        (record_out_of_bounds, "outside end="),
        (negative_length, "claims -5 bytes"),
        (unterminated, "unterminated value"),
    ];
    for (image, why) in cases {
        let dir = temp_dir();
        let key_file = ipc_testkit::key_file(dir.path());
        let id = make_segment(&key_file, &image);
        let failed = read(&key_file, &["--quiet"]);
        failed.assert_failure(1, why);
        assert_eq!(failed.stdout, b"", "{failed:?}");
        assert!(
            failed
                .stderr
                .starts_with("error: read variable 1 from shared memory segment")
                && failed.stderr.lines().count() == 1,
            "one error line: {failed:?}"
        );
        assert_eq!(segment(&key_file), Some(id), "the reader did not create it");
        assert_eq!(snapshot(&key_file), image, "nor change it");
        sysv::shm_remove(id).unwrap();
        assert_no_sysv_objects(&key_file, b'T');
    }
}

#[test]
fn concurrent_writers_under_the_lock_keep_every_variable() {
    const WRITERS: i64 = 8;
    const PUTS: i64 = 50;
    let dir = temp_dir();
    let key_file = ipc_testkit::key_file(dir.path());
    let value = |var: i64| format!("writer {} put {}", var / PUTS, var % PUTS);
    std::thread::scope(|scope| {
        for w in 0..WRITERS {
            let key_file = &key_file;
            scope.spawn(move || {
                for var in w * PUTS..(w + 1) * PUTS {
                    let args = ["--quiet", "--size", "65536", "--timeout", "20"];
                    let var_text = var.to_string();
                    let message = value(var);
                    let args = [&args[..], &["--var", &var_text, "--message", &message]].concat();
                    write(key_file, &args).assert_success();
                }
            });
        }
    });

    let image = snapshot(&key_file);
    assert_eq!(
        sysvshm::records(&image).unwrap().len(),
        (WRITERS * PUTS) as usize
    );
    for var in 0..WRITERS * PUTS {
        let expected = serialize(&Value::String(value(var).into_bytes()));
        assert_eq!(
            sysvshm::get(&image, var).unwrap(),
            Some(&expected[..]),
            "variable {var}"
        );
    }
    // The other 399 variables are not the reader's to destroy: the segment stays.
    let read = read(&key_file, &["--var", "399"]);
    read.assert_success().assert_stdout(b"writer 7 put 49\n");
    assert!(
        read.stderr.contains(
            "in place: it also holds 399 other PHP variable(s) (0, 1, 2, 3, 4, 5, 6, 7, ...)"
        ),
        "{read:?}"
    );
    sysv::shm_remove(segment(&key_file).expect("the segment stays")).unwrap();
    assert_no_sysv_objects(&key_file, b'T');
}

#[test]
fn mode_is_exactly_what_was_asked() {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir();
    let key_file = dir.path().join("key");
    write(&key_file, &["--mode", "0644"]).assert_success();
    let key_mode = key_file.metadata().unwrap().permissions().mode() & 0o777;
    assert_eq!(key_mode, 0o644);
    let stat = sysv::shm_stat(segment(&key_file).unwrap()).unwrap();
    assert_eq!(stat.mode, 0o644);
    read(&key_file, &[]).assert_success();
    assert_no_sysv_objects(&key_file, b'T');
}

#[test]
fn shmop_reads_at_an_offset_and_exact_lengths() {
    let dir = temp_dir();
    let key_file = ipc_testkit::key_file(dir.path());
    write(
        &key_file,
        &["--api", "shmop", "--offset", "1000", "--message", "abc"],
    )
    .assert_success();
    let image = snapshot(&key_file);
    assert_eq!(&image[1000..1003], b"abc");
    assert!(image[..1000].iter().chain(&image[1003..]).all(|&b| b == 0));

    let shmop = |extra: &[&str]| read(&key_file, &[&["--api", "shmop", "--keep"], extra].concat());
    shmop(&["--offset", "1000"])
        .assert_success()
        .assert_stdout(b"abc\n");
    shmop(&["--offset", "1000", "--length", "5"])
        .assert_success()
        .assert_stdout(b"abc\0\0\n");
    shmop(&["--offset", "999", "--length", "2"])
        .assert_success()
        .assert_stdout(b"\0a\n");
    // Nothing but NULs at offset 0: not written yet, so the reader waits (and removes nothing).
    shmop(&["--timeout", "0.3"]).assert_failure(124, "waiting for the writer to write at offset 0");
    shmop(&["--offset", "1000", "--length", "25"]).assert_failure(1, "has only 1024 bytes");

    // 24 more bytes fit at 1000, 25 do not: refused whole, nothing written.
    let refused = write(
        &key_file,
        &[
            "--api",
            "shmop",
            "--offset",
            "1000",
            "--message",
            &"y".repeat(25),
        ],
    );
    refused.assert_failure(1, "at most 24 bytes fit");
    assert_eq!(snapshot(&key_file), image);
    read(&key_file, &["--api", "shmop", "--offset", "1000"])
        .assert_success()
        .assert_stdout(b"abc\n");
    assert_no_sysv_objects(&key_file, b'T');
}

#[test]
fn the_shmop_reader_waits_for_content_not_for_a_detach() {
    let dir = temp_dir();
    let key_file = ipc_testkit::key_file(dir.path());
    // Attached and detached with nothing written: as PHP's shmop_open("c") in one script and
    // shmop_write() in a later one. Read as empty and removed, the writer would lose its segment.
    let id = sysv::shm_create(key_of(&key_file), 1024, 0o600).unwrap();
    drop(Attached::attach(id, false).unwrap());
    let mut waiting = Proc::spawn("shm-reader", &mut reader(&key_file, &["--api", "shmop"]));
    waiting.wait_for_stderr("waiting for the writer to write");
    // A writer that stays attached after writing: the same bytes on two looks are enough.
    let seg = Attached::attach(id, false).unwrap();
    seg.write(0, b"written\0").unwrap();
    waiting
        .finish()
        .assert_success()
        .assert_stdout(b"written\n");
    drop(seg);
    assert_no_sysv_objects(&key_file, b'T');
}

#[test]
fn a_shorter_shmop_message_is_not_read_with_the_tail_of_a_longer_one() {
    let dir = temp_dir();
    let key_file = ipc_testkit::key_file(dir.path());
    let shmop = |message: &str| ["--api", "shmop", "--message", message].map(String::from);
    let args = shmop("A much longer first message");
    write(&key_file, &args.each_ref().map(String::as_str)).assert_success();
    let args = shmop("Short");
    write(&key_file, &args.each_ref().map(String::as_str)).assert_success();
    read(&key_file, &["--api", "shmop"])
        .assert_success()
        .assert_stdout(b"Short\n");
    assert_no_sysv_objects(&key_file, b'T');
}

#[test]
fn the_shmop_reader_waits_for_a_segment_created_but_not_written() {
    let dir = temp_dir();
    let key_file = ipc_testkit::key_file(dir.path());
    // Created but never attached: as a writer between shmget and shmat.
    let id = sysv::shm_create(key_of(&key_file), 1024, 0o600).unwrap();
    let mut waiting = Proc::spawn("shm-reader", &mut reader(&key_file, &["--api", "shmop"]));
    waiting.wait_for_stderr("waiting for the writer to write");
    let seg = Attached::attach(id, false).unwrap();
    seg.write(0, b"written").unwrap();
    drop(seg);
    waiting
        .finish()
        .assert_success()
        .assert_stdout(b"written\n");
    assert_no_sysv_objects(&key_file, b'T');
}

#[test]
fn an_oversized_shmop_message_is_refused_and_the_run_leaves_nothing() {
    let dir = temp_dir();
    let key_file = dir.path().join("key");
    let refused = write(
        &key_file,
        &["--api", "shmop", "--message", &"z".repeat(1025)],
    );
    refused.assert_failure(1, "the message is over 1024 bytes, the most this can send");
    refused.assert_failure(1, "larger than the segment (--size)");
    assert!(
        !key_file.exists(),
        "the failed run removed the key file it created"
    );
    // Same path again, so that the check below looks under the key that run used.
    std::fs::write(&key_file, b"").unwrap();
    assert_no_sysv_objects(&key_file, b'T');
}

#[test]
fn a_segment_over_the_kernels_limits_is_refused_naming_them() {
    let dir = temp_dir();
    let key_file = dir.path().join("key");
    for api in ["sysv", "shmop"] {
        let refused = write(&key_file, &["--api", api, "--size", &u64::MAX.to_string()]);
        refused.assert_failure(1, "over the kernel's limits, shmmax");
        refused.assert_failure(1, "give a smaller --size");
        assert!(!key_file.exists(), "the failed run removed its key file");
    }
}

#[test]
fn options_that_do_not_fit_the_api_are_usage_errors() {
    let dir = temp_dir();
    let key_file = dir.path().join("key");
    for (bin, args) in [
        ("writer", &["--api", "shmop", "--int", "1"][..]),
        ("writer", &["--offset", "3"]),
        ("writer", &["--bool", "maybe"]),
        ("writer", &["--int", "1", "--message", "x"]),
        ("writer", &["--size", "39"]),
        ("reader", &["--api", "shmop", "--format", "json"]),
        ("reader", &["--length", "3"]),
    ] {
        let got = if bin == "writer" {
            write(&key_file, args)
        } else {
            read(&key_file, args)
        };
        assert_eq!(got.status.code(), Some(2), "{bin} {args:?}: {got:?}");
    }
    assert!(!key_file.exists());
}

#[test]
fn version_and_usage_name_the_binary() {
    for (bin, name) in [
        (env!("CARGO_BIN_EXE_shm-writer"), "shm-writer"),
        (env!("CARGO_BIN_EXE_shm-reader"), "shm-reader"),
    ] {
        let version = ipc_testkit::run(name, ours(bin).arg("--version"), None);
        version
            .assert_success()
            .assert_stdout(format!("{name} {}\n", env!("CARGO_PKG_VERSION")).as_bytes());
        let usage = ipc_testkit::run(name, ours(bin).arg("stray"), None);
        usage.assert_failure(2, &format!("Usage: {name} [OPTIONS]"));
    }
}

/// An 8 GiB segment: each look copies the used part of the store (or the raw message up to its
/// NUL), never the whole segment, so nothing aborts on an allocation and nothing is left.
#[test]
fn a_huge_segment_is_never_copied_whole() {
    const HUGE: &str = "8589934592";
    let shmmax: u64 = std::fs::read_to_string("/proc/sys/kernel/shmmax")
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(0);
    if shmmax < HUGE.parse().unwrap() {
        println!("skipping: kernel.shmmax ({shmmax}) is below {HUGE} bytes");
        return;
    }
    for api in ["sysv", "shmop"] {
        let dir = temp_dir();
        let key_file = ipc_testkit::key_file(dir.path());
        write(&key_file, &["--api", api, "--size", HUGE]).assert_success();
        read(&key_file, &["--api", api])
            .assert_success()
            .assert_stdout(&with_newline(MESSAGE));
        assert_no_sysv_objects(&key_file, b'T');
    }
}

#[test]
fn a_writer_in_another_ipc_namespace_is_named() {
    if !ipc_testkit::run("unshare", ours("unshare").args(["--ipc", "true"]), None)
        .status
        .success()
    {
        println!("skipping: cannot unshare(CLONE_NEWIPC) here (needs root)");
        return;
    }
    let dir = temp_dir();
    let key_file = dir.path().join("key");
    let mut elsewhere = ours("unshare");
    elsewhere
        .args([
            "--ipc",
            "--",
            env!("CARGO_BIN_EXE_shm-writer"),
            "--key-file",
        ])
        .arg(&key_file);
    ipc_testkit::run("shm-writer", &mut bounded(elsewhere, &[]), None).assert_success();
    read(&key_file, &["--timeout", "0.3"])
        .assert_failure(124, "was created by a process in IPC namespace ipc:[")
        .assert_failure(124, "SysV objects do not cross IPC namespaces");
    // A writer here is warned, and still works: the note is a hint, never a refusal.
    let warned = write(&key_file, &[]);
    warned.assert_success();
    assert!(
        warned.stderr.contains("warning: key file") && warned.stderr.contains("IPC namespace"),
        "{warned:?}"
    );
    read(&key_file, &[])
        .assert_success()
        .assert_stdout(&with_newline(MESSAGE));
    assert_no_sysv_objects(&key_file, b'T');
}

/// A writer whose value does not fit leaves the segment it created when a reader is attached
/// (the reader could be anyone's); the reader, giving up, finds it empty with its creator gone
/// and removes it: nothing leaks. Found by the contract suite. The test holds the lock so that
/// the reader is attached before the writer fails.
#[test]
fn a_failed_writer_beside_a_waiting_reader_leaves_nothing() {
    let dir = temp_dir();
    let key_file = ipc_testkit::key_file(dir.path());
    let key = key_of(&key_file);
    let deadline = Deadline::after(Timeout::from_duration(Duration::from_secs(20)));
    let lock = Semaphore::get(key, 1, 0o600, &deadline).unwrap();
    let held = lock.acquire(&deadline).unwrap();
    let mut failing = Proc::spawn(
        "shm-writer",
        &mut writer(&key_file, &["--message", &"x".repeat(944)]),
    );
    failing.wait_for_stderr("waiting for the lock");
    let mut waiting = Proc::spawn("shm-reader", &mut reader(&key_file, &["--timeout", "2"]));
    waiting.wait_for_stderr("waiting for the lock");
    drop(held);
    drop(lock);
    failing
        .finish()
        .assert_failure(1, "not enough shared memory left")
        .assert_failure(1, "other process(es) are attached");
    waiting
        .finish()
        .assert_failure(124, "timed out")
        .assert_failure(124, "removed shared memory segment");
    assert_no_sysv_objects(&key_file, b'T');
}

/// A sysvshm reader that finds raw bytes where PHP's store should be says what it looks like:
/// a shmop segment, and how to read it. Nothing is removed; the shmop reader then takes it.
#[test]
fn a_sysv_reader_names_a_shmop_segment() {
    let dir = temp_dir();
    let key_file = ipc_testkit::key_file(dir.path());
    write(&key_file, &["--api", "shmop"]).assert_success();
    read(&key_file, &["--timeout", "0.3"])
        .assert_failure(124, "no PHP sysvshm header but holds bytes")
        .assert_failure(
            124,
            "it looks like a shmop segment (read it with --api shmop)",
        )
        .assert_stdout(b"");
    read(&key_file, &["--api", "shmop"])
        .assert_success()
        .assert_stdout(&[MESSAGE, b"\n"].concat());
    assert_no_sysv_objects(&key_file, b'T');
}
