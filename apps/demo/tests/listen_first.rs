//! The demo binary binds its listeners before it touches the database
//! (issue 11, defect 14d): with `--listen` or `--admin-listen` on a port
//! already taken, the start fails with one line naming the address and the
//! flag, and the database it was given saw no connection and got no schema.
//!
//! Against a private MariaDB of this test's own, so its connection counter
//! moves only by what this test and the demo do. Loopback only.

use std::net::TcpListener;
use std::process::Command;

use poolwarden_testkit::MariaDb;

/// The private server's global `Connections` counter (every connection
/// attempt, a bare TCP connect included), read with the admin client: the
/// read itself adds one.
fn connections(db: &MariaDb) -> u64 {
    let rows = db
        .admin("SHOW GLOBAL STATUS LIKE 'Connections'")
        .expect("read Connections");
    rows[0][1].parse().expect("a number")
}

/// The tables in the demo's database (`test`, the URL's).
fn tables(db: &MariaDb) -> Vec<String> {
    db.admin("SELECT table_name FROM information_schema.tables WHERE table_schema = 'test'")
        .expect("list the tables")
        .into_iter()
        .map(|row| row.join(" "))
        .collect()
}

/// Runs the demo on `db` with `flag` on the taken address `taken` and the
/// other listener on an ephemeral port; returns its stderr. `--run-for`
/// bounds it should it start after all.
fn start_on_a_taken_port(db: &MariaDb, flag: &str, taken: &str) -> (bool, String) {
    let other = match flag {
        "--listen" => "--admin-listen",
        _ => "--listen",
    };
    let out = Command::new(env!("CARGO_BIN_EXE_poolwarden-demo"))
        .env_remove("DATABASE_URL")
        .env_remove("POOLWARDEN_DEMO_CONFIG")
        .env_remove("POOLWARDEN_DEMO_LISTEN")
        .env_remove("POOLWARDEN_DEMO_ADMIN_LISTEN")
        .env_remove("RUST_LOG")
        .args(["--database-url", &db.url()])
        .args([flag, taken, other, "127.0.0.1:0", "--run-for", "1"])
        .output()
        .expect("run the demo");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_taken_port_fails_the_start_before_the_database_is_touched() {
    let db = MariaDb::start().expect("a private MariaDB (apt-get install -y mariadb-server)");
    assert_eq!(tables(&db), Vec::<String>::new(), "a fresh database");
    for flag in ["--listen", "--admin-listen"] {
        // Held for the whole run: the demo cannot have this port.
        let holder = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let taken = holder.local_addr().unwrap().to_string();
        let before = connections(&db);
        let (ok, stderr) = start_on_a_taken_port(&db, flag, &taken);
        let after = connections(&db);
        drop(holder);

        assert!(
            !ok,
            "{flag} {taken} is taken: the start must fail: {stderr}"
        );
        let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("error")).collect();
        assert_eq!(errors.len(), 1, "{flag}: one clear line: {stderr}");
        assert!(
            errors[0].contains(&format!("cannot listen on {taken} ({flag})")),
            "{flag}: the line names the address and the flag: {stderr}"
        );
        assert_eq!(
            after - before,
            1,
            "{flag}: the demo connected to the database before binding (only this test's own read of the counter may count): {stderr}"
        );
        assert_eq!(
            tables(&db),
            Vec::<String>::new(),
            "{flag}: the schema was migrated before binding: {stderr}"
        );
    }
}
