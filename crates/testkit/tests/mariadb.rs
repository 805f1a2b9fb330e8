//! Private MariaDB servers: start, admin SQL, stop/kill/restart, pause/resume.

use std::io::{ErrorKind, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use poolwarden_testkit::{mariadb_available, MariaDb, TestkitError};

/// Connects to the server and reads what it sends first, waiting at most
/// `timeout`: a MySQL server greets every new connection.
fn read_greeting(port: u16, timeout: Duration) -> std::io::Result<Vec<u8>> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    let mut buf = [0_u8; 256];
    let n = stream.read(&mut buf)?;
    Ok(buf[..n].to_vec())
}

/// One-column, one-row result as text.
fn scalar(db: &MariaDb, sql: &str) -> String {
    let rows = db.admin(sql).unwrap();
    assert_eq!(rows.len(), 1, "expected one row from {sql}, got {rows:?}");
    assert_eq!(
        rows[0].len(),
        1,
        "expected one column from {sql}, got {rows:?}"
    );
    rows[0][0].clone()
}

#[test]
fn binaries_are_installed() {
    mariadb_available().unwrap();
}

#[test]
fn start_admin_stop_and_start_again_keeps_port_and_data() {
    let mut db = MariaDb::start().unwrap();
    let port = db.port();
    assert_ne!(port, 3306);
    assert_eq!(db.url(), format!("mysql://root@127.0.0.1:{port}/test"));
    assert_eq!(
        db.url_for("pw_user", "pw_pass", "test"),
        format!("mysql://pw_user:pw_pass@127.0.0.1:{port}/test")
    );
    assert!(db.is_running());
    assert_eq!(scalar(&db, "SELECT 1"), "1");
    assert_eq!(scalar(&db, "SELECT @@port"), port.to_string());
    assert_eq!(
        db.admin("SELECT 1, NULL, 'a\tb'").unwrap(),
        vec![vec!["1".to_owned(), "NULL".to_owned(), "a\tb".to_owned()]]
    );
    db.admin(
        "CREATE TABLE test.kept (id INT PRIMARY KEY, name VARCHAR(20));
         INSERT INTO test.kept VALUES (1, 'one'), (2, 'two');",
    )
    .unwrap();

    db.stop().unwrap();
    assert!(!db.is_running());
    assert_eq!(db.pid(), None);
    assert!(read_greeting(port, Duration::from_secs(1)).is_err());
    assert!(matches!(
        db.admin("SELECT 1"),
        Err(TestkitError::NotRunning { .. })
    ));
    // Stopping twice is harmless.
    db.stop().unwrap();

    db.start_again().unwrap();
    assert_eq!(db.port(), port);
    assert!(db.is_running());
    assert_eq!(
        db.admin("SELECT id, name FROM test.kept ORDER BY id")
            .unwrap(),
        vec![
            vec!["1".to_owned(), "one".to_owned()],
            vec!["2".to_owned(), "two".to_owned()],
        ]
    );
}

#[test]
fn start_again_while_running_is_an_error() {
    let mut db = MariaDb::start().unwrap();
    let err = db.start_again().unwrap_err();
    assert!(
        matches!(err, TestkitError::AlreadyRunning { .. }),
        "unexpected error: {err}"
    );
    assert_eq!(scalar(&db, "SELECT 1"), "1");
}

#[test]
fn kill_and_start_again_recovers_committed_data() {
    let mut db = MariaDb::start().unwrap();
    let port = db.port();
    let old_pid = db.pid().unwrap();
    db.admin("CREATE TABLE test.crash (id INT PRIMARY KEY) ENGINE=InnoDB; INSERT INTO test.crash VALUES (7);")
        .unwrap();
    db.kill().unwrap();
    assert!(!db.is_running());
    db.start_again().unwrap();
    assert_eq!(db.port(), port);
    assert_ne!(db.pid(), Some(old_pid));
    assert_eq!(scalar(&db, "SELECT id FROM test.crash"), "7");
}

