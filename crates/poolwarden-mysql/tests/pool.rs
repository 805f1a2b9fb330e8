//! End to end through a poolwarden `Pool` against a running MariaDB/MySQL
//! server (see tests/mariadb.rs for `POOLWARDEN_MYSQL_URL` and
//! `POOLWARDEN_MYSQL_REQUIRED`). Non-destructive: only the pool's own
//! sessions are touched.

use std::time::Duration;

use mysql_async::prelude::Queryable;
use poolwarden::{Manager, Pool};
use poolwarden_mysql::{MySqlManager, ResetPolicy};

fn url() -> String {
    std::env::var("POOLWARDEN_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".to_owned())
}

async fn pool(policy: ResetPolicy) -> Option<Pool<MySqlManager>> {
    pool_with(policy, Duration::from_millis(500)).await
}

async fn pool_with(policy: ResetPolicy, validation_bypass: Duration) -> Option<Pool<MySqlManager>> {
    let manager = MySqlManager::from_url(&url())
        .expect("valid POOLWARDEN_MYSQL_URL")
        .init_sql(["SET time_zone = '+00:00'"])
        .reset_policy(policy);
    if let Err(e) = manager.connect().await {
        if std::env::var_os("POOLWARDEN_MYSQL_REQUIRED").is_some() {
            panic!(
                "POOLWARDEN_MYSQL_REQUIRED is set but {} is unreachable: {e}",
                url()
            );
        }
        eprintln!("skipped: no MySQL/MariaDB server at {}: {e}", url());
        return None;
    }
    let pool = Pool::builder(manager)
        .name("poolwarden-mysql-test")
        .max_size(1)
        .max_overflow(0)
        .min_idle(0)
        .checkout_timeout(Duration::from_secs(5))
        .validation_bypass(validation_bypass)
        .build()
        .expect("valid pool configuration");
    Some(pool)
}

/// One connection, many borrowers: none sees what the previous one left,
/// and the connection is reused (reset, not replaced).
#[tokio::test]
async fn borrowers_never_see_each_others_session() {
    let Some(pool) = pool(ResetPolicy::Full).await else {
        return;
    };
    let mut ids = Vec::new();
    for round in 0..5 {
        let mut conn = pool.get().await.unwrap();
        ids.push(conn.id());
        let seen: Option<Option<i64>> = conn.query_first("SELECT @x").await.unwrap();
        assert_eq!(seen, Some(None), "round {round}: @x leaked");
        let tz: Option<String> = conn.query_first("SELECT @@time_zone").await.unwrap();
        assert_eq!(
            tz.as_deref(),
            Some("+00:00"),
            "round {round}: init SQL lost"
        );
        conn.query_drop("CREATE TEMPORARY TABLE pw_pool_tmp (a INT)")
            .await
            .unwrap();
        conn.query_drop("SET @x = 1; SET time_zone = '+05:00'; BEGIN")
            .await
            .unwrap();
        conn.query_drop("INSERT INTO pw_pool_tmp VALUES (1)")
            .await
            .unwrap();
    }
    ids.dedup();
    assert_eq!(
        ids.len(),
        1,
        "the connection should be reset and reused: {ids:?}"
    );
    let status = pool.status();
    assert_eq!(status.created, 1, "{status:?}");
}

/// Every checkout pinged first (no probe then): the return still resets.
#[tokio::test]
async fn validated_checkouts_are_reset_too() {
    let Some(pool) = pool_with(ResetPolicy::Full, Duration::ZERO).await else {
        return;
    };
    for round in 0..4 {
        let mut conn = pool.get().await.unwrap();
        let seen: Option<Option<i64>> = conn.query_first("SELECT @v").await.unwrap();
        assert_eq!(seen, Some(None), "round {round}: @v leaked");
        conn.query_drop("SET @v = 1").await.unwrap();
        drop(conn);
        // Reset in the background, then idle past the (zero) bypass window.
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let status = pool.status();
    assert_eq!(status.created, 1, "{status:?}");
    assert!(
        status.validations >= 3,
        "checkouts were not validated: {status:?}"
    );
    assert!(status.resets >= 4, "{status:?}");
}

/// A query cancelled by a timeout: the connection is discarded at return and
/// the next borrower gets a working one.
#[tokio::test]
async fn a_cancelled_query_never_reaches_the_next_borrower() {
    let Some(pool) = pool(ResetPolicy::Full).await else {
        return;
    };
    {
        let mut conn = pool.get().await.unwrap();
        let r = tokio::time::timeout(
            Duration::from_millis(100),
            conn.query_drop("SELECT SLEEP(1)"),
        )
        .await;
        assert!(r.is_err());
    }
    let mut conn = pool.get().await.unwrap();
    let one: Option<i64> = conn.query_first("SELECT 1").await.unwrap();
    assert_eq!(one, Some(1));
    drop(conn);
    let status = pool.status();
    assert_eq!(status.created, 2, "{status:?}");
}
