//! Man pages and shell completions from a program's clap definition: the
//! hidden `manpages DIR` and `completions SHELL` commands of `porta`,
//! `porta-controller` and `portactl` all call these, and packaging ships
//! what they write (`packaging/man`, checked by tests to be current).
//!
//! clap_mangen renders NAME, SYNOPSIS, DESCRIPTION and OPTIONS; each
//! program adds what Debian users look for in a man page ([`ManExtras`]):
//! EXAMPLES per page, EXIT STATUS and FILES on every page, and an
//! ENVIRONMENT section built from the variables the page's options read.

use clap::Command;
use std::io::Write;
use std::path::Path;

pub use clap_complete::Shell;

/// The documentation commands every Porta program has, flattened into its
/// own commands (`#[command(flatten)] Docs(Docs)`): `completions SHELL`
/// and the hidden `manpages DIR` that packaging runs.
#[derive(Clone, Debug, clap::Subcommand)]
pub enum Docs {
    /// Print a shell completion script.
    Completions {
        /// The shell.
        shell: Shell,
    },
    /// Write man pages into a directory.
    #[command(hide = true)]
    Manpages {
        /// Output directory.
        dir: std::path::PathBuf,
    },
}

impl Docs {
    /// Prints the completions or writes the man pages of `command`.
    pub fn run(&self, command: Command, extras: &ManExtras<'_>) -> std::io::Result<()> {
        match self {
            Docs::Completions { shell } => {
                print_completions(command, *shell);
                Ok(())
            }
            Docs::Manpages { dir } => write_manpages(command, dir, extras).map_err(|error| {
                std::io::Error::new(
                    error.kind(),
                    format!("writing man pages to {}: {error}", dir.display()),
                )
            }),
        }
    }
}

/// What a program's man pages say beyond its options.
#[derive(Clone, Copy, Debug, Default)]
pub struct ManExtras<'a> {
    /// `(page, what it does, command)`: the page is the command path
    /// joined by `-` (`portactl-logs-export`).
    pub examples: &'a [(&'a str, &'a str, &'a str)],
    /// `(code, meaning)`, on every page.
    pub exit_status: &'a [(&'a str, &'a str)],
    /// `(path, what it holds)`, on every page.
    pub files: &'a [(&'a str, &'a str)],
}

/// Writes `NAME.1` and one page per visible subcommand (`NAME-SUB.1`, …)
/// into `dir`.
pub fn write_manpages(command: Command, dir: &Path, extras: &ManExtras<'_>) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut command = command.disable_help_subcommand(true);
    command.build();
    write_page(command, dir, extras)
}

fn write_page(command: Command, dir: &Path, extras: &ManExtras<'_>) -> std::io::Result<()> {
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_page(sub.clone(), dir, extras)?;
    }
    let page = command
        .get_display_name()
        .unwrap_or_else(|| command.get_name())
        .to_owned();
    let environment: Vec<(String, String)> = command
        .get_arguments()
        .filter(|arg| !arg.is_hide_set())
        .filter_map(|arg| {
            let variable = arg.get_env()?.to_string_lossy().into_owned();
            let flag = arg
                .get_long()
                .map(|l| format!(" (--{l})"))
                .unwrap_or_default();
            let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
            Some((variable, format!("{help}{flag}")))
        })
        .collect();
    let man = clap_mangen::Man::new(command);
    let mut out = Vec::new();
    man.render(&mut out)?;
    let examples: Vec<_> = extras.examples.iter().filter(|e| e.0 == page).collect();
    if !examples.is_empty() {
        writeln!(out, ".SH EXAMPLES")?;
        for (_, what, command) in examples {
            writeln!(
                out,
                ".TP\n{}\n.nf\n\\fB{}\\fR\n.fi",
                roff(what),
                roff(command)
            )?;
        }
    }
    if !extras.exit_status.is_empty() {
        writeln!(out, ".SH \"EXIT STATUS\"")?;
        for (code, meaning) in extras.exit_status {
            writeln!(out, ".TP\n\\fB{}\\fR\n{}", roff(code), roff(meaning))?;
        }
    }
    if !environment.is_empty() {
        writeln!(out, ".SH ENVIRONMENT")?;
        for (variable, meaning) in &environment {
            writeln!(out, ".TP\n\\fB{}\\fR\n{}", roff(variable), roff(meaning))?;
        }
    }
    if !extras.files.is_empty() {
        writeln!(out, ".SH FILES")?;
        for (path, meaning) in extras.files {
            writeln!(out, ".TP\n\\fI{}\\fR\n{}", roff(path), roff(meaning))?;
        }
    }
    std::fs::write(dir.join(format!("{page}.1")), out)
}

