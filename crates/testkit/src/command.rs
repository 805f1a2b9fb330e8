//! Running a short-lived client command with a time limit, and parsing the
//! rows that the SQL command-line clients print.

use std::io::Read;
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Runs `cmd` to completion, capturing stdout and stderr.
///
/// Returns `Ok(None)` if it did not finish within `timeout`; it is then
/// killed and reaped.
pub(crate) fn run_with_timeout(
    cmd: &mut Command,
    timeout: Duration,
) -> std::io::Result<Option<Output>> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn()?;
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let stdout_reader = thread::spawn(move || read_all(stdout));
    let stderr_reader = thread::spawn(move || read_all(stderr));

    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            // Best effort: it may have exited in between.
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    };
    let stdout = stdout_reader.join().unwrap_or_default();
    let stderr = stderr_reader.join().unwrap_or_default();
    Ok(status.map(|status| Output {
        status,
        stdout,
        stderr,
    }))
}

/// Reads a pipe to its end; a read error ends the output early.
fn read_all(pipe: Option<impl Read>) -> Vec<u8> {
    let mut buf = Vec::new();
    if let Some(mut pipe) = pipe {
        let _ = pipe.read_to_end(&mut buf);
    }
    buf
}

/// Parses the output of `mariadb -N -B`: one row a line, tab-separated
/// columns, with `\t`, `\n`, `\\` and `\0` escaped. SQL NULL is printed
/// as the text `NULL`.
pub(crate) fn parse_mariadb_rows(stdout: &str) -> Vec<Vec<String>> {
    stdout
        .lines()
        .map(|line| line.split('\t').map(unescape_mariadb).collect())
        .collect()
}

/// Undoes the escaping of `mariadb --batch`.
fn unescape_mariadb(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('0') => out.push('\0'),
            Some('\\') => out.push('\\'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// Parses the output of `psql -A -t -F '\t'`: one row a line,
/// tab-separated columns; SQL NULL is printed as an empty string.
pub(crate) fn parse_psql_rows(stdout: &str) -> Vec<Vec<String>> {
    stdout
        .lines()
        .map(|line| line.split('\t').map(str::to_owned).collect())
        .collect()
}

/// Whatever a client printed, for an error message.
pub(crate) fn describe_output(output: &Output) -> String {
    let mut text = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !stdout.trim().is_empty() {
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(stdout.trim());
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mariadb_rows_are_unescaped() {
        let rows = parse_mariadb_rows("1\ta\\tb\n2\tNULL\n3\tx\\\\y\\nz\n");
        assert_eq!(
            rows,
            vec![
                vec!["1".to_owned(), "a\tb".to_owned()],
                vec!["2".to_owned(), "NULL".to_owned()],
                vec!["3".to_owned(), "x\\y\nz".to_owned()],
            ]
        );
    }

    #[test]
    fn empty_output_has_no_rows() {
        assert!(parse_mariadb_rows("").is_empty());
        assert!(parse_psql_rows("").is_empty());
        assert_eq!(parse_psql_rows("\n"), vec![vec![String::new()]]);
    }

    #[test]
    fn slow_command_times_out() {
        let out =
            run_with_timeout(Command::new("sleep").arg("30"), Duration::from_millis(200)).unwrap();
        // `sleep 30` would have finished with a status: `None` means killed.
        assert!(out.is_none());
    }

    #[test]
    fn fast_command_output_is_captured() {
        let out = run_with_timeout(
            Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]),
            Duration::from_secs(30),
        )
        .unwrap()
        .unwrap();
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
    }
}
