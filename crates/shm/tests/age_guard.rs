//! The ftok age guard, in a test binary of its own: the test frees and re-takes its key file's
//! inode number on purpose, and in a binary shared with other tests another test's key file could
//! take that number meanwhile and meet this test's segment (cargo runs test binaries one at a
//! time).

use std::path::Path;
use std::time::Duration;

use ipc_common::php::sysvshm;
use ipc_common::sysv::{self, Attached};
use ipc_testkit::{Finished, assert_no_sysv_objects, bounded, ours, temp_dir};

fn run(bin: &str, key_file: &Path) -> Finished {
    let mut command = ours(bin);
    command.arg("--key-file").arg(key_file);
    ipc_testkit::run(bin, &mut bounded(command, &[]), None)
}

/// ftok keys collide: a key file re-created on a reused inode number gives the old key, and a
/// segment left under it from before the key file was born is not this key file's.
#[test]
fn a_segment_older_than_its_key_file_is_refused() {
    let dir = temp_dir();
    let key_file = ipc_testkit::key_file(dir.path());
    let key = sysv::ftok(&key_file, b'T').unwrap();
    let mut image = vec![0; 1024];
    sysvshm::initialize(&mut image, 1024).unwrap();
    sysvshm::put(&mut image, 1, b"s:5:\"stale\";").unwrap();
    let id = sysv::shm_create(key, image.len(), 0o600).expect("shmget create");
    Attached::attach(id, false)
        .unwrap()
        .write(0, &image)
        .unwrap();
    let created = sysv::shm_stat(id).unwrap().change_time as u64;
    let born = |path: &Path| {
        let meta = path.metadata().unwrap();
        meta.created()
            .ok()
            .map(|t| t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs())
    };
    if born(&key_file).is_none() {
        ipc_testkit::skipped("skipping the age guard test: the filesystem records no birth time");
        sysv::shm_remove(id).unwrap();
        return;
    }
    // The object's time has whole seconds, and file times come from another clock (the guard
    // allows a second of slack): re-create the key file until it is born two seconds later.
    while born(&key_file) <= Some(created + 1) {
        std::thread::sleep(Duration::from_millis(20));
        std::fs::remove_file(&key_file).unwrap();
        std::fs::write(&key_file, b"").unwrap();
    }
    if sysv::ftok(&key_file, b'T').unwrap() != key {
        ipc_testkit::skipped(
            "skipping the age guard test: the filesystem did not reuse the key file's inode number",
        );
        sysv::shm_remove(id).unwrap();
        return;
    }
    for (side, got) in [
        ("writer", run(env!("CARGO_BIN_EXE_shm-writer"), &key_file)),
        ("reader", run(env!("CARGO_BIN_EXE_shm-reader"), &key_file)),
    ] {
        got.assert_failure(1, "was created")
            .assert_failure(1, "before its key file");
        assert_eq!(got.stdout, b"", "{side}: {got:?}");
    }
    assert_eq!(sysv::shm_open(key).unwrap(), Some(id), "left untouched");
    let now = Attached::attach(id, true).unwrap().snapshot().unwrap();
    assert_eq!(sysvshm::get(&now, 1).unwrap(), Some(&b"s:5:\"stale\";"[..]));
    sysv::shm_remove(id).unwrap();
    assert_no_sysv_objects(&key_file, b'T');
}
