//! The reset, against a private PostgreSQL: what it sends, and when.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

use super::*;
use crate::conn::PgConn;

#[test]
fn init_sql_is_trimmed_and_batched() {
    let init = InitSql::new([
        "SET TIME ZONE 'UTC';",
        "  ",
        "SET search_path = app -- x",
        "",
    ]);
    assert_eq!(
        init.statements(),
        ["SET TIME ZONE 'UTC'", "SET search_path = app -- x"]
    );
    assert_eq!(
        init.after("RESET ALL"),
        "RESET ALL;\nSET TIME ZONE 'UTC';\nSET search_path = app -- x"
    );
    assert_eq!(InitSql::default().after("RESET ALL"), "RESET ALL");
}

/// A connection whose cancel requests go to a relay the test controls, and
/// an admin session to watch its backend.
struct Fixture {
    db: poolwarden_testkit::Postgres,
    conn: PgConn,
    admin: tokio_postgres::Client,
    pid: i32,
    relay: TcpListener,
}

async fn fixture() -> Fixture {
    let db = tokio::task::block_in_place(poolwarden_testkit::Postgres::start)
        .expect("a private PostgreSQL");
    let config: tokio_postgres::Config = db.url().parse().unwrap();
    let open = crate::connect::Open {
        init: InitSql::default(),
        cancel_timeout: Duration::from_secs(30),
        command_timeout: None,
        tls: crate::tls::Tls::None,
        verdict: crate::verdict::Verdict::new(Duration::from_secs(30)),
        watchdog: crate::watchdog::Watchdog::new(),
    };
    let mut conn = crate::connect::open(&config, &open).await.unwrap();
    let relay = TcpListener::bind("127.0.0.1:0").await.unwrap();
    conn.c.target =
        crate::cancel::CancelTarget::Tcp("127.0.0.1".into(), relay.local_addr().unwrap().port());
    let (admin, admin_io) = tokio_postgres::connect(&db.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(admin_io);
    let pid: i32 = conn
        .inner()
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    Fixture {
        db,
        conn,
        admin,
        pid,
        relay,
    }
}

/// Until the backend's current or last statement is like `pattern`, in
/// `state` (bounded: 30 s).
async fn backend_at(admin: &tokio_postgres::Client, pid: i32, pattern: &str, state: &str) {
    for _ in 0..3000 {
        let row = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE pid = $1 AND query LIKE $2 AND state = $3",
                &[&pid, &pattern, &state],
            )
            .await
            .unwrap();
        if row.get::<_, i64>(0) == 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the backend never showed {pattern:?} {state}");
}

/// The relay: takes the cancel request, forwards it to the server on `go`,
/// tells `forwarded`, closes the caller's socket on `release`.
fn relay(
    listener: TcpListener,
    port: u16,
    go: oneshot::Receiver<()>,
    forwarded: oneshot::Sender<()>,
    release: oneshot::Receiver<()>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let (mut caller, _) = listener.accept().await.unwrap();
        let mut request = [0u8; 16];
        caller.read_exact(&mut request).await.unwrap();
        go.await.unwrap();
        let mut server = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        server.write_all(&request).await.unwrap();
        let mut rest = Vec::new();
        server.read_to_end(&mut rest).await.unwrap();
        forwarded.send(()).unwrap();
        let _ = release.await;
        drop(caller);
    })
}

/// A dropped command's reset goes out with its cancel request, not after
/// the cancel request's answer; the connection is given back only when both
/// are done. The relay holds the caller's socket open after forwarding: the
/// reset must reach the server meanwhile, and must not return before.
/// (Before the fix the reset waited for the relay: the wait for its
/// `ROLLBACK` below ran into its bound.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reset_goes_out_with_the_cancel_and_waits_for_both() {
    let Fixture {
        db,
        conn,
        admin,
        pid,
        relay: listener,
    } = fixture().await;
    // A command dropped while the server runs it.
    tokio::select! {
        r = conn.simple_query("SELECT pg_sleep(60)") => panic!("it ended: {r:?}"),
        () = backend_at(&admin, pid, "SELECT pg_sleep(60)", "active") => {}
    }
    assert!(conn.seen().interrupted);

    let (go, going) = oneshot::channel();
    let (forwarded_tx, forwarded) = oneshot::channel();
    let (release, released) = oneshot::channel();
    let relay_task = relay(listener, db.port(), going, forwarded_tx, released);
    go.send(()).unwrap();
    let reset = tokio::spawn(async move {
        run(&conn, Plan::Rollback, &InitSql::default())
            .await
            .unwrap();
        conn
    });
    forwarded.await.unwrap();
    // The cancel stopped the sleep, and the ROLLBACK that waited behind it
    // ran, while the cancel request's socket is still open.
    backend_at(&admin, pid, "ROLLBACK", "idle").await;
    assert!(
        !reset.is_finished(),
        "the connection was given back before the cancel request was done"
    );
    release.send(()).unwrap();
    let conn = reset.await.unwrap();
    relay_task.await.unwrap();
    let seen = conn.seen();
    assert!(!seen.interrupted && !seen.tx_open, "{seen:?}");
    let one = conn.simple_query("SELECT 1").await.unwrap();
    let one = one.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
        _ => None,
    });
    assert_eq!(one.as_deref(), Some("1"));
}

/// A cancel request that arrives late (the dropped command had finished on
/// its own) hits the reset sent with it: the reset runs once more and
/// succeeds. The relay forwards the cancel only once the reset runs; the
/// reset's init SQL sleeps on its first run only (a sequence counts runs).
/// (Without the second run the reset failed with 57014.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_cancel_that_hits_the_reset_runs_it_again() {
    let Fixture {
        db,
        conn,
        admin,
        pid,
        relay: listener,
    } = fixture().await;
    admin
        .batch_execute("CREATE SEQUENCE reset_runs")
        .await
        .unwrap();
    // Dropped while it runs, then finished on its own.
    tokio::select! {
        r = conn.simple_query("SELECT pg_sleep(0.2)") => panic!("it ended: {r:?}"),
        () = backend_at(&admin, pid, "SELECT pg_sleep(0.2)", "active") => {}
    }
    backend_at(&admin, pid, "SELECT pg_sleep(0.2)", "idle").await;
    assert!(conn.seen().interrupted);

    let init =
        InitSql::new(["SELECT pg_sleep(CASE WHEN nextval('reset_runs') = 1 THEN 60 ELSE 0 END)"]);
    let (go, going) = oneshot::channel();
    let (forwarded_tx, forwarded) = oneshot::channel();
    let (release, released) = oneshot::channel();
    let relay_task = relay(listener, db.port(), going, forwarded_tx, released);
    let reset = tokio::spawn(async move {
        let done = run(&conn, Plan::Clean, &init).await;
        (conn, done)
    });
    backend_at(&admin, pid, "%reset_runs%", "active").await;
    go.send(()).unwrap();
    forwarded.await.unwrap();
    release.send(()).unwrap();
    let (conn, done) = reset.await.unwrap();
    relay_task.await.unwrap();
    done.expect("the reset, run again after the late cancel");
    let runs: i64 = admin
        .query_one("SELECT last_value FROM reset_runs", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(runs, 2, "the reset ran twice");
    assert_eq!(conn.seen(), crate::track::Seen::default());
}
