//! Tables, as aligned text or Markdown, and number formatting.

use std::fmt::Write as _;

/// A table of strings with right-aligned numeric columns.
#[derive(Debug, Clone, Default)]
pub struct Table {
    /// Column headers.
    pub headers: Vec<String>,
    /// Whether each column is right-aligned.
    pub right: Vec<bool>,
    /// The rows.
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these headers; a header starting with `>` is
    /// right-aligned (the `>` is dropped).
    pub fn new(headers: &[&str]) -> Self {
        Self {
            headers: headers
                .iter()
                .map(|h| h.trim_start_matches('>').to_owned())
                .collect(),
            right: headers.iter().map(|h| h.starts_with('>')).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Renders as Markdown or as aligned plain text.
    pub fn render(&self, markdown: bool) -> String {
        let cols = self.headers.len();
        let mut width = vec![0; cols];
        for r in std::iter::once(&self.headers).chain(&self.rows) {
            for (i, c) in r.iter().enumerate().take(cols) {
                width[i] = width[i].max(c.chars().count());
            }
        }
        let mut out = String::new();
        let line = |out: &mut String, cells: &[String]| {
            if markdown {
                out.push('|');
            }
            for (i, w) in width.iter().enumerate() {
                let c = cells.get(i).map(String::as_str).unwrap_or("");
                let pad = w - c.chars().count();
                if markdown {
                    out.push(' ');
                }
                if self.right[i] {
                    out.push_str(&" ".repeat(pad));
                    out.push_str(c);
                } else {
                    out.push_str(c);
                    out.push_str(&" ".repeat(pad));
                }
                out.push_str(if markdown { " |" } else { "  " });
            }
            while out.ends_with(' ') {
                out.pop();
            }
            out.push('\n');
        };
        line(&mut out, &self.headers);
        if markdown {
            out.push('|');
            for (i, w) in width.iter().enumerate() {
                let dashes = "-".repeat((*w).max(3));
                if self.right[i] {
                    let _ = write!(out, " {}: |", &dashes[1..]);
                } else {
                    let _ = write!(out, " {dashes} |");
                }
            }
            out.push('\n');
        } else {
            let total: usize = width.iter().sum::<usize>() + 2 * cols.saturating_sub(1);
            out.push_str(&"-".repeat(total));
            out.push('\n');
        }
        for r in &self.rows {
            line(&mut out, r);
        }
        out
    }
}

/// Ops/s as `12.34 M` / `987 k`.
pub fn rate(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2} M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.0} k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

/// A ratio as `0.87x`.
pub fn ratio(x: Option<f64>) -> String {
    match x {
        Some(r) if r.is_finite() => format!("{r:.2}x"),
        _ => "-".to_owned(),
    }
}

/// A section heading.
pub fn heading(title: &str, markdown: bool) -> String {
    if markdown {
        format!("\n### {title}\n\n")
    } else {
        format!("\n== {title} ==\n")
    }
}

/// The load averages from `/proc/loadavg` (empty where there is none).
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// CPU time used by the whole machine and by this process, for telling how
/// much of the machine other processes took during a measurement.
#[derive(Debug, Clone, Copy)]
pub struct CpuSample {
    at: std::time::Instant,
    machine_busy_ticks: u64,
    own_ticks: u64,
}

impl CpuSample {
    /// Reads `/proc/stat` and `/proc/self/stat` (`None` where there are none).
    pub fn now() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let cpu: Vec<u64> = stat
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .filter_map(|v| v.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal ...
        let total: u64 = cpu.iter().take(8).sum();
        let idle = cpu.get(3)? + cpu.get(4).unwrap_or(&0);
        let own = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the parenthesised command name; utime and stime are
        // fields 14 and 15 of the whole line.
        let rest = own.rsplit_once(')')?.1;
        let f: Vec<&str> = rest.split_whitespace().collect();
        let own_ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
        Some(Self {
            at: std::time::Instant::now(),
            machine_busy_ticks: total - idle,
            own_ticks,
        })
    }

    /// Average number of cores that *other* processes kept busy since
    /// `earlier` (clock ticks are 1/100 s on Linux).
    pub fn others_since(&self, earlier: &CpuSample) -> f64 {
        let wall = self.at.duration_since(earlier.at).as_secs_f64();
        let machine = self
            .machine_busy_ticks
            .saturating_sub(earlier.machine_busy_ticks);
        let own = self.own_ticks.saturating_sub(earlier.own_ticks);
        (machine.saturating_sub(own) as f64 / 100.0 / wall).max(0.0)
    }
}
