//! How the command-line programs behave towards the terminal and pipes.
//!
//! Rust programs ignore SIGPIPE, so `portactl devices list | head -1`
//! would make `println!` panic (exit 101) once `head` has gone. A command
//! that only prints restores the default action instead and ends quietly,
//! as `cat` and `ls` do. Long-running services (`serve`, `up`, the remote
//! gateway) keep ignoring it: they log to stderr and must outlive a closed
//! pipe. The standard library sends on sockets with MSG_NOSIGNAL, so the
//! default action only ever concerns stdout and stderr.

/// Makes a closed stdout end the process quietly (killed by SIGPIPE, like
/// any Unix filter) instead of panicking. Call it first in a command that
/// prints its result.
pub fn exit_quietly_on_closed_stdout() {
    // A well-kept one-call crate: this takes `signal(2)`, which is unsafe,
    // and the workspace forbids unsafe code of its own.
    sigpipe::reset();
}

/// What a person (or a script's `--yes`) answered to a question.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// `--yes`, or "y" at the prompt.
    Yes,
    /// Anything else at the prompt.
    No,
    /// No terminal to ask on, and no `--yes`.
    NoTerminal,
}

/// Asks `question` on the terminal (stderr, answered on stdin) unless
/// `yes` was given. Accepts "y" and "yes" in the staff guide's languages
/// ("sí", "si", "sì").
pub fn confirm(question: &str, yes: bool) -> std::io::Result<Answer> {
    use std::io::{BufRead, IsTerminal, Write};
    if yes {
        return Ok(Answer::Yes);
    }
    if !std::io::stdin().is_terminal() {
        return Ok(Answer::NoTerminal);
    }
    eprint!("{question} [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(
        if matches!(
            answer.trim(),
            "y" | "Y" | "yes" | "Yes" | "sí" | "si" | "sì" | "Sí" | "Si" | "Sì"
        ) {
            Answer::Yes
        } else {
            Answer::No
        },
    )
}

/// How human-readable log lines are written to stderr.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogStyle {
    /// ANSI colours: only on a terminal, and never with `NO_COLOR` set.
    pub colour: bool,
    /// A timestamp on each line: not under systemd's journal, which keeps
    /// its own (systemd sets `JOURNAL_STREAM` for a unit's stderr).
    pub timestamps: bool,
}

impl LogStyle {
    /// The style for this process's stderr and environment.
    pub fn for_stderr() -> Self {
        use std::io::IsTerminal;
        Self::decide(
            std::io::stderr().is_terminal(),
            std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
            std::env::var_os("JOURNAL_STREAM").is_some(),
        )
    }

    fn decide(terminal: bool, no_colour: bool, journal: bool) -> Self {
        Self {
            colour: terminal && !no_colour,
            timestamps: !journal,
        }
    }
}

/// Logs to stderr through `tracing`: `filter` unless `RUST_LOG` says
/// otherwise; one JSON object per line with `json`, else human lines in
/// [`LogStyle::for_stderr`].
pub fn init_logging(filter: &str, json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let style = LogStyle::for_stderr();
    match (json, style.timestamps) {
        (true, _) => builder.json().flatten_event(true).init(),
        (false, true) => builder.with_ansi(style.colour).init(),
        (false, false) => builder.with_ansi(style.colour).without_time().init(),
    }
}

/// "1 record", "3 records": a count with its noun in the right number.
pub fn count(n: u64, singular: &str, plural: &str) -> String {
    format!("{n} {}", if n == 1 { singular } else { plural })
}

