//! The documentation against the programs themselves: every flag and
//! environment variable each command accepts (as its `--help` lists them)
//! is in docs/configuration.md, and so is every config-file key `serve`
//! reads; the man pages shipped in packaging/man are what each program
//! generates now.

use porta_tests::*;
use std::collections::BTreeSet;
use std::process::Command;

fn help(program: &str, args: &[&str]) -> String {
    let output = Command::new(binary(program))
        .args(args)
        .arg("--help")
        .output()
        .unwrap();
    assert!(output.status.success(), "{program} {args:?} --help");
    String::from_utf8(output.stdout).unwrap()
}

/// `--flags` and `ENV` names in a help text (not -h/--help/--version).
fn options(help: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for word in help.split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == ']') {
        if let Some(flag) = word.strip_prefix("--") {
            let flag: String = flag
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            if !flag.is_empty() && flag != "help" && flag != "version" {
                found.insert(format!("--{flag}"));
            }
        }
    }
    for part in help.split("env: ").skip(1) {
        found.insert(part.split('=').next().unwrap().to_owned());
    }
    found
}

#[test]
fn the_configuration_reference_covers_every_option() {
    let reference = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/configuration.md"),
    )
    .unwrap();
    let commands: [(&str, &[&str]); 8] = [
        ("porta-controller", &["init"]),
        ("porta-controller", &["invite-admin"]),
        ("porta-controller", &["serve"]),
        ("porta-controller", &["gateway"]),
        ("porta", &[]),
        ("porta", &["up"]),
        ("porta", &["daemon"]),
        ("portactl", &[]),
    ];
    let mut missing = Vec::new();
    for (program, args) in commands {
        for option in options(&help(program, args)) {
            if !reference.contains(&format!("`{option}`")) {
                missing.push(format!("{program} {}: {option}", args.join(" ")));
            }
        }
    }
    // The config file keys, as `serve --config` lists them.
    let serve = help("porta-controller", &["serve"]);
    let keys = serve
        .split("(keys: ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .expect("serve --help lists the config keys");
    for key in keys
        .split(',')
        .map(|k| k.split_whitespace().collect::<String>())
    {
        if !reference.contains(&format!("`{key}")) {
            missing.push(format!("config key {key}"));
        }
    }
    assert!(
        missing.is_empty(),
        "docs/configuration.md lacks: {missing:#?}"
    );
}

#[test]
fn shipped_man_pages_are_what_the_programs_generate() {
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/man");
    for program in ["porta-controller", "porta", "portactl"] {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new(binary(program))
            .arg("manpages")
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "{program} manpages");
        let mut generated: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        generated.sort();
        assert!(
            generated.len() > 3,
            "{program}: one page per command: {generated:?}"
        );
        for name in generated {
            let fresh = std::fs::read_to_string(dir.path().join(&name)).unwrap();
            let committed = std::fs::read_to_string(shipped.join(&name)).unwrap_or_default();
            assert!(
                fresh == committed,
                "packaging/man/{} is stale: run `cargo run --bin {program} -- manpages packaging/man`",
                name.to_string_lossy()
            );
        }
    }
}

#[test]
fn every_language_of_the_staff_guide_carries_the_same_steps_and_messages() {
    let guide = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/staff-guide.md"),
    )
    .unwrap();
    // Per language: its numbered steps' commands and its table's messages
    // (the programs print English, so the first column is the same text).
    let sections: Vec<(&str, Vec<String>, Vec<String>)> = guide
        .split("\n## ")
        .skip(1)
        .map(|section| {
            let name = section.lines().next().unwrap();
            let commands = section
                .split('`')
                .skip(1)
                .step_by(2)
                .filter(|code| code.starts_with("sudo "))
                .map(str::to_owned)
                .collect();
            let messages = section
                .lines()
                .filter(|line| line.starts_with("| `"))
                .map(|line| line.split(" | ").next().unwrap().to_owned())
                .collect();
            (name, commands, messages)
        })
        .collect();
    let names: Vec<&str> = sections.iter().map(|s| s.0).collect();
    assert_eq!(names, ["English", "Català", "Español", "Italiano"]);
    let (_, commands, messages) = &sections[0];
    assert!(commands.iter().any(|c| c == "sudo systemctl stop porta"));
    for (name, other_commands, other_messages) in &sections[1..] {
        let expected: BTreeSet<&String> = commands.iter().collect();
        let found: BTreeSet<&String> = other_commands.iter().collect();
        assert_eq!(found, expected, "{name}: the commands differ from English");
        assert_eq!(other_messages, messages, "{name}: the messages differ");
    }
}

/// README.md and every page in docs/.
fn doc_pages() -> Vec<std::path::PathBuf> {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut pages = vec![repo.join("README.md")];
    for entry in std::fs::read_dir(repo.join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            pages.push(path);
        }
    }
    pages
}

#[test]
fn the_docs_stand_on_the_repository_alone() {
    let pages = doc_pages();
    for page in pages {
        let text = std::fs::read_to_string(&page).unwrap();
        assert!(
            !text.contains("shared/"),
            "{} refers to files outside the repository",
            page.display()
        );
        // Every relative link resolves inside the repository.
        for link in text.split("](").skip(1) {
            let target = link.split([')', '#']).next().unwrap();
            if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let resolved = page.parent().unwrap().join(target);
            assert!(
                resolved.exists(),
                "{}: the link {target:?} leads nowhere",
                page.display()
            );
        }
    }
}

#[test]
fn shell_blocks_in_the_docs_can_be_pasted() {
    // A comment after a `\\` continuation ends the command there: the
    // lines after it run as commands of their own.
    let pages = doc_pages();
    for page in pages {
        let text = std::fs::read_to_string(&page).unwrap();
        for block in text.split("```sh\n").skip(1) {
            let block = block.split("```").next().unwrap();
            for line in block.lines() {
                let trimmed = line.trim_end();
                assert!(
                    !(trimmed.ends_with('\\') && trimmed.contains(" # ")),
                    "{}: a comment before a line continuation: {line:?}",
                    page.display()
                );
                if let Some((_, after)) = trimmed.split_once(" \\ ") {
                    assert!(
                        !after.trim_start().starts_with('#'),
                        "{}: a comment after a line continuation: {line:?}",
                        page.display()
                    );
                }
            }
        }
    }
}
