//! TLS through rustls (feature `tls-rustls`): a private PostgreSQL with
//! `ssl = on` and a certificate from a throw-away CA made with the
//! `openssl` command.
#![cfg(feature = "tls-rustls")]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::Events;
use poolwarden::{ErrorClass, PoolError};
use poolwarden_postgres::{rustls, PgManager};
use poolwarden_testkit::Postgres;

/// A CA, and a server certificate for 127.0.0.1 signed by it, in a fresh
/// directory the server's OS user can read.
struct Certs {
    dir: PathBuf,
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("running openssl (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn make_certs() -> Certs {
    let dir = std::env::temp_dir().join(format!(
        "pw-pg-tls-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir(&dir).unwrap();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=pw-test-ca",
    ]);
    run(&dir, &ca);
    let mut csr = vec!["req"];
    csr.extend(ec);
    csr.extend([
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    run(&dir, &csr);
    std::fs::write(
        dir.join("ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    run(
        &dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "ext",
        ],
    );
    run(
        &dir,
        &["x509", "-in", "ca.crt", "-outform", "der", "-out", "ca.der"],
    );
    // PostgreSQL accepts a key owned by root with mode 0640 (group: the
    // server's), or owned by the server's user with 0600.
    use std::os::unix::fs::PermissionsExt;
    let key = dir.join("server.key");
    let root = Command::new("id").arg("-u").output().unwrap().stdout == b"0\n";
    if root {
        let gid = Command::new("id")
            .args(["-g", "postgres"])
            .output()
            .unwrap();
        let gid: u32 = String::from_utf8_lossy(&gid.stdout).trim().parse().unwrap();
        std::os::unix::fs::chown(&key, Some(0), Some(gid)).unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
    } else {
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    Certs { dir }
}

fn client_config(certs: &Certs) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    let der = std::fs::read(certs.dir.join("ca.der")).unwrap();
    roots
        .add(rustls::pki_types::CertificateDer::from(der))
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

fn start_tls_server(certs: &Certs) -> Postgres {
    let cert = certs.dir.join("server.crt").display().to_string();
    let key = certs.dir.join("server.key").display().to_string();
    common::start_postgres(&[
        ("ssl", "on"),
        ("ssl_cert_file", &cert),
        ("ssl_key_file", &key),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_and_cancels_go_over_tls() {
    let _serial = common::serial().await;
    let certs = make_certs();
    let db = start_tls_server(&certs);
    let url = format!("{}?sslmode=require", db.url());
    let manager = PgManager::from_url(&url)
        .unwrap()
        .rustls(client_config(&certs));
    let pool = common::builder_for(manager, &Events::new())
        .max_size(1)
        .build()
        .unwrap();
    {
        let c = pool.get().await.unwrap();
        let row = c
            .query_one(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .await
            .unwrap();
        assert!(row.get::<_, bool>(0), "the session is not encrypted");
        // A dropped query is cancelled over TLS too.
        let query = c.query("SELECT pg_sleep(3600)", &[]);
        let _ = tokio::time::timeout(Duration::from_millis(300), query).await;
    }
    let c = pool.get().await.unwrap();
    let row = tokio::time::timeout(Duration::from_secs(30), c.query_one("SELECT 5", &[]))
        .await
        .expect("the dropped pg_sleep(3600) was not cancelled")
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 5);
}

/// `sslmode=require` without a TLS connector: one clear `Fatal` error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_without_a_connector_is_fatal() {
    let _serial = common::serial().await;
    let certs = make_certs();
    let db = start_tls_server(&certs);
    let url = format!("{}?sslmode=require", db.url());
    let events = Events::new();
    let pool = common::builder(&url, &events).build().unwrap();
    let err = pool.get().await.unwrap_err();
    assert!(
        matches!(err, PoolError::Fatal { .. }),
        "{}",
        common::error_chain(&err)
    );
    assert!(events
        .connect_failures()
        .iter()
        .all(|(_, _, class)| *class == ErrorClass::Fatal));
}
