//! Backup and restore through the real `spine` binary: a backup taken from a serving core
//! under writes holds every write acknowledged before it began and none acknowledged after it
//! ended, `spine verify` passes it without writing a byte, and it restores into a data
//! directory that serves; a damaged backup is found by `spine verify` and restores nothing.

#![allow(clippy::unwrap_used)] // Tests fail loudly on any unexpected error.

mod common;

use std::fs;
use std::path::Path;
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use spine_core::pds::synthetic::Population;
use spine_core::request::{ErrorCode, Operation};
use spine_core::{NhsNumber, Patient};
use spine_net::pki::DEMO_CLIENT;

use common::{
    Spine, connect, identity, killed_after, load, path, request, runtime, snapshot, spine, text,
};

/// `spine restore --from BACKUP --data-dir DIR`.
fn restore(backup: &Path, into: &Path) -> Output {
    spine(&["restore", "--from", path(backup), "--data-dir", path(into)])
}

/// Whether the server at `spine` knows `nhs_number`.
fn knows(dir: &Path, spine: &Spine, numbers: &[NhsNumber]) -> Vec<bool> {
    let demo = identity(dir, DEMO_CLIENT);
    runtime().block_on(async {
        let client = connect(spine.addr, &demo).await.unwrap();
        let mut known = Vec::new();
        for &nhs_number in numbers {
            match client
                .call(request(Operation::PdsRetrieve { nhs_number }))
                .await
                .unwrap()
            {
                Ok(_) => known.push(true),
                Err(refusal) if refusal.code == ErrorCode::ResourceNotFound => known.push(false),
                Err(refusal) => panic!("{nhs_number}: {refusal:?}"),
            }
        }
        known
    })
}

/// The patients loaded before, during and after a backup.
struct Loaded {
    before: Vec<Patient>,
    during: Vec<Patient>,
    after: Vec<Patient>,
}

/// Loads patients into the server on `data` while `spine backup` copies it to `backup`:
/// some acknowledged before it starts, some one after another while it runs, some after it
/// ends.
fn backup_under_writes(server: &Spine, data: &Path, backup: &Path) -> Loaded {
    let demo = identity(data, DEMO_CLIENT);
    let mut people = Population::new(41).map(|mut person| {
        person.general_practitioner = Some("Y90001".parse().unwrap());
        person
    });
    let before: Vec<_> = people.by_ref().take(30).collect();
    let during: Vec<_> = people.by_ref().take(5_000).collect();
    let after: Vec<_> = people.by_ref().take(5).collect();
    let writing = Arc::new(AtomicBool::new(true));
    runtime().block_on(async {
        let client = connect(server.addr, &demo).await.unwrap();
        for person in &before {
            load(&client, person).await;
        }
        let writer = {
            let (client, writing) = (client.clone(), Arc::clone(&writing));
            tokio::spawn(async move {
                let mut written = Vec::new();
                for person in during {
                    if !writing.load(Ordering::Acquire) {
                        break;
                    }
                    written.push(load(&client, &person).await);
                }
                written
            })
        };
        let taken = tokio::task::spawn_blocking({
            let (data, backup) = (data.to_path_buf(), backup.to_path_buf());
            move || spine(&["backup", "--data-dir", path(&data), "--to", path(&backup)])
        })
        .await
        .unwrap();
        assert!(taken.status.success(), "{}", text(&taken));
        assert!(text(&taken).contains("(online,"), "{}", text(&taken));
        for person in &after {
            load(&client, person).await;
        }
        writing.store(false, Ordering::Release);
        Loaded {
            before,
            during: writer.await.unwrap(),
            after,
        }
    })
}

#[test]
fn an_online_backup_under_writes_restores_what_was_acknowledged_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let backup = dir.path().join("backup");
    let restored = dir.path().join("restored");
    let server = Spine::start(&data);
    let Loaded {
        before,
        during,
        after,
    } = backup_under_writes(&server, &data, &backup);
    assert!(!during.is_empty(), "writes went on during the backup");
    drop(server);

    let before_verify = snapshot(&backup);
    let verified = spine(&["verify", "--data-dir", path(&backup)]);
    assert!(verified.status.success(), "{}", text(&verified));
    assert!(
        text(&verified).contains("files match the manifest (taken online)"),
        "{}",
        text(&verified)
    );
    assert!(
        before_verify == snapshot(&backup),
        "verify wrote to the backup"
    );

    let back = restore(&backup, &restored);
    assert!(back.status.success(), "{}", text(&back));
    let verified = spine(&["verify", "--data-dir", path(&restored)]);
    assert!(verified.status.success(), "{}", text(&verified));

    let server = Spine::start(&restored);
    let numbers = |people: &[Patient]| -> Vec<NhsNumber> {
        people.iter().map(|person| person.nhs_number).collect()
    };
    assert!(
        knows(&restored, &server, &numbers(&before))
            .iter()
            .all(|&known| known),
        "every write acknowledged before the backup is in it"
    );
    assert!(
        knows(&restored, &server, &numbers(&after))
            .iter()
            .all(|&known| !known),
        "no write acknowledged after the backup is in it"
    );
    // Of the writes made while it was taken, a prefix is in it: the cut is one moment.
    let known = knows(&restored, &server, &numbers(&during));
    let cut = known.iter().take_while(|&&known| known).count();
    assert!(
        known[cut..].iter().all(|&known| !known),
        "the backup holds the writes before one moment and none after: {known:?}"
    );
}

