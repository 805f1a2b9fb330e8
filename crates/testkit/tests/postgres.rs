//! Private PostgreSQL servers: start, admin SQL, stop/kill/restart, pause/resume.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use poolwarden_testkit::{postgres_available, Postgres, TestkitError};

/// PostgreSQL's SSLRequest packet: length 8, code 80877103.
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

/// Sends an SSLRequest and reads the one-byte answer ('S' or 'N'), waiting
/// at most `timeout`. A PostgreSQL server answers it before anything else.
fn ssl_answer(port: u16, timeout: Duration) -> std::io::Result<Vec<u8>> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(&SSL_REQUEST)?;
    let mut buf = [0_u8; 16];
    let n = stream.read(&mut buf)?;
    Ok(buf[..n].to_vec())
}

/// One-column, one-row result as text.
fn scalar(db: &Postgres, sql: &str) -> String {
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
    postgres_available().unwrap();
}

#[test]
fn start_admin_stop_and_start_again_keeps_port_and_data() {
    let mut db = Postgres::start().unwrap();
    let port = db.port();
    assert_ne!(port, 5432);
    assert_eq!(
        db.url(),
        format!("postgres://postgres@127.0.0.1:{port}/postgres")
    );
    assert_eq!(scalar(&db, "SELECT 1"), "1");
    assert_eq!(scalar(&db, "SHOW port"), port.to_string());
    assert_eq!(
        db.admin("SELECT 1, NULL, 'a b'").unwrap(),
        vec![vec!["1".to_owned(), String::new(), "a b".to_owned()]]
    );
    db.admin("CREATE TABLE kept (id INT PRIMARY KEY, name TEXT); INSERT INTO kept VALUES (1, 'one'), (2, 'two')")
        .unwrap();

    db.stop().unwrap();
    assert!(!db.is_running());
    assert!(ssl_answer(port, Duration::from_secs(1)).is_err());
    assert!(matches!(
        db.admin("SELECT 1"),
        Err(TestkitError::NotRunning { .. })
    ));

    db.start_again().unwrap();
    assert_eq!(db.port(), port);
    assert_eq!(
        db.admin("SELECT id, name FROM kept ORDER BY id").unwrap(),
        vec![
            vec!["1".to_owned(), "one".to_owned()],
            vec!["2".to_owned(), "two".to_owned()],
        ]
    );
}

#[test]
fn kill_and_start_again_recovers() {
    let mut db = Postgres::start().unwrap();
    let port = db.port();
    db.admin("CREATE TABLE crash (id INT); INSERT INTO crash VALUES (7)")
        .unwrap();
    db.kill().unwrap();
    assert!(!db.is_running());
    db.start_again().unwrap();
    assert_eq!(db.port(), port);
    assert_eq!(scalar(&db, "SELECT id FROM crash"), "7");
}

#[test]
fn paused_server_is_a_black_hole_until_resumed() {
    let mut db = Postgres::start().unwrap();
    assert_eq!(
        ssl_answer(db.port(), Duration::from_secs(10))
            .unwrap()
            .len(),
        1
    );
    db.pause().unwrap();
    assert!(db.is_running());
    match ssl_answer(db.port(), Duration::from_millis(500)) {
        Err(e) => assert!(
            matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            "expected a read timeout, got {e}"
        ),
        Ok(bytes) => panic!("a paused server answered {bytes:?}"),
    }
    db.resume().unwrap();
    assert_eq!(scalar(&db, "SELECT 1"), "1");
    // Stopping a paused server works too.
    db.pause().unwrap();
    db.stop().unwrap();
    assert!(!db.is_running());
}

#[test]
fn settings_apply_and_password_role_needs_its_password() {
    let db = Postgres::builder()
        .setting("max_connections", "7")
        .start()
        .unwrap();
    assert_eq!(scalar(&db, "SHOW max_connections"), "7");
    assert_eq!(
        scalar(
            &db,
            "SELECT count(*) FROM pg_database WHERE datname = 'test'"
        ),
        "1"
    );
    let login = |password: &str| {
        Command::new("psql")
            .args(["-X", "-A", "-t", "-h", "127.0.0.1", "-p"])
            .arg(db.port().to_string())
            .args([
                "-U",
                Postgres::PW_USER,
                "-d",
                "test",
                "-c",
                "SELECT current_user",
            ])
            .env("PGPASSWORD", password)
            .output()
            .unwrap()
    };
    let ok = login(Postgres::PW_PASSWORD);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&ok.stdout).trim(), "pw_user");
    let denied = login("wrong");
    assert!(!denied.status.success());
    assert!(String::from_utf8_lossy(&denied.stderr).contains("password authentication failed"));
}

#[test]
fn drop_kills_a_paused_postmaster_and_its_backends() {
    let db = Postgres::start().unwrap();
    let datadir = db.datadir().to_path_buf();
    let port = db.port();
    db.pause().unwrap();
    drop(db);
    assert!(!datadir.exists());
    assert!(ssl_answer(port, Duration::from_secs(1)).is_err());
}
