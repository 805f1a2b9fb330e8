//! [`Exit`]: the doctor's exit codes, the one place they are defined. The
//! README's "The doctor's exit codes", this crate's README ("Exit codes")
//! and `--help` list them; the tests below keep those lists equal to
//! `Exit::ALL`.

/// An exit code of `poolwarden`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    /// The worst finding is info or ok.
    Clean,
    /// The worst finding is a warning.
    Warnings,
    /// The worst finding is an error.
    Errors,
    /// Nothing was diagnosed: bad input, the server or endpoint unreachable,
    /// access denied ([`DoctorError`](crate::error::DoctorError)).
    Undiagnosed,
}

impl Exit {
    /// Every exit code, in order (what the lists are checked against).
    #[cfg(test)]
    pub(crate) const ALL: [Exit; 4] =
        [Exit::Clean, Exit::Warnings, Exit::Errors, Exit::Undiagnosed];

    /// The process's exit code.
    pub(crate) const fn code(self) -> u8 {
        match self {
            Exit::Clean => 0,
            Exit::Warnings => 1,
            Exit::Errors => 2,
            Exit::Undiagnosed => 3,
        }
    }

    /// The words every list of the exit codes gives for it (a list may say
    /// more).
    #[cfg(test)]
    pub(crate) const fn meaning(self) -> &'static str {
        match self {
            Exit::Clean => "no finding above info",
            Exit::Warnings => "warnings found",
            Exit::Errors => "errors found",
            Exit::Undiagnosed => "could not diagnose",
        }
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(exit: Exit) -> Self {
        std::process::ExitCode::from(exit.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(code, meaning)` of every row of the first table under `heading`
    /// in the Markdown file `path` (relative to this crate).
    fn table_under(path: &str, heading: &str) -> Vec<(u8, String)> {
        let file = format!("{}/{path}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file}: {e}"));
        let section: Vec<&str> = text
            .lines()
            .skip_while(|l| l.trim() != heading)
            .skip(1)
            .take_while(|l| !l.starts_with("## "))
            .collect();
        assert!(!section.is_empty(), "no section {heading:?} in {file}");
        let rows: Vec<(u8, String)> = section
            .iter()
            .skip_while(|l| !l.starts_with('|'))
            .take_while(|l| l.starts_with('|'))
            .filter_map(|l| {
                let cells: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
                // The header and the |---| line do not start with a number.
                let code = cells.first()?.parse::<u8>().ok()?;
                Some((code, cells.get(1).copied().unwrap_or("").to_owned()))
            })
            .collect();
        assert!(
            !rows.is_empty(),
            "no exit code table under {heading:?} in {file}"
        );
        rows
    }

    /// `(code, meaning)` of every line of `help`'s "Exit codes:" paragraph.
    fn help_lines(help: &str) -> Vec<(u8, String)> {
        let lines: Vec<(u8, String)> = help
            .lines()
            .skip_while(|l| l.trim() != "Exit codes:")
            .skip(1)
            .take_while(|l| !l.trim().is_empty())
            .map(|l| {
                let (code, meaning) = l.trim().split_once(' ').unwrap_or((l.trim(), ""));
                let code = code
                    .parse::<u8>()
                    .unwrap_or_else(|_| panic!("not a code: {l:?}"));
                (code, meaning.trim().to_owned())
            })
            .collect();
        assert!(!lines.is_empty(), "no \"Exit codes:\" in {help}");
        lines
    }

    /// `listed` names every exit code once, with its meaning, and nothing
    /// else.
    fn assert_lists_every_code(listed: &[(u8, String)], where_: &str) {
        for exit in Exit::ALL {
            let rows: Vec<&String> = listed
                .iter()
                .filter(|(code, _)| *code == exit.code())
                .map(|(_, meaning)| meaning)
                .collect();
            assert_eq!(
                rows.len(),
                1,
                "{where_}: exit code {} ({exit:?}) listed {} times",
                exit.code(),
                rows.len()
            );
            assert!(
                rows[0].starts_with(exit.meaning()),
                "{where_}: exit code {} says {:?}, not {:?}",
                exit.code(),
                rows[0],
                exit.meaning()
            );
        }
        for (code, meaning) in listed {
            assert!(
                Exit::ALL.iter().any(|e| e.code() == *code),
                "{where_}: exit code {code} ({meaning:?}) is not one the doctor has"
            );
        }
    }

    #[test]
    fn codes_are_distinct() {
        for (i, a) in Exit::ALL.iter().enumerate() {
            for b in &Exit::ALL[i + 1..] {
                assert_ne!(a.code(), b.code(), "{a:?} and {b:?}");
            }
        }
    }

    #[test]
    fn the_readmes_list_exactly_the_doctors_exit_codes() {
        assert_lists_every_code(
            &table_under("../../README.md", "## The doctor's exit codes"),
            "README.md",
        );
        assert_lists_every_code(
            &table_under("README.md", "## Exit codes"),
            "apps/cli/README.md",
        );
    }

    #[test]
    fn help_lists_exactly_the_doctors_exit_codes() {
        use clap::CommandFactory;
        let mut cli = crate::cli::Cli::command();
        let top = cli.render_long_help().to_string();
        assert_lists_every_code(&help_lines(&top), "poolwarden --help");
        let doctor = cli
            .find_subcommand_mut("doctor")
            .expect("the doctor subcommand")
            .render_long_help()
            .to_string();
        assert_lists_every_code(&help_lines(&doctor), "poolwarden doctor --help");
    }
}
