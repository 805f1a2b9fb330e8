//! The rules of `sql.rs`, statement by statement.

use super::*;

fn s(sql: &str) -> SessionEffect {
    effect(sql).session
}

fn t(sql: &str) -> TxEffect {
    effect(sql).tx
}

#[test]
fn harmless_statements() {
    for sql in [
        "SELECT 1",
        "sElEcT 1",
        "  select * from t where name = 'SET x'",
        "INSERT INTO t VALUES (1)",
        "UPDATE t SET a = 1",
        "WITH x AS (SELECT 1) SELECT * FROM x",
        "SELECT pg_advisory_xact_lock(1)",
        "SET LOCAL statement_timeout = 5",
        "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
        "-- SET x = 1\nSELECT 1",
        "/* DISCARD ALL */ SELECT 1",
        "SELECT $1::int",
        "CREATE TABLE t (temperature int)",
        "SELECT temp FROM t",
        "DECLARE c CURSOR FOR SELECT 1",
        "SELECT a_column_name_longer_than_any_keyword_at_all FROM t",
        "",
    ] {
        assert_eq!(s(sql), SessionEffect::None, "{sql}");
    }
}

#[test]
fn session_state() {
    for sql in [
        "SET search_path = x",
        "Set Search_Path = x",
        "set application_name to 'a'",
        "SELECT PG_ADVISORY_LOCK(1)",
        "SET SESSION AUTHORIZATION pw_user",
        "SET ROLE x",
        "RESET ALL",
        "CREATE TEMP TABLE t (a int)",
        "CREATE TEMPORARY TABLE t (a int)",
        "CREATE TABLE pg_temp.t (a int)",
        "SELECT 1 INTO TEMP t",
        "SELECT pg_advisory_lock(1)",
        "SELECT pg_try_advisory_lock(1, 2)",
        "SELECT PG_TRY_ADVISORY_LOCK_SHARED(1)",
        "SELECT set_config('my.x', '1', false)",
        "LISTEN chan",
        "DECLARE c CURSOR WITH HOLD FOR SELECT 1",
    ] {
        assert_eq!(s(sql), SessionEffect::State, "{sql}");
    }
}

#[test]
fn deep_or_unknown() {
    for sql in [
        "PREPARE p AS SELECT 1",
        "DEALLOCATE ALL",
        "EXECUTE p",
        "DISCARD ALL",
        "DO $$ BEGIN PERFORM set_config('a.b', '1', false); END $$",
        "CALL proc()",
        "LOAD 'x'",
        "FROBNICATE",
    ] {
        assert_eq!(s(sql), SessionEffect::Deep, "{sql}");
    }
}

#[test]
fn transactions() {
    assert_eq!(t("BEGIN"), TxEffect::Begin);
    assert_eq!(t("begin isolation level serializable"), TxEffect::Begin);
    assert_eq!(t("START TRANSACTION"), TxEffect::Begin);
    assert_eq!(t("COMMIT"), TxEffect::End);
    assert_eq!(t("END"), TxEffect::End);
    assert_eq!(t("ROLLBACK"), TxEffect::End);
    assert_eq!(t("ABORT"), TxEffect::End);
    assert_eq!(t("ROLLBACK TO SAVEPOINT a"), TxEffect::None);
    assert_eq!(t("COMMIT PREPARED 'x'"), TxEffect::None);
    assert_eq!(t("COMMIT AND CHAIN"), TxEffect::Begin);
    assert_eq!(t("COMMIT AND NO CHAIN"), TxEffect::End);
    assert_eq!(t("SELECT 1"), TxEffect::None);
    assert_eq!(
        t("BEGIN; INSERT INTO t VALUES (1); COMMIT"),
        TxEffect::Batch { ends_open: false }
    );
    assert_eq!(t("COMMIT; BEGIN"), TxEffect::Batch { ends_open: true });
    assert_eq!(t("SELECT 1; SELECT 2"), TxEffect::None);
}

#[test]
fn batches_take_the_deepest_effect() {
    assert_eq!(s("SELECT 1; SET x = 1"), SessionEffect::State);
    assert_eq!(s("SELECT ';'; SELECT 2"), SessionEffect::None);
    assert_eq!(s("SELECT 'a;SET x=1'"), SessionEffect::None);
    assert_eq!(s("SELECT 1; PREPARE p AS SELECT 1"), SessionEffect::Deep);
    assert_eq!(t("SELECT 1;"), TxEffect::None);
    assert!(may_change_session("LISTEN a"));
    assert!(!may_change_session("SELECT 1"));
}

#[test]
fn kw_knows_every_keyword() {
    for (word, k) in [
        ("begin", Kw::Begin),
        ("start", Kw::Start),
        ("commit", Kw::Commit),
        ("end", Kw::End),
        ("rollback", Kw::Rollback),
        ("abort", Kw::Abort),
        ("set", Kw::Set),
        ("reset", Kw::Reset),
        ("listen", Kw::Listen),
        ("unlisten", Kw::Unlisten),
        ("declare", Kw::Declare),
        ("create", Kw::Create),
        ("select", Kw::Select),
        ("with", Kw::With),
        ("values", Kw::Harmless),
        ("table", Kw::Harmless),
        ("show", Kw::Harmless),
        ("explain", Kw::Harmless),
        ("insert", Kw::Harmless),
        ("update", Kw::Harmless),
        ("delete", Kw::Harmless),
        ("merge", Kw::Harmless),
        ("copy", Kw::Harmless),
        ("savepoint", Kw::Harmless),
        ("release", Kw::Harmless),
        ("alter", Kw::Harmless),
        ("drop", Kw::Harmless),
        ("grant", Kw::Harmless),
        ("revoke", Kw::Harmless),
        ("truncate", Kw::Harmless),
        ("vacuum", Kw::Harmless),
        ("analyze", Kw::Harmless),
        ("analyse", Kw::Harmless),
        ("comment", Kw::Harmless),
        ("lock", Kw::Harmless),
        ("notify", Kw::Harmless),
        ("fetch", Kw::Harmless),
        ("move", Kw::Harmless),
        ("close", Kw::Harmless),
        ("refresh", Kw::Harmless),
        ("cluster", Kw::Harmless),
        ("reindex", Kw::Harmless),
        ("checkpoint", Kw::Harmless),
        ("security", Kw::Harmless),
        ("import", Kw::Harmless),
        ("to", Kw::To),
        ("prepared", Kw::Prepared),
        ("local", Kw::Local),
        ("transaction", Kw::Transaction),
        ("constraints", Kw::Constraints),
        ("temp", Kw::Temp),
        ("temporary", Kw::Temp),
        ("pg_temp", Kw::Temp),
        ("into", Kw::Into),
        ("hold", Kw::Hold),
        ("chain", Kw::Chain),
        ("no", Kw::No),
        ("pg_advisory_lock", Kw::SessionFunction),
        ("pg_advisory_lock_shared", Kw::SessionFunction),
        ("pg_try_advisory_lock", Kw::SessionFunction),
        ("pg_try_advisory_lock_shared", Kw::SessionFunction),
        ("set_config", Kw::SessionFunction),
        ("dblink_connect", Kw::SessionFunction),
        ("dblink_connect_u", Kw::SessionFunction),
    ] {
        assert_eq!(kw(word.as_bytes()), k, "{word}");
        assert_eq!(kw(word.to_ascii_uppercase().as_bytes()), k, "{word}");
        let longer = format!("{word}x");
        assert_eq!(kw(longer.as_bytes()), Kw::Other, "{longer}");
    }
    assert_eq!(kw(b"s"), Kw::Other);
    assert_eq!(kw(b""), Kw::Other);
}