/// A duration as a person says it: "3 days", "1 day 2 hours", "90 seconds"
/// becomes "1 minute 30 seconds"; at most the two largest units.
pub fn duration(d: std::time::Duration) -> String {
    let units = [
        (86_400, "day", "days"),
        (3_600, "hour", "hours"),
        (60, "minute", "minutes"),
        (1, "second", "seconds"),
    ];
    let mut left = d.as_secs();
    let mut parts = Vec::new();
    for (size, singular, plural) in units {
        if left >= size && parts.len() < 2 {
            parts.push(count(left / size, singular, plural));
            left %= size;
        } else if !parts.is_empty() {
            // Only adjacent units: "1 day 2 hours", never "1 day 5 seconds".
            break;
        }
    }
    if parts.is_empty() {
        "0 seconds".into()
    } else {
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::LogStyle;

    #[test]
    fn colours_only_on_a_terminal_without_no_color() {
        assert!(LogStyle::decide(true, false, false).colour);
        assert!(!LogStyle::decide(true, true, false).colour);
        assert!(!LogStyle::decide(false, false, false).colour);
    }

    #[test]
    fn durations_and_counts_read_as_words() {
        use super::{count, duration};
        use std::time::Duration;
        assert_eq!(duration(Duration::from_secs(3 * 86_400)), "3 days");
        assert_eq!(
            duration(Duration::from_secs(86_400 + 7_200)),
            "1 day 2 hours"
        );
        assert_eq!(duration(Duration::from_secs(90)), "1 minute 30 seconds");
        assert_eq!(duration(Duration::from_secs(3_600)), "1 hour");
        assert_eq!(duration(Duration::from_secs(86_400 + 5)), "1 day");
        assert_eq!(duration(Duration::ZERO), "0 seconds");
        assert_eq!(count(1, "record", "records"), "1 record");
        assert_eq!(count(0, "record", "records"), "0 records");
    }

    #[test]
    fn the_journal_keeps_its_own_timestamps() {
        assert!(!LogStyle::decide(false, false, true).timestamps);
        assert!(LogStyle::decide(false, false, false).timestamps);
    }
}

/// True for characters that are invisible yet change how text around them
/// is shown: bidirectional controls (U+202E makes "evil\u{202e}txt.exe"
/// read "evilexe.txt"), zero-width characters, and other invisible format
/// characters. Names and text fields refuse them; displays escape them.
pub fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'..='\u{1160}'
            | '\u{17B4}'..='\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{E0000}'..='\u{E007F}'
    )
}

/// `text` as it may be shown in a table or message: control and invisible
/// characters are written as `\u{…}` escapes so that what an admin reads
/// is what is stored (values stored before they were refused included).
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(|c| c.is_control() || is_invisible(c)) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut shown = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() || is_invisible(c) {
            shown.push_str(&format!("\\u{{{:04x}}}", u32::from(c)));
        } else {
            shown.push(c);
        }
    }
    std::borrow::Cow::Owned(shown)
}

#[cfg(test)]
mod display_tests {
    use super::*;

    #[test]
    fn invisible_characters_are_shown_escaped() {
        assert_eq!(printable("anna"), "anna");
        assert_eq!(printable("evil\u{202e}exe.txt"), "evil\\u{202e}exe.txt");
        assert_eq!(printable("a\u{200b}b\tc"), "a\\u{200b}b\\u{0009}c");
        assert!(!is_invisible('a') && !is_invisible('ñ') && is_invisible('\u{feff}'));
    }
}

/// Resolves at the first SIGTERM or SIGINT: how a service is asked to stop
/// (systemd, Ctrl-C). Both handlers are installed before it returns, so a
/// signal that arrives early is not lost.
#[cfg(all(feature = "client", unix))]
pub fn termination_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!(signal = "SIGTERM", "received"),
            _ = int.recv() => tracing::info!(signal = "SIGINT", "received"),
        }
    })
}

/// Resolves at Ctrl-C, Ctrl-Break, closing the console or shutdown — the
/// ways Windows asks a console program to stop.
#[cfg(all(feature = "client", windows))]
pub fn termination_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::windows::{ctrl_break, ctrl_c, ctrl_close, ctrl_shutdown};
    let (mut c, mut brk, mut close, mut shutdown) =
        (ctrl_c()?, ctrl_break()?, ctrl_close()?, ctrl_shutdown()?);
    Ok(async move {
        tokio::select! {
            _ = c.recv() => tracing::info!(signal = "Ctrl-C", "received"),
            _ = brk.recv() => tracing::info!(signal = "Ctrl-Break", "received"),
            _ = close.recv() => tracing::info!(signal = "close", "received"),
            _ = shutdown.recv() => tracing::info!(signal = "shutdown", "received"),
        }
    })
}
