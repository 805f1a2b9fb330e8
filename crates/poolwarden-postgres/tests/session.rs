//! F13: session state never leaks to the next borrower, and a borrower who
//! changed nothing costs no round trip. Against a private PostgreSQL; a pool
//! of one, so the next borrower gets the same session.

mod common;

use std::time::Duration;

use common::{Events, Guard, PgPool};
use poolwarden_postgres::{PgManager, ResetPolicy};

fn pool(url: &str, policy: ResetPolicy) -> PgPool {
    let manager = PgManager::from_url(url).unwrap().reset_policy(policy);
    common::builder_for(manager, &Events::new())
        .max_size(1)
        // No pings: every round trip counted below is the borrower's or a
        // reset.
        .validation_bypass(Duration::from_secs(60))
        .build()
        .unwrap()
}

async fn text(c: &Guard, sql: &str) -> Option<String> {
    c.query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

async fn count(c: &Guard, sql: &str) -> i64 {
    c.query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

/// What a borrower leaves behind, and how the next one checks it is gone.
const CASES: &[(&str, &str)] = &[
    ("SET search_path = leaked", "search_path"),
    ("SET my.custom = 'leaked'", "custom GUC"),
    (
        "SELECT set_config('my.other', 'leaked', false)",
        "set_config",
    ),
    ("CREATE TEMP TABLE leaked_tmp (a INT)", "temp table"),
    ("SELECT pg_advisory_lock(4242)", "advisory lock"),
    ("LISTEN leaked_channel", "LISTEN"),
    ("PREPARE leaked_stmt AS SELECT 1", "PREPARE"),
    (
        "DECLARE leaked_cur CURSOR WITH HOLD FOR SELECT 1",
        "cursor WITH HOLD",
    ),
    ("SET SESSION AUTHORIZATION pw_user", "role"),
    ("BEGIN", "open transaction"),
];

/// Nothing of `what` is visible to `c`.
async fn assert_clean(c: &Guard, table: &str, what: &str) {
    assert_eq!(
        text(c, "SHOW search_path").await.as_deref(),
        Some("\"$user\", public"),
        "{what}"
    );
    assert_eq!(
        text(c, "SELECT current_setting('my.custom', true)")
            .await
            .unwrap_or_default(),
        "",
        "{what}"
    );
    assert_eq!(
        text(c, "SELECT current_setting('my.other', true)")
            .await
            .unwrap_or_default(),
        "",
        "{what}"
    );
    assert_eq!(
        text(c, "SELECT to_regclass('pg_temp.leaked_tmp')::text").await,
        None,
        "{what}"
    );
    assert_eq!(
        count(
            c,
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
        )
        .await,
        0,
        "{what}"
    );
    assert_eq!(
        count(c, "SELECT count(*) FROM pg_listening_channels()").await,
        0,
        "{what}"
    );
    assert_eq!(
        count(
            c,
            "SELECT count(*) FROM pg_prepared_statements WHERE name = 'leaked_stmt'"
        )
        .await,
        0,
        "{what}"
    );
    assert_eq!(
        count(
            c,
            "SELECT count(*) FROM pg_cursors WHERE name = 'leaked_cur'"
        )
        .await,
        0,
        "{what}"
    );
    let same_user: bool = c
        .query_one("SELECT current_user::text = 'postgres'", &[])
        .await
        .unwrap()
        .get(0);
    assert!(same_user, "{what}");
    // Not inside the previous borrower's transaction: an autocommit INSERT
    // is visible to everyone at once.
    c.execute(&format!("INSERT INTO {table} (what) VALUES ($1)"), &[&what])
        .await
        .unwrap();
}

async fn no_leak_under(policy: ResetPolicy, cases: &[(&str, &str)]) {
    let db = common::shared_postgres();
    let pool = pool(&db.url(), policy);
    let table = format!("kept_{policy:?}").to_lowercase();
    {
        let c = pool.get().await.unwrap();
        c.batch_execute(&format!("CREATE TABLE {table} (what TEXT)"))
            .await
            .unwrap();
    }
    for (sql, what) in cases {
        let pid;
        {
            let mut c = pool.get().await.unwrap();
            pid = common::backend_pid(&mut c).await;
            c.batch_execute(sql)
                .await
                .unwrap_or_else(|e| panic!("{what}: {sql}: {e}"));
        }
        let mut c = pool.get().await.unwrap();
        assert_eq!(
            common::backend_pid(&mut c).await,
            pid,
            "{what}: same session"
        );
        assert_clean(&c, &table, what).await;
        drop(c);
        let seen = common::admin(
            &db,
            &format!("SELECT count(*) FROM {table} WHERE what = '{what}'"),
        );
        assert_eq!(
            seen,
            vec![vec!["1".to_owned()]],
            "{policy:?} {what}: the next borrower's INSERT was lost in a leaked transaction"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f13_nothing_leaks_under_auto() {
    no_leak_under(ResetPolicy::Auto, CASES).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f13_nothing_leaks_under_full() {
    no_leak_under(ResetPolicy::Full, CASES).await;
}

/// `Clean` keeps prepared statements by design (deadpool's "Clean" does not
/// deallocate them either); everything else is undone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f13_nothing_but_sql_prepared_statements_leaks_under_clean() {
    let cases: Vec<_> = CASES
        .iter()
        .copied()
        .filter(|(_, what)| *what != "PREPARE")
        .collect();
    no_leak_under(ResetPolicy::Clean, &cases).await;
}

/// A borrower who changed nothing costs no round trip: no reset, no ping,
/// and the statement cache survives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f13_an_unchanged_session_costs_no_round_trip() {
    let db = common::shared_postgres();
    let pool = pool(&db.url(), ResetPolicy::Auto);
    let before = pool.status();
    for i in 0..50_i32 {
        let c = pool.get().await.unwrap();
        let stmt = c.prepare_cached("SELECT $1::INT + 1").await.unwrap();
        let row = c.query_one(&stmt, &[&i]).await.unwrap();
        assert_eq!(row.get::<_, i32>(0), i + 1);
        c.batch_execute("BEGIN").await.unwrap();
        c.execute("SELECT 1", &[]).await.unwrap();
        c.batch_execute("COMMIT").await.unwrap();
        assert!(!c.is_dirty());
    }
    let after = pool.status();
    assert_eq!(after.resets, before.resets, "{after:?}");
    assert_eq!(after.validations, before.validations, "{after:?}");
    assert_eq!(after.created, 1);
    let c = pool.get().await.unwrap();
    assert_eq!(c.cached_statements(), 1);
}

/// An open transaction alone costs a ROLLBACK and keeps the statement
/// cache; session state costs the Clean sequence (cache kept); `PREPARE`
/// costs `DISCARD ALL` (cache emptied).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f13_the_cheapest_sufficient_reset() {
    let db = common::shared_postgres();
    let pool = pool(&db.url(), ResetPolicy::Auto);
    let cases = [
        ("BEGIN", 1),
        ("SET search_path = x", 1),
        ("PREPARE cheapest AS SELECT 1", 0),
    ];
    for (sql, cached_after) in cases {
        {
            let c = pool.get().await.unwrap();
            c.prepare_cached("SELECT 1").await.unwrap();
            c.batch_execute(sql).await.unwrap();
        }
        let c = pool.get().await.unwrap();
        assert_eq!(c.cached_statements(), cached_after, "{sql}");
        // The cached statement still works after every kind of reset.
        let stmt = c.prepare_cached("SELECT 1").await.unwrap();
        assert_eq!(c.query_one(&stmt, &[]).await.unwrap().get::<_, i32>(0), 1);
    }
    assert_eq!(pool.status().resets, 3);
}

/// The server facts are read after the init SQL (sent together): a
/// timeout set there is what the pool sees; a failing init statement fails
/// the connect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_facts_are_read_after_the_init_sql() {
    use poolwarden::Manager as _;
    let db = common::shared_postgres();
    let manager = PgManager::from_url(&db.url())
        .unwrap()
        .init_sql(["SET idle_session_timeout = '7s'"]);
    let conn = manager.connect().await.unwrap();
    assert_eq!(
        conn.server_facts().idle_session_timeout,
        Some(Duration::from_secs(7))
    );
    let failing = PgManager::from_url(&db.url())
        .unwrap()
        .init_sql(["SET no_such_setting_at_all = 1"]);
    assert!(failing.connect().await.is_err());
}

/// Init SQL runs on connect and again after a reset that resets settings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_sql_survives_resets() {
    let db = common::shared_postgres();
    let manager = PgManager::from_url(&db.url()).unwrap().init_sql([
        "SET TIME ZONE 'Pacific/Auckland'",
        "SET search_path = public",
    ]);
    let pool = common::builder_for(manager, &Events::new())
        .max_size(1)
        .build()
        .unwrap();
    for sql in ["SET TIME ZONE 'UTC'", "DISCARD ALL", "SELECT 1"] {
        {
            let c = pool.get().await.unwrap();
            c.batch_execute(sql).await.unwrap();
        }
        let c = pool.get().await.unwrap();
        assert_eq!(
            text(&c, "SHOW TimeZone").await.as_deref(),
            Some("Pacific/Auckland"),
            "after {sql}"
        );
        assert_eq!(
            text(&c, "SHOW search_path").await.as_deref(),
            Some("public")
        );
    }
}