/// Text made safe for roff: backslashes and hyphens escaped, a leading
/// dot or apostrophe (a roff request) neutralised.
fn roff(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    if escaped.starts_with(['.', '\'']) {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

/// Prints the completion script for `shell` to stdout, without the hidden
/// commands (clap_complete would offer them).
pub fn print_completions(command: Command, shell: clap_complete::Shell) {
    let mut command = visible(&command);
    let name = command.get_name().to_owned();
    clap_complete::generate(shell, &mut command, name, &mut std::io::stdout());
}

/// `command` rebuilt with only its visible subcommands, recursively.
fn visible(command: &Command) -> Command {
    let mut copy = Command::new(command.get_name().to_owned())
        .args(command.get_arguments().cloned())
        .disable_help_subcommand(true);
    if let Some(about) = command.get_about() {
        copy = copy.about(about.clone());
    }
    if let Some(version) = command.get_version() {
        copy = copy.version(version.to_owned());
    }
    copy.subcommands(
        command
            .get_subcommands()
            .filter(|s| !s.is_hide_set())
            .map(visible),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use clap::{Arg, Command};

    fn example() -> Command {
        Command::new("demo")
            .version("1.0")
            .arg(
                Arg::new("config")
                    .long("config")
                    .env("DEMO_CONFIG")
                    .help("A file"),
            )
            .subcommand(Command::new("run").about("Runs"))
            .subcommand(Command::new("secret").hide(true))
    }

    #[test]
    fn pages_carry_examples_exit_status_environment_and_files() {
        let dir = tempfile::tempdir().unwrap();
        let extras = ManExtras {
            examples: &[("demo-run", "Run it.", "demo run --fast")],
            exit_status: &[("0", "success"), ("3", "not found")],
            files: &[("/etc/demo.toml", "the settings")],
        };
        write_manpages(example(), dir.path(), &extras).unwrap();
        let run = std::fs::read_to_string(dir.path().join("demo-run.1")).unwrap();
        assert!(
            run.contains(".SH EXAMPLES") && run.contains("demo run \\-\\-fast"),
            "{run}"
        );
        assert!(run.contains(".SH \"EXIT STATUS\"") && run.contains("not found"));
        assert!(run.contains(".SH FILES") && run.contains("/etc/demo.toml"));
        let top = std::fs::read_to_string(dir.path().join("demo.1")).unwrap();
        assert!(
            top.contains(".SH ENVIRONMENT") && top.contains("DEMO_CONFIG"),
            "{top}"
        );
        assert!(
            !dir.path().join("demo-secret.1").exists(),
            "no page for hidden commands"
        );
    }

    #[test]
    fn completions_leave_hidden_commands_out() {
        let mut script = Vec::new();
        let mut command = visible(&example());
        clap_complete::generate(Shell::Bash, &mut command, "demo", &mut script);
        let script = String::from_utf8(script).unwrap();
        assert!(
            script.contains("run") && !script.contains("secret"),
            "{script}"
        );
    }

    #[test]
    fn roff_requests_in_text_are_neutralised() {
        assert_eq!(roff(".hidden"), "\\&.hidden");
        assert_eq!(roff("a\\b-c"), "a\\eb\\-c");
    }
}
