//! The store's own tests: transactions, revisions, migrations, a full disk.

use super::records::UserRecord;
use super::*;

fn user(name: &str) -> UserRecord {
    UserRecord::new(name, 1)
}

#[tokio::test]
async fn writes_are_atomic_and_bump_the_revision() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("store")).expect("open");
    let (rev1, ()) = store
        .write(|t| t.put(T::Users, b"anna", &user("anna")))
        .await
        .expect("write");
    let failed = store
        .write(|t| {
            t.put(T::Users, b"bernat", &user("bernat"))?;
            Err::<(), _>(Error::invalid("no").into())
        })
        .await;
    assert!(failed.is_err());
    assert!(
        store
            .get::<UserRecord>(T::Users, b"bernat")
            .expect("read")
            .is_none(),
        "aborted write left nothing"
    );
    let (rev2, ()) = store
        .write(|t| t.put(T::Users, b"carla", &user("carla")))
        .await
        .expect("write");
    assert_eq!(rev2, rev1 + 1);
    assert_eq!(store.list::<UserRecord>(T::Users).expect("list").len(), 2);
}

#[tokio::test]
async fn a_store_from_a_newer_porta_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = Store::open(&dir.path().join("store")).expect("open");
        store
            .tree(T::Meta)
            .insert(meta::SCHEMA_VERSION, &(SCHEMA_VERSION + 1).to_be_bytes())
            .expect("insert");
        store.flush().await.expect("flush");
    }
    let err = Store::open(&dir.path().join("store"))
        .err()
        .expect("refused");
    assert!(err.to_string().contains("newer Porta"), "{err}");
}

#[tokio::test]
async fn a_first_schema_store_gets_its_names_indexed() {
    use crate::names::Kind;
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = Store::open(&dir.path().join("store")).expect("open");
        store
            .write(|t| t.put(T::Users, b"alice", &user("alice")))
            .await
            .expect("write");
        store.tree(T::NameSkeletons).clear().expect("clear");
        store
            .tree(T::Meta)
            .insert(meta::SCHEMA_VERSION, &1u32.to_be_bytes())
            .expect("insert");
        store.flush().await.expect("flush");
    }
    let store = Store::open(&dir.path().join("store")).expect("migrated");
    assert_eq!(store.meta_u32_schema(), SCHEMA_VERSION);
    let lookalike = store
        .write(|t| t.claim_name(Kind::User, "aIice", |t, holder| t.user_exists(holder)))
        .await
        .expect_err("a lookalike of a name from before the migration");
    assert!(lookalike.to_string().contains("looks like"), "{lookalike}");
}
