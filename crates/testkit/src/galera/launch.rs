//! Launching a Galera cluster: the nodes' directories and ports, the
//! `mariadbd` command line, crash recovery (`--wsrep-recover`) and the
//! `rsync_root` SST method (see the parent module's docs).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::{Galera, GaleraBuilder, Node, SERVER};
use crate::binaries::{galera_binaries, mariadb_binaries, GaleraBinaries};
use crate::cleanup::new_temp_dir;
use crate::command::run_with_timeout;
use crate::error::TestkitError;
use crate::mariadb::{is_root, template_datadir, MariaDb};
use crate::net::free_port;
use crate::process::ServerProcess;
use crate::template::copy_tree;

/// Bound on `--wsrep-recover`.
const RECOVER_TIMEOUT: Duration = Duration::from_secs(60);
/// EVS settings for quick failure detection (keepalive <= inactive check <=
/// suspect <= inactive): survivors form a new primary component 1-2 s after
/// a node dies instead of 6 s.
const FAST_EVS: &str = ";evs.keepalive_period=PT0.2S;evs.inactive_check_period=PT0.3S;\
evs.suspect_timeout=PT1S;evs.inactive_timeout=PT2S;evs.install_timeout=PT2S";

impl Galera {
    pub(super) fn launch(builder: GaleraBuilder) -> Result<Galera, TestkitError> {
        let started = Instant::now();
        let bins = mariadb_binaries()?;
        let galera = galera_binaries()?;
        let template = template_datadir(&bins)?;
        let dir = new_temp_dir("galera")?;
        let base = dir
            .path()
            .canonicalize()
            .map_err(|e| TestkitError::io("resolving the temporary directory", e))?;
        write_sst_shims(&base, &galera)?;
        let mut nodes = Vec::with_capacity(builder.nodes);
        for i in 0..builder.nodes {
            let root = base.join(format!("node{i}"));
            let datadir = root.join("data");
            std::fs::create_dir_all(&root)
                .map_err(|e| TestkitError::io(format!("creating {}", root.display()), e))?;
            copy_tree(&template, &datadir)?;
            nodes.push(Node {
                process: ServerProcess::new(SERVER, root.join("mariadbd.log"), false),
                root,
                datadir,
                port: free_port()?,
                gcomm_port: free_port()?,
                ist_port: free_port()?,
                sst_port: free_port()?,
                paused: false,
            });
        }
        let mut cluster = Galera {
            nodes,
            bins,
            galera,
            fast_failover: builder.fast_failover,
            startup_timeout: builder.startup_timeout,
            dir,
        };
        cluster.bootstrap(0)?;
        cluster.admin(
            0,
            &format!(
                "CREATE DATABASE IF NOT EXISTS `{db}`;
                 CREATE USER IF NOT EXISTS 'root'@'127.0.0.1';
                 GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
                 CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED BY '{password}';
                 GRANT ALL PRIVILEGES ON *.* TO '{user}'@'%';",
                db = MariaDb::DATABASE,
                user = MariaDb::PW_USER,
                password = MariaDb::PW_PASSWORD,
            ),
        )?;
        // Joiners at once: their SSTs overlap and the cluster is up sooner.
        for i in 1..cluster.nodes.len() {
            cluster.spawn_node(i, false)?;
        }
        for i in 1..cluster.nodes.len() {
            cluster.wait_synced(i, builder.startup_timeout)?;
        }
        cluster.wait_settled(None, builder.startup_timeout)?;
        tracing::info!(
            nodes = cluster.nodes.len(),
            dir = %cluster.dir.path().display(),
            elapsed = ?started.elapsed(),
            "private Galera cluster started"
        );
        Ok(cluster)
    }

