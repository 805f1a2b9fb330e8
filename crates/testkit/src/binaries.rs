//! Finding the server, init and client binaries on this machine.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::error::TestkitError;

/// How to install MariaDB on Debian.
const MARIADB_INSTALL: &str = "apt-get install -y mariadb-server";
/// How to install PostgreSQL on Debian.
const POSTGRES_INSTALL: &str = "apt-get install -y postgresql";
/// Directories searched after `PATH` for MariaDB binaries.
const MARIADB_EXTRA_DIRS: &[&str] = &["/usr/sbin", "/usr/bin", "/usr/local/bin", "/usr/local/sbin"];
/// Where Debian puts the versioned PostgreSQL binaries.
const POSTGRES_LIB_DIR: &str = "/usr/lib/postgresql";

/// The binaries needed to run a private MariaDB server.
#[derive(Debug, Clone)]
pub(crate) struct MariaDbBinaries {
    /// `mariadbd` or `mysqld`.
    pub(crate) server: PathBuf,
    /// `mariadb-install-db` or `mysql_install_db`.
    pub(crate) install_db: PathBuf,
    /// `mariadb` or `mysql` (the command-line client).
    pub(crate) client: PathBuf,
}

/// The binaries needed to run a private PostgreSQL server.
#[derive(Debug, Clone)]
pub(crate) struct PostgresBinaries {
    /// `initdb`.
    pub(crate) initdb: PathBuf,
    /// `postgres`.
    pub(crate) postgres: PathBuf,
    /// `psql`.
    pub(crate) psql: PathBuf,
}

/// Checks that the MariaDB server, its install tool and its client are installed.
///
/// Tests that need a private MariaDB can call this first; the error says
/// what is missing and how to install it.
pub fn mariadb_available() -> Result<(), TestkitError> {
    mariadb_binaries().map(|_| ())
}

/// Checks that the PostgreSQL server, `initdb` and `psql` are installed.
///
/// The error says what is missing and how to install it.
pub fn postgres_available() -> Result<(), TestkitError> {
    postgres_binaries().map(|_| ())
}

/// Finds the MariaDB binaries (MySQL names are accepted as a fallback).
pub(crate) fn mariadb_binaries() -> Result<MariaDbBinaries, TestkitError> {
    let dirs = mariadb_dirs();
    let find = |names: &[&str]| -> Result<PathBuf, TestkitError> {
        names
            .iter()
            .find_map(|name| find_in(&dirs, name))
            .ok_or_else(|| TestkitError::BinaryNotFound {
                what: names.join(" or "),
                searched: describe_dirs(&dirs),
                install: MARIADB_INSTALL,
            })
    };
    Ok(MariaDbBinaries {
        server: find(&["mariadbd", "mysqld"])?,
        install_db: find(&["mariadb-install-db", "mysql_install_db"])?,
        client: find(&["mariadb", "mysql"])?,
    })
}

/// Finds the PostgreSQL binaries: `initdb` and `postgres` from one directory
/// (so that their versions match), `psql` preferably from the directory that
/// `initdb` really lives in.
pub(crate) fn postgres_binaries() -> Result<PostgresBinaries, TestkitError> {
    let path_dirs = path_dirs();
    let mut dirs = path_dirs.clone();
    dirs.extend(postgres_lib_dirs());
    let server_dir = dirs
        .iter()
        .find(|dir| is_executable(&dir.join("initdb")) && is_executable(&dir.join("postgres")))
        .ok_or_else(|| TestkitError::BinaryNotFound {
            what: "initdb and postgres (in one directory)".to_owned(),
            searched: describe_dirs(&dirs),
            install: POSTGRES_INSTALL,
        })?;
    // `/usr/local/bin/initdb` may be a link into the versioned directory,
    // which also has the matching `psql`.
    let mut psql_dirs = vec![server_dir.clone()];
    if let Some(real_dir) = std::fs::canonicalize(server_dir.join("initdb"))
        .ok()
        .and_then(|real| real.parent().map(Path::to_path_buf))
    {
        psql_dirs.insert(0, real_dir);
    }
    psql_dirs.extend(path_dirs);
    psql_dirs.push(PathBuf::from("/usr/bin"));
    let psql = find_in(&psql_dirs, "psql").ok_or_else(|| TestkitError::BinaryNotFound {
        what: "psql".to_owned(),
        searched: describe_dirs(&psql_dirs),
        install: POSTGRES_INSTALL,
    })?;
    Ok(PostgresBinaries {
        initdb: server_dir.join("initdb"),
        postgres: server_dir.join("postgres"),
        psql,
    })
}