/// A data directory with `count` patients of population `seed` loaded through a server that
/// then stopped (SIGTERM).
fn stopped_with_patients(data: &Path, seed: u64, count: usize) {
    let mut server = Spine::start(data);
    let demo = identity(data, DEMO_CLIENT);
    runtime().block_on(async {
        let client = connect(server.addr, &demo).await.unwrap();
        for mut person in Population::new(seed).take(count) {
            person.general_practitioner = Some("Y90001".parse().unwrap());
            load(&client, &person).await;
        }
    });
    server.signal("TERM");
    assert!(server.child.wait().unwrap().success());
}

#[test]
fn a_damaged_backup_is_found_by_verify_and_restores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let backup = dir.path().join("backup");
    stopped_with_patients(&data, 42, 20);
    let taken = spine(&["backup", "--data-dir", path(&data), "--to", path(&backup)]);
    assert!(taken.status.success(), "{}", text(&taken));
    assert!(text(&taken).contains("(offline,"), "{}", text(&taken));
    let no_rate = spine(&[
        "backup",
        "--data-dir",
        path(&data),
        "--to",
        "x",
        "--rate",
        "0",
    ]);
    assert_eq!(no_rate.status.code(), Some(2), "{}", text(&no_rate));
    assert!(
        text(&no_rate).contains("a rate above zero"),
        "{}",
        text(&no_rate)
    );
    let again = spine(&[
        "backup",
        "--data-dir",
        path(&data),
        "--to",
        path(&backup),
        "--rate",
        "64MiB",
    ]);
    assert!(
        !again.status.success() && text(&again).contains("is not empty"),
        "{}",
        text(&again)
    );

    let segment = fs::read_dir(backup.join("shard-0"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| path.extension().is_some_and(|ext| ext == "seg"))
        .unwrap();
    let mut bytes = fs::read(&segment).unwrap();
    bytes[200] ^= 0x04;
    fs::write(&segment, &bytes).unwrap();
    fs::write(backup.join("stray"), b"not from the core").unwrap();

    let verified = spine(&["verify", "--data-dir", path(&backup)]);
    let found = text(&verified);
    assert_eq!(verified.status.code(), Some(1), "{found}");
    assert!(
        found.contains("backup: DAMAGED: shard-0/") && found.contains("do not hash"),
        "{found}"
    );
    assert!(
        found.contains("backup: DAMAGED: stray: not in the manifest"),
        "{found}"
    );

    let restored = dir.path().join("restored");
    let back = restore(&backup, &restored);
    assert!(!back.status.success(), "{}", text(&back));
    assert!(
        text(&back).contains("does not match its manifest"),
        "{}",
        text(&back)
    );
    assert!(!restored.exists(), "nothing restored");
}

/// Runs `spine` with `args` (a backup or a restore into `target`) twelve times, killed 2 to
/// 46 ms in: each time `target` is either absent (the run was cut short: it had not finished)
/// or a directory `spine verify` passes, removed for the next run. Returns how many were cut
/// short.
fn killed_at_twelve_moments(args: &[&str], target: &Path) -> usize {
    let mut cut_short = 0;
    for step in 0..12u64 {
        let finished = killed_after(args, std::time::Duration::from_millis(2 + step * 4));
        if target.exists() {
            let verified = spine(&["verify", "--data-dir", path(target)]);
            assert!(verified.status.success(), "{}", text(&verified));
            fs::remove_dir_all(target).unwrap();
        } else {
            assert!(!finished, "a run that finished left {}", target.display());
            cut_short += 1;
        }
    }
    cut_short
}

#[test]
fn a_backup_or_restore_killed_at_any_moment_leaves_nothing_that_looks_whole() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    stopped_with_patients(&data, 43, 200);
    let backup = dir.path().join("backup");
    let restored = dir.path().join("restored");
    let mut cut_short = killed_at_twelve_moments(
        &["backup", "--data-dir", path(&data), "--to", path(&backup)],
        &backup,
    );
    let taken = spine(&["backup", "--data-dir", path(&data), "--to", path(&backup)]);
    assert!(taken.status.success(), "{}", text(&taken));
    cut_short += killed_at_twelve_moments(
        &[
            "restore",
            "--from",
            path(&backup),
            "--data-dir",
            path(&restored),
        ],
        &restored,
    );
    assert!(cut_short > 0, "some runs were cut short");
    // Run again after a run cut short: it starts afresh.
    killed_after(
        &[
            "restore",
            "--from",
            path(&backup),
            "--data-dir",
            path(&restored),
        ],
        std::time::Duration::from_millis(3),
    );
    let back = restore(&backup, &restored);
    assert!(back.status.success(), "{}", text(&back));
    assert!(!dir.path().join("restored.partial").exists());
    let verified = spine(&["verify", "--data-dir", path(&restored)]);
    assert!(verified.status.success(), "{}", text(&verified));
}

#[test]
fn a_core_whose_directory_is_too_deep_for_a_socket_serves_and_says_it_cannot_be_copied_online() {
    let dir = tempfile::tempdir().unwrap();
    // A Unix socket's path has room for 107 bytes: this directory's socket would need more.
    let data = dir.path().join("d".repeat(100));
    let server = Spine::start(&data);
    let demo = identity(&data, DEMO_CLIENT);
    runtime().block_on(async {
        let client = connect(server.addr, &demo).await.unwrap();
        let person = Population::new(44).next().unwrap();
        client
            .call(request(Operation::PdsRetrieve {
                nhs_number: person.nhs_number,
            }))
            .await
            .unwrap()
            .unwrap_err();
    });
    let backup = dir.path().join("backup");
    let taken = spine(&["backup", "--data-dir", path(&data), "--to", path(&backup)]);
    assert!(!taken.status.success());
    assert!(
        text(&taken).contains("back the directory up offline"),
        "{}",
        text(&taken)
    );
}
