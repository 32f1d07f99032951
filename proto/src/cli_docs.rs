//! Man pages and shell completions from a program's clap definition: the
//! hidden `manpages DIR` and `completions SHELL` commands of `porta`,
//! `porta-controller` and `portactl` all call these, and packaging ships
//! what they write (`packaging/man`, checked by tests to be current).

use std::path::Path;

pub use clap_complete::Shell;

/// Writes `NAME.1` and one page per subcommand (`NAME-SUB.1`, …) into `dir`.
pub fn write_manpages(command: clap::Command, dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    clap_mangen::generate_to(command, dir)
}

/// Prints the completion script for `shell` to stdout.
pub fn print_completions(mut command: clap::Command, shell: clap_complete::Shell) {
    let name = command.get_name().to_owned();
    clap_complete::generate(shell, &mut command, name, &mut std::io::stdout());
}
