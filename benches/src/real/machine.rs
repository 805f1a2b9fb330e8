//! What the numbers were measured on.

use std::process::Command;

fn command(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| format!("({program} unavailable)"))
}

/// `uptime`'s load averages, from /proc/loadavg.
pub(crate) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".to_owned())
}

/// (steal, total) CPU ticks since boot, from the first line of /proc/stat:
/// the time the hypervisor gave this VM's CPUs to someone else.
pub(crate) fn cpu_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let steal = *v.get(7)?;
    Some((steal, v.iter().take(8).sum()))
}

/// Share of CPU time stolen by the hypervisor between two [`cpu_ticks`].
pub(crate) fn steal_share(before: Option<(u64, u64)>, after: Option<(u64, u64)>) -> String {
    match (before, after) {
        (Some((s0, t0)), Some((s1, t1))) if t1 > t0 => {
            format!("{:.1} %", 100.0 * (s1 - s0) as f64 / (t1 - t0) as f64)
        }
        _ => "?".to_owned(),
    }
}

/// CPU time (user + system, all threads) a process has used so far, from
/// /proc/PID/stat.
pub(crate) fn process_cpu(pid: &str) -> Option<std::time::Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; fields resume after its ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 here.
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(std::time::Duration::from_secs_f64(
        ticks as f64 / clock_ticks() as f64,
    ))
}

/// `getconf CLK_TCK` (100 on Linux), read once.
fn clock_ticks() -> u64 {
    static TCK: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TCK.get_or_init(|| command("getconf", &["CLK_TCK"]).parse().unwrap_or(100))
}

/// The current UTC time, as `date -u` prints it.
pub(crate) fn now_utc() -> String {
    command("date", &["-u", "+%Y-%m-%d %H:%M:%S UTC"])
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "?".to_owned())
}

/// The machine block for BENCHMARKS.md.
pub(crate) fn describe(mariadb_version: &str) -> String {
    let nproc = command("nproc", &[]);
    let free = command("free", &["-h"]);
    let kernel = command("uname", &["-srm"]);
    let rustc = command("rustc", &["--version"]);
    format!(
        "- `nproc`: {nproc}\n\
         - CPU: {cpu}\n\
         - kernel: {kernel}\n\
         - MariaDB: {mariadb_version} (private server from `poolwarden-testkit`, same machine, TCP over loopback)\n\
         - {rustc}\n\
         - date: {date}\n\
         - load average when the run started: {load}\n\n\
         `free -h`:\n\n```text\n{free}\n```\n",
        cpu = cpu_model(),
        date = now_utc(),
        load = load_average(),
    )
}
