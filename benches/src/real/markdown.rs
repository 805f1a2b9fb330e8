//! Markdown tables and the generated sections of BENCHMARKS.md.
//!
//! Generated text sits between `<!-- real:KEY:begin -->` and
//! `<!-- real:KEY:end -->` markers; a run replaces only the sections of the
//! scenarios it ran and leaves everything else (the micro-benchmark
//! section, hand-written notes) alone.

/// A Markdown table.
#[derive(Debug, Clone, Default)]
pub(crate) struct Table {
    head: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(crate) fn new(head: &[&str]) -> Table {
        Table {
            head: head.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub(crate) fn render(&self) -> String {
        let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
        let line = |cells: &[String]| {
            let inner: Vec<String> = cells.iter().map(|c| cell(c)).collect();
            format!("| {} |\n", inner.join(" | "))
        };
        let mut out = line(&self.head);
        out.push_str(&format!("|{}\n", "---|".repeat(self.head.len())));
        for r in &self.rows {
            out.push_str(&line(r));
        }
        out
    }
}

fn markers(key: &str) -> (String, String) {
    (
        format!("<!-- real:{key}:begin -->"),
        format!("<!-- real:{key}:end -->"),
    )
}

/// Puts `body` between the markers of `key`, appending the section when the
/// document has none.
pub(crate) fn upsert(doc: &str, key: &str, body: &str) -> String {
    let (begin, end) = markers(key);
    let body = body.trim_end();
    if let Some(b) = doc.find(&begin) {
        if let Some(e_rel) = doc[b..].find(&end) {
            let e = b + e_rel;
            return format!("{}{begin}\n{body}\n{}", &doc[..b], &doc[e..]);
        }
    }
    let mut out = doc.trim_end().to_owned();
    out.push_str(&format!("\n\n{begin}\n{body}\n{end}\n"));
    out
}

/// The document a first run starts from.
pub(crate) const SKELETON: &str = "# Benchmarks

## Micro-benchmark

(see benches/README.md; filled by the micro run)

## Real-server benchmarks

Every contender talks to the same private MariaDB (started by
`poolwarden-testkit`, on this machine, TCP over loopback), one contender at
a time, each with at most 10 connections unless the table says otherwise.
Source: `benches/src/real/`; run with
`cargo run -p poolwarden-bench --release -- [--quick] [--scenario N] [--out BENCHMARKS.md]`.

### Machine

<!-- real:machine:begin -->
<!-- real:machine:end -->

### Method

<!-- real:method:begin -->
<!-- real:method:end -->

### Scenario 1: throughput and latency, 64 tasks, `SELECT 1`

<!-- real:s1:begin -->
<!-- real:s1:end -->

### Scenario 2: server restart under load

<!-- real:s2:begin -->
<!-- real:s2:end -->

### Scenario 3: server `wait_timeout` (2 s) expires idle connections

<!-- real:s3:begin -->
<!-- real:s3:end -->

### Scenario 4: every pooled connection killed while idle

<!-- real:s4:begin -->
<!-- real:s4:end -->

### Scenario 5: a cancelled query on a pool of one connection

<!-- real:s5:begin -->
<!-- real:s5:end -->

### Scenario 6: a checkout held past the leak threshold

<!-- real:s6:begin -->
<!-- real:s6:end -->

### Scenario 7: scaling, 1 to 1,000 tasks on pools of 5, 10 and 50

<!-- real:s7:begin -->
<!-- real:s7:end -->
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_renders_and_escapes() {
        let mut t = Table::new(&["a", "b"]);
        t.row(vec!["x|y".into(), "2".into()]);
        assert_eq!(t.render(), "| a | b |\n|---|---|\n| x\\|y | 2 |\n");
    }

    #[test]
    fn upsert_replaces_only_its_section() {
        let doc = "# T\n<!-- real:s1:begin -->\nold\n<!-- real:s1:end -->\nnotes\n";
        let new = upsert(doc, "s1", "new\n");
        assert_eq!(
            new,
            "# T\n<!-- real:s1:begin -->\nnew\n<!-- real:s1:end -->\nnotes\n"
        );
        let appended = upsert(&new, "s2", "two");
        assert!(appended.starts_with(&new.trim_end().to_owned()));
        assert!(appended.ends_with("<!-- real:s2:begin -->\ntwo\n<!-- real:s2:end -->\n"));
        // The skeleton has a slot for every section.
        for key in [
            "machine", "method", "s1", "s2", "s3", "s4", "s5", "s6", "s7",
        ] {
            assert!(
                SKELETON.contains(&format!("<!-- real:{key}:end -->")),
                "{key}"
            );
        }
    }
}
