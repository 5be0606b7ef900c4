//! A member whose state lives in a `FileStore` restarts within an epoch and
//! carries on: same group, same safety number, frames both ways.
#![allow(clippy::unwrap_used)] // Test code.

use satsuma_core::Instant;
use satsuma_core::media::Codec;
use satsuma_core::mls::{
    Event, MemberInfo, MemoryStore, Session, SessionConfig, SessionError, Store, StoreError,
};
use satsuma_engine::{FileStore, os_seeded_crypto};

fn send(
    from: &mut Session,
    to: &mut Session,
    payload: &[u8],
) -> Result<Vec<u8>, satsuma_core::Error> {
    let mut wire = vec![0u8; payload.len() + 64];
    let n = Codec::Opus.protect(from.keyring_mut(), payload, &mut wire)?;
    let mut out = vec![0u8; payload.len() + 64];
    let (_, len) = Codec::Opus.unprotect(to.keyring_mut(), &wire[..n], &mut out)?;
    out.truncate(len);
    Ok(out)
}

#[test]
fn a_restart_within_an_epoch_resumes_from_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ada").join("member.state");

    let mut alice = Session::create(
        os_seeded_crypto().unwrap(),
        MemberInfo::new("Alice", "desk").unwrap(),
        SessionConfig::default(),
        MemoryStore::new(),
    )
    .unwrap();
    let mut ada = Session::create(
        os_seeded_crypto().unwrap(),
        MemberInfo::new("Ada", "laptop").unwrap(),
        SessionConfig::default(),
        FileStore::open(&path).unwrap(),
    )
    .unwrap();
    alice
        .create_group(Instant::from_millis(0), b"room")
        .unwrap();
    let kp = ada.key_package().unwrap();
    let commit = alice.commit(&[&kp], &[]).unwrap();
    alice.apply_pending_commit(Instant::from_millis(0)).unwrap();
    ada.join(Instant::from_millis(0), commit.welcome.as_deref().unwrap())
        .unwrap();
    assert_eq!(send(&mut ada, &mut alice, b"before").unwrap(), b"before");
    let fingerprint = ada.fingerprint();
    let safety = ada.safety_number().unwrap();
    let kid_before = ada.keyring().sending_kid().unwrap();

    // While Ada runs, nobody else can open her state.
    assert!(matches!(
        FileStore::open(&path),
        Err(satsuma_engine::Error::Locked { .. })
    ));
    drop(ada); // the app quits, or crashes: every change was saved already

    let store = FileStore::open(&path).unwrap();
    assert!(store.has_record());
    let mut ada = Session::resume(
        Instant::from_millis(5),
        os_seeded_crypto().unwrap(),
        SessionConfig::default(),
        store,
    )
    .unwrap();
    assert_eq!(ada.fingerprint(), fingerprint);
    assert_eq!(ada.epoch(), Some(1));
    assert_eq!(ada.safety_number().unwrap(), safety);
    assert_eq!(alice.safety_number().unwrap(), safety);
    // A new send context: no (key, counter) pair from before is reused.
    assert_ne!(ada.keyring().sending_kid().unwrap(), kid_before);
    assert_eq!(send(&mut ada, &mut alice, b"after").unwrap(), b"after");
    assert_eq!(send(&mut alice, &mut ada, b"to ada").unwrap(), b"to ada");

    // The group goes on with her, and the file follows.
    let update = alice.self_update().unwrap();
    assert_eq!(
        ada.process(Instant::from_millis(6), &update.commit)
            .unwrap(),
        Event::NewEpoch {
            epoch: 2,
            committer: 0
        }
    );
    alice.apply_pending_commit(Instant::from_millis(6)).unwrap();
    drop(ada);
    let mut ada = Session::resume(
        Instant::from_millis(7),
        os_seeded_crypto().unwrap(),
        SessionConfig::default(),
        FileStore::open(&path).unwrap(),
    )
    .unwrap();
    assert_eq!(ada.epoch(), Some(2));
    assert_eq!(ada.safety_number().unwrap(), alice.safety_number().unwrap());
    assert_eq!(send(&mut alice, &mut ada, b"epoch 2").unwrap(), b"epoch 2");
    assert_eq!(send(&mut ada, &mut alice, b"epoch 2").unwrap(), b"epoch 2");
}

#[test]
fn a_damaged_state_file_is_refused_not_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("member.state");
    let session = Session::create(
        os_seeded_crypto().unwrap(),
        MemberInfo::new("Ada", "laptop").unwrap(),
        SessionConfig::default(),
        FileStore::open(&path).unwrap(),
    )
    .unwrap();
    drop(session);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();

    let mut store = FileStore::open(&path).unwrap();
    assert_eq!(store.load(), Err(StoreError::Corrupt));
    assert_eq!(
        Session::resume(
            Instant::from_millis(0),
            os_seeded_crypto().unwrap(),
            SessionConfig::default(),
            store
        )
        .unwrap_err(),
        SessionError::Store(StoreError::Corrupt)
    );
}