    /// The `mariadbd` command line of node `i`.
    pub(super) fn command(&self, i: usize, extra: &[String]) -> Command {
        let node = &self.nodes[i];
        let peers: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.gcomm_port))
            .collect();
        let evs = if self.fast_failover { FAST_EVS } else { "" };
        let base = self.dir.path();
        let path = std::env::var("PATH").unwrap_or_default();
        let mut cmd = Command::new(&self.bins.server);
        cmd.current_dir(&node.root)
            .env("PATH", format!("{}:{path}", base.join("bin").display()))
            .arg("--no-defaults")
            .arg(format!("--datadir={}", node.datadir.display()))
            .arg(format!("--port={}", node.port))
            .arg("--bind-address=127.0.0.1")
            .arg(format!(
                "--socket={}",
                node.root.join("mysqld.sock").display()
            ))
            .arg(format!(
                "--pid-file={}",
                node.root.join("mariadbd.pid").display()
            ))
            .arg(format!("--tmpdir={}", node.root.display()))
            .arg("--skip-log-bin")
            .arg("--skip-name-resolve")
            .arg("--innodb-buffer-pool-size=16M")
            .arg("--innodb-log-file-size=8M")
            .arg("--binlog-format=ROW")
            .arg("--innodb-autoinc-lock-mode=2")
            .arg("--innodb-flush-log-at-trx-commit=2")
            .arg("--wsrep-on=ON")
            .arg(format!(
                "--wsrep-provider={}",
                self.galera.provider.display()
            ))
            .arg("--wsrep-cluster-name=poolwarden")
            .arg(format!(
                "--wsrep-cluster-address=gcomm://{}",
                peers.join(",")
            ))
            .arg(format!("--wsrep-node-name=node{i}"))
            .arg(format!(
                "--wsrep-node-address=127.0.0.1:{}",
                node.gcomm_port
            ))
            .arg("--wsrep-sst-method=rsync_root")
            .arg(format!(
                "--wsrep-sst-receive-address=127.0.0.1:{}",
                node.sst_port
            ))
            .arg(format!(
                "--wsrep-provider-options=base_host=127.0.0.1;base_port={g};\
                 gmcast.listen_addr=tcp://127.0.0.1:{g};ist.recv_addr=127.0.0.1:{ist};\
                 gcache.size=64M{evs}",
                g = node.gcomm_port,
                ist = node.ist_port,
            ));
        if is_root() {
            cmd.arg("--user=root");
        }
        cmd.args(extra);
        cmd
    }

    /// After a crash `grastate.dat` says `seqno: -1`, and the node would
    /// need a full SST. Run InnoDB recovery (`--wsrep-recover`) and return
    /// the recovered `uuid:seqno` to start at, so it rejoins by IST.
    pub(super) fn recover_position(&self, i: usize) -> Result<Option<String>, TestkitError> {
        let node = &self.nodes[i];
        let grastate =
            std::fs::read_to_string(node.datadir.join("grastate.dat")).unwrap_or_default();
        let crashed = grastate
            .lines()
            .any(|l| l.starts_with("seqno:") && l.trim_end().ends_with("-1"));
        if !crashed || !node.datadir.join("ibdata1").exists() {
            return Ok(None);
        }
        let log = node.root.join("recover.log");
        let _ = std::fs::remove_file(&log);
        let mut cmd = self.command(i, &[]);
        cmd.arg("--wsrep-recover")
            .arg(format!("--log-error={}", log.display()));
        run_with_timeout(&mut cmd, RECOVER_TIMEOUT)
            .map_err(|e| TestkitError::io(format!("running --wsrep-recover on node {i}"), e))?;
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        Ok(text
            .lines()
            .filter_map(|l| l.split("WSREP: Recovered position:").nth(1))
            .map(|p| p.trim().to_owned())
            .next_back()
            .filter(|p| !p.is_empty() && !p.ends_with(":-1")))
    }

    /// Lets node `i` bootstrap a new cluster from its data.
    pub(super) fn mark_safe_to_bootstrap(&self, i: usize) -> Result<(), TestkitError> {
        let path = self.nodes[i].datadir.join("grastate.dat");
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Ok(()); // a fresh data directory: nothing to mark
        };
        std::fs::write(
            &path,
            text.replace("safe_to_bootstrap: 0", "safe_to_bootstrap: 1"),
        )
        .map_err(|e| TestkitError::io(format!("writing {}", path.display()), e))
    }
}

/// Writes the `rsync_root` SST method: `BASE/bin/wsrep_sst_rsync_root` and
/// the `rsync` shim it puts first in `PATH` (see the module docs).
fn write_sst_shims(base: &Path, galera: &GaleraBinaries) -> Result<(), TestkitError> {
    use std::os::unix::fs::PermissionsExt;
    let rsync = galera.rsync.display();
    let shim = format!(
        "#!/bin/sh\n\
         for a in \"$@\"; do\n\
         \x20 if [ \"$a\" = --daemon ] && [ \"$(id -u)\" = 0 ]; then\n\
         \x20   exec {rsync} \"$@\" --dparam=uid=root --dparam=gid=root\n\
         \x20 fi\n\
         done\n\
         exec {rsync} \"$@\"\n"
    );
    let sst = format!(
        "#!/bin/sh\nPATH=\"{shim_dir}:$PATH\" exec {script} \"$@\"\n",
        shim_dir = base.join("shim").display(),
        script = galera.sst_rsync.display(),
    );
    for (dir, name, text) in [
        ("shim", "rsync", shim),
        ("bin", "wsrep_sst_rsync_root", sst),
    ] {
        let dir = base.join(dir);
        std::fs::create_dir_all(&dir)
            .map_err(|e| TestkitError::io(format!("creating {}", dir.display()), e))?;
        let path = dir.join(name);
        std::fs::write(&path, text)
            .and_then(|()| std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)))
            .map_err(|e| TestkitError::io(format!("writing {}", path.display()), e))?;
    }
    Ok(())
}
