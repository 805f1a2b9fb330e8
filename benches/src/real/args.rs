//! Command line of the real-server benchmark.

use std::path::PathBuf;

pub(crate) const USAGE: &str = "\
usage: cargo run -p poolwarden-bench --release -- [--quick] [--scenario N[,N...]] [--out FILE] [--no-write]

Real-server benchmarks of poolwarden against sqlx, mysql_async, deadpool and
bb8 on a private MariaDB (needs mariadbd and the mariadb client installed).

  --quick         shorter cells, fewer task counts: under 3 minutes in all
  --scenario N    run only scenario N (1-7); repeat or separate with commas
  --out FILE      the Markdown file whose generated sections are updated
                  (default: BENCHMARKS.md at the workspace root)
  --no-write      print the tables, write no file and no chart
  --ours-only     scenario 1 runs only poolwarden's rows, the minimal pool
                  and the dedicated rows (to repeat the poolwarden targets
                  quickly)
";

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Args {
    pub(crate) quick: bool,
    /// Scenarios to run, in order; all when none were named.
    pub(crate) scenarios: Vec<u8>,
    pub(crate) out: PathBuf,
    pub(crate) write: bool,
    /// Scenario 1: only poolwarden's rows and the dedicated (limit) rows.
    pub(crate) ours_only: bool,
    /// The arguments as given, to print the exact command.
    pub(crate) raw: Vec<String>,
}

impl Args {
    /// `Ok(None)` for `--help`.
    pub(crate) fn parse(raw: Vec<String>) -> Result<Option<Args>, String> {
        let mut args = Args {
            quick: false,
            scenarios: Vec::new(),
            out: default_out(),
            write: true,
            ours_only: false,
            raw: raw.clone(),
        };
        let mut it = raw.into_iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--quick" => args.quick = true,
                "--no-write" => args.write = false,
                "--ours-only" => args.ours_only = true,
                "--help" | "-h" => return Ok(None),
                "--scenario" | "-s" => {
                    let v = it.next().ok_or("--scenario needs a number")?;
                    for part in v.split(',') {
                        let n: u8 = part
                            .trim()
                            .parse()
                            .map_err(|_| format!("not a scenario number: {part}"))?;
                        if !(1..=7).contains(&n) {
                            return Err(format!("no scenario {n}: they are 1 to 7"));
                        }
                        if !args.scenarios.contains(&n) {
                            args.scenarios.push(n);
                        }
                    }
                }
                "--out" => {
                    args.out = PathBuf::from(it.next().ok_or("--out needs a file")?);
                }
                other => return Err(format!("unknown argument {other}\n\n{USAGE}")),
            }
        }
        if args.scenarios.is_empty() {
            args.scenarios = (1..=7).collect();
        }
        Ok(Some(args))
    }

    /// The command that reproduces this run.
    pub(crate) fn command(&self) -> String {
        let mut c = "cargo run -p poolwarden-bench --release".to_owned();
        if !self.raw.is_empty() {
            c.push_str(" -- ");
            c.push_str(&self.raw.join(" "));
        }
        c
    }
}

/// The workspace root (the bench crate's parent directory).
pub(crate) fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

fn default_out() -> PathBuf {
    workspace_root().join("BENCHMARKS.md")
}

/// Where the SVG charts go.
pub(crate) fn charts_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("charts")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(a: &[&str]) -> Result<Option<Args>, String> {
        Args::parse(a.iter().map(|s| (*s).to_owned()).collect())
    }

    #[test]
    fn defaults_and_options() {
        let a = parse(&[]).unwrap().unwrap();
        assert!(!a.quick && a.write);
        assert_eq!(a.scenarios, vec![1, 2, 3, 4, 5, 6, 7]);
        assert!(a.out.ends_with("BENCHMARKS.md"));
        assert_eq!(a.command(), "cargo run -p poolwarden-bench --release");

        let a = parse(&["--quick", "--scenario", "3,1", "-s", "3", "--out", "x.md"])
            .unwrap()
            .unwrap();
        assert!(a.quick);
        assert_eq!(a.scenarios, vec![3, 1]);
        assert_eq!(a.out, PathBuf::from("x.md"));
        assert!(a
            .command()
            .ends_with("-- --quick --scenario 3,1 -s 3 --out x.md"));

        assert!(parse(&["--help"]).unwrap().is_none());
        assert!(parse(&["--scenario", "8"]).is_err());
        assert!(parse(&["--bogus"]).is_err());
    }
}
