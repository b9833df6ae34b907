//! What happens to `shm-writer` and `shm-reader` when things go wrong: a peer killed (SIGKILL)
//! while it waits (one killed mid hand-off is in the load crate's `tests/shm.rs`), a PHP writer killed while it holds the `sem_get` lock, a key file that
//! disappears, a segment or key file another user put under our key, a peer running as another
//! user, and many Rust and PHP writers on one store at once. The survivor must say what went
//! wrong within its timeout, nothing may be left in the kernel, and the next run must work
//! without cleaning up by hand. (A segment of the wrong size is in `pairs.rs`.) The scenarios
//! `mq` shares are in `ipc_testkit::scenarios`.
//!
//! Test names start with what they exercise: `fault_` (a peer killed, a file removed), `load_`
//! (many writers), `hostile_` (objects and users in the way); `scripts/reliability.sh` counts
//! them by prefix.

use std::ffi::OsString;
use std::path::Path;

use ipc_common::php::{Value, serialize, sysvshm};
use ipc_common::sysv::{self, Attached, Key};
use ipc_testkit::php::Php;
use ipc_testkit::scenarios::{self, SysvPair, line};
use ipc_testkit::{Signal, assert_no_sysv_objects, other_user, temp_dir};

const SHM: SysvPair = SysvPair {
    reader: env!("CARGO_BIN_EXE_shm-reader"),
    writer: env!("CARGO_BIN_EXE_shm-writer"),
    name: "shm",
    message: "Hello from Writer: Shared Memory",
    remove_leftovers,
};

/// After a failed test: the segment and the lock's semaphore set left under its key.
fn remove_leftovers(key: Key) {
    if let Ok(Some(id)) = sysv::shm_open(key) {
        let _ = sysv::shm_remove(id);
    }
    if let Ok(Some(id)) = sysv::sem_open(key) {
        let _ = sysv::sem_remove(id);
    }
}

fn php_args(key_file: &Path, args: &[&str]) -> Vec<OsString> {
    let mut all = vec![OsString::from("--key-file"), key_file.into()];
    all.extend(args.iter().map(OsString::from));
    all
}

#[test]
fn fault_a_php_writer_killed_while_holding_the_lock_does_not_block_ours() {
    let Some(php) = Php::find() else { return };
    let dir = temp_dir();
    let t = SHM.keyed(dir.path());
    let never = t.dir.join("never");
    let php_holder = php_args(
        &t.key_file,
        &["--lock", "--timeout", "20", "--message", "from PHP"],
    );
    let mut holder = php.spawn(
        "sysvshm-writer.php",
        [php_holder, vec!["--hold-until".into(), never.into()]].concat(),
    );
    holder.wait_for_stderr("holding the lock");
    let mut ours = t.writer(&["--var", "2", "--timeout", "20"]);
    ours.wait_for_stderr("waiting for the lock");
    // Killed holding it: the kernel undoes its SEM_UNDO acquire, and ours goes in.
    holder.signal(Signal::SIGKILL);
    holder.finish();
    ours.finish().assert_success();
    t.reader(&["--var", "2"])
        .finish()
        .assert_success()
        .assert_stdout(&line(SHM.message));
    assert_no_sysv_objects(&t.key_file, b'T');
}

#[test]
fn fault_reader_killed_while_waiting_for_its_variable_leaves_nothing_the_next_run_keeps() {
    let dir = temp_dir();
    let t = SHM.keyed(dir.path());
    t.writer(&["--var", "2"]).finish().assert_success();
    let mut read = t.reader(&["--var", "1"]);
    // By now it has registered with the lock's semaphore set.
    read.wait_for_stderr("waiting for variable 1");
    read.signal(Signal::SIGKILL);
    read.finish();
    // Its semaphore set outlives it, with its registration undone by the kernel; the next
    // pair uses the set and its last user removes it. Variable 2 is still in the segment, so
    // the reader of variable 1 leaves it; once variable 1 is removed (shm_remove_var), the
    // reader of variable 2 removes the segment.
    t.writer(&[]).finish().assert_success();
    let first = t.reader(&[]).finish();
    first.assert_success().assert_stdout(&line(SHM.message));
    assert!(
        first.stderr.contains("other PHP variable(s) (2)"),
        "{first:?}"
    );
    t.writer(&["--remove-var", "1"]).finish().assert_success();
    t.reader(&["--var", "2"])
        .finish()
        .assert_success()
        .assert_stdout(&line(SHM.message));
    assert_no_sysv_objects(&t.key_file, b'T');
}

#[test]
fn fault_a_key_file_removed_while_the_reader_waits_ends_the_wait_at_once() {
    let dir = temp_dir();
    scenarios::key_file_removed_while_the_reader_waits(
        &SHM,
        dir.path(),
        "waiting for the writer to create",
    );
}