#[test]
fn paused_server_is_a_black_hole_until_resumed() {
    let mut db = MariaDb::start().unwrap();
    let greeting = read_greeting(db.port(), Duration::from_secs(10)).unwrap();
    assert!(!greeting.is_empty(), "a running server greets");

    db.pause().unwrap();
    assert!(db.is_running(), "a paused server is still alive");
    match read_greeting(db.port(), Duration::from_millis(500)) {
        Err(e) => assert!(
            matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            "expected a read timeout, got {e}"
        ),
        Ok(bytes) => panic!("a paused server sent {bytes:?}"),
    }

    db.resume().unwrap();
    assert_eq!(scalar(&db, "SELECT 1"), "1");
    assert!(!read_greeting(db.port(), Duration::from_secs(10))
        .unwrap()
        .is_empty());
}

#[test]
fn stop_works_on_a_paused_server() {
    let mut db = MariaDb::start().unwrap();
    db.pause().unwrap();
    db.stop().unwrap();
    assert!(!db.is_running());
    db.start_again().unwrap();
    assert_eq!(scalar(&db, "SELECT 1"), "1");
}

#[test]
fn two_servers_run_side_by_side() {
    let handles: Vec<_> = (0..2)
        .map(|i| {
            std::thread::spawn(move || {
                let db = MariaDb::start().unwrap();
                db.admin(&format!("CREATE TABLE test.only_{i} (id INT)"))
                    .unwrap();
                db
            })
        })
        .collect();
    let dbs: Vec<MariaDb> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_ne!(dbs[0].port(), dbs[1].port());
    assert_ne!(dbs[0].datadir(), dbs[1].datadir());
    for (i, db) in dbs.iter().enumerate() {
        let tables = db.admin("SHOW TABLES FROM test").unwrap();
        assert_eq!(tables, vec![vec![format!("only_{i}")]]);
    }
}

#[test]
fn builder_args_apply_and_survive_restarts() {
    let mut db = MariaDb::builder()
        // MariaDB clamps max_connections to at least 10.
        .args(["--max-connections=12", "--wait-timeout=2"])
        .start()
        .unwrap();
    assert_eq!(scalar(&db, "SELECT @@max_connections"), "12");
    assert_eq!(scalar(&db, "SELECT @@global.wait_timeout"), "2");
    db.stop().unwrap();
    db.start_again().unwrap();
    assert_eq!(scalar(&db, "SELECT @@max_connections"), "12");
}

#[test]
fn password_user_needs_its_password() {
    let db = MariaDb::start().unwrap();
    let login = |password: &str| {
        Command::new("mariadb")
            .arg("--no-defaults")
            .arg("--protocol=tcp")
            .arg("--host=127.0.0.1")
            .arg(format!("--port={}", db.port()))
            .arg("--user=pw_user")
            .arg(format!("--password={password}"))
            .args(["-N", "-B", "-e", "SELECT CURRENT_USER()"])
            .output()
            .unwrap()
    };
    let ok = login(MariaDb::PW_PASSWORD);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&ok.stdout).trim(), "pw_user@%");
    let denied = login("wrong");
    assert!(!denied.status.success());
    assert!(String::from_utf8_lossy(&denied.stderr).contains("Access denied"));
}

#[test]
fn bad_sql_is_an_admin_error() {
    let db = MariaDb::start().unwrap();
    let err = db.admin("SELEC 1").unwrap_err();
    assert!(
        matches!(err, TestkitError::Admin { .. }),
        "unexpected error: {err}"
    );
    assert!(err.to_string().contains("SQL syntax"), "{err}");
}

#[test]
fn drop_kills_the_server_and_removes_its_data() {
    let db = MariaDb::start().unwrap();
    let pid = db.pid().unwrap();
    let datadir = db.datadir().to_path_buf();
    let port = db.port();
    assert!(datadir.is_dir());
    drop(db);
    assert!(!datadir.exists());
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    assert!(
        stat.is_empty() || stat.contains(") Z"),
        "process still alive: {stat}"
    );
    assert!(read_greeting(port, Duration::from_secs(1)).is_err());
}