/// What a Galera node needs besides the MariaDB binaries: the provider
/// library, the stock rsync SST script and rsync itself.
#[derive(Debug, Clone)]
pub(crate) struct GaleraBinaries {
    /// `libgalera_smm.so`.
    pub(crate) provider: PathBuf,
    /// `wsrep_sst_rsync`.
    pub(crate) sst_rsync: PathBuf,
    /// `rsync`.
    pub(crate) rsync: PathBuf,
}

/// Where Debian's `galera-4` puts the provider.
const GALERA_PROVIDERS: &[&str] = &[
    "/usr/lib/galera/libgalera_smm.so",
    "/usr/lib/libgalera_smm.so",
];
/// How to install what a Galera node needs.
const GALERA_INSTALL: &str = "apt-get install -y galera-4 rsync";

/// Finds the Galera provider, `wsrep_sst_rsync` and `rsync`.
pub(crate) fn galera_binaries() -> Result<GaleraBinaries, TestkitError> {
    let provider = GALERA_PROVIDERS
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or_else(|| TestkitError::BinaryNotFound {
            what: "the Galera provider libgalera_smm.so".to_owned(),
            searched: GALERA_PROVIDERS.join(", "),
            install: GALERA_INSTALL,
        })?;
    let dirs = mariadb_dirs();
    let find = |name: &str| {
        find_in(&dirs, name).ok_or_else(|| TestkitError::BinaryNotFound {
            what: name.to_owned(),
            searched: describe_dirs(&dirs),
            install: GALERA_INSTALL,
        })
    };
    Ok(GaleraBinaries {
        provider,
        sst_rsync: find("wsrep_sst_rsync")?,
        rsync: find("rsync")?,
    })
}

/// The directories of `PATH`, in order.
fn path_dirs() -> Vec<PathBuf> {
    std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .filter(|dir| !dir.as_os_str().is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// `PATH`, then the usual system directories.
fn mariadb_dirs() -> Vec<PathBuf> {
    let mut dirs = path_dirs();
    for extra in MARIADB_EXTRA_DIRS {
        let extra = PathBuf::from(extra);
        if !dirs.contains(&extra) {
            dirs.push(extra);
        }
    }
    dirs
}

/// `/usr/lib/postgresql/*/bin`, newest major version first.
fn postgres_lib_dirs() -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(POSTGRES_LIB_DIR) else {
        return Vec::new();
    };
    let mut versions: Vec<(u32, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name();
            let major = name.to_str()?.split('.').next()?.parse::<u32>().ok()?;
            Some((major, entry.path().join("bin")))
        })
        .collect();
    versions.sort_by_key(|(major, _)| std::cmp::Reverse(*major));
    versions.into_iter().map(|(_, dir)| dir).collect()
}

/// The first executable `name` in `dirs`.
fn find_in(dirs: &[PathBuf], name: &str) -> Option<PathBuf> {
    dirs.iter()
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

/// Whether `path` is a regular file (after symlinks) with an execute bit.
fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path)
        .map(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// The searched directories, for error messages.
fn describe_dirs(dirs: &[PathBuf]) -> String {
    let mut text = dirs
        .iter()
        .map(|dir| dir.display().to_string())
        .collect::<Vec<_>>()
        .join(":");
    if text.is_empty() {
        text.push_str("(nothing)");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_binary_is_not_found() {
        let dirs = vec![PathBuf::from("/nonexistent-dir-for-testkit")];
        assert!(find_in(&dirs, "mariadbd").is_none());
    }

    #[test]
    fn not_found_error_says_how_to_install() {
        let err = TestkitError::BinaryNotFound {
            what: "mariadbd or mysqld".to_owned(),
            searched: "/usr/sbin".to_owned(),
            install: MARIADB_INSTALL,
        };
        assert!(err
            .to_string()
            .contains("install it: apt-get install -y mariadb-server"));
    }
}