#[test]
fn load_rust_and_php_writers_at_once_keep_every_variable() {
    const WRITERS: i64 = 4;
    const PUTS: i64 = 8;
    let Some(php) = Php::find() else { return };
    let dir = temp_dir();
    let t = SHM.keyed(dir.path());
    let value = |var: i64| {
        format!(
            "variable {var} from {}",
            if var % 2 == 0 { "Rust" } else { "PHP" }
        )
    };
    // Even variables from our writers, odd ones from PHP's, all at once: 2 x WRITERS threads
    // (thread w puts w, w + 2 x WRITERS, ...),
    // each putting PUTS variables one after another, every put a read-modify-write of the
    // whole store under the lock.
    std::thread::scope(|scope| {
        for w in 0..2 * WRITERS {
            let (php, t) = (&php, &t);
            scope.spawn(move || {
                for var in (0..PUTS).map(|i| i * 2 * WRITERS + w) {
                    let (var_text, message) = (var.to_string(), value(var));
                    let args = [
                        "--var",
                        &var_text,
                        "--message",
                        &message,
                        "--size",
                        "16384",
                        "--timeout",
                        "20",
                    ];
                    if var % 2 == 0 {
                        t.writer(&args).finish().assert_success();
                    } else {
                        let args = [&args[..], &["--lock"]].concat();
                        php.run("sysvshm-writer.php", php_args(&t.key_file, &args))
                            .assert_success();
                    }
                }
            });
        }
    });

    let key = sysv::ftok(&t.key_file, b'T').unwrap();
    let id = sysv::shm_open(key).unwrap().expect("the segment");
    let image = Attached::attach(id, true).unwrap().snapshot().unwrap();
    let vars: Vec<i64> = (0..2 * WRITERS)
        .flat_map(|w| (0..PUTS).map(move |i| i * 2 * WRITERS + w))
        .collect();
    assert_eq!(sysvshm::records(&image).unwrap().len(), vars.len());
    for &var in &vars {
        let expected = serialize(&Value::String(value(var).into_bytes()));
        assert_eq!(
            sysvshm::get(&image, var).unwrap(),
            Some(&expected[..]),
            "variable {var}"
        );
    }
    // Both kinds of reader find the store consistent. Ours goes first: it takes the lock, and
    // as the lock's last user removes its semaphore set, which PHP never removes.
    t.reader(&["--var", "0", "--keep"])
        .finish()
        .assert_success()
        .assert_stdout(&line(&value(0)));
    php.run(
        "sysvshm-reader.php",
        php_args(&t.key_file, &["--var", "1", "--size", "16384"]),
    )
    .assert_success()
    .assert_stdout(&line(&value(1)));
    assert_no_sysv_objects(&t.key_file, b'T');
    println!(
        "{} variables put by {WRITERS} Rust and {WRITERS} PHP writers at once: all intact",
        vars.len()
    );
}

#[test]
fn hostile_another_users_key_file_is_refused_unless_trusted() {
    let dir = temp_dir();
    scenarios::another_users_key_file_is_refused_unless_trusted(&SHM, dir.path());
}

#[test]
fn hostile_another_users_segment_under_our_key_is_refused_unless_trusted() {
    let dir = temp_dir();
    scenarios::another_users_object_under_our_key_is_refused_unless_trusted(&SHM, dir.path());
}

#[test]
fn hostile_another_user_is_refused_by_default_and_admitted_with_the_mode() {
    if !other_user::available() {
        return;
    }
    let dir = temp_dir();
    let t = SHM.keyed(dir.path());
    let key = sysv::ftok(&t.key_file, b'T').unwrap();
    scenarios::another_user_is_refused_by_default(&t);

    // 0666 admits nobody; only the owner may remove the segment. The read succeeded, so the
    // run does too, with a warning that says why the segment stays.
    t.writer(&["--mode", "0666"]).finish().assert_success();
    let read = t.reader_as_nobody(&[]);
    read.assert_success().assert_stdout(&line(SHM.message));
    assert!(
        read.stderr
            .contains("warning: the value was read, but shared memory segment")
            && read
                .stderr
                .contains("only its owner (uid 0), its creator (uid 0) or root"),
        "{read:?}"
    );
    t.reader_as_nobody(&["--keep"])
        .assert_success()
        .assert_stdout(&line(SHM.message));
    sysv::shm_remove(sysv::shm_open(key).unwrap().unwrap()).unwrap();
    assert_no_sysv_objects(&t.key_file, b'T');
}

/// A writer that creates the segment and the lock's semaphore set with a mode that shuts out
/// even itself (`--mode 0444` as a user other than root) fails, and leaves neither behind:
/// a left set would refuse every later run under the key with EACCES.
#[test]
fn hostile_a_writer_shut_out_by_its_own_mode_leaves_no_set_behind() {
    if !other_user::available() {
        return;
    }
    let dir = temp_dir();
    let own = other_user::nobodys_dir(dir.path());
    let t = SHM.keyed(&own);
    other_user::give_to_nobody(&t.key_file);
    t.writer_as_nobody(&["--mode", "0444"])
        .assert_failure(1, "Permission denied")
        .assert_failure(1, "--mode 0660");
    assert_no_sysv_objects(&t.key_file, b'T');
    // The next run under the key is not refused by anything the failed one left.
    let next = t.writer_as_nobody(&[]);
    next.assert_success();
    let read = t.reader_as_nobody(&[]);
    read.assert_success().assert_stdout(&line(SHM.message));
    assert_no_sysv_objects(&t.key_file, b'T');
}

/// Another user's segment that its mode keeps us out of (0600): the error says what admits us.
#[test]
fn hostile_eacces_names_mode_and_trust_uid() {
    scenarios::eacces_names_mode_and_trust_uid(&SHM, temp_dir().path());
}
