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
        ("porta-gateway", &[]),
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
    let listed = serve
        .split("(keys: ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .expect("serve --help lists the config keys");
    let (keys, sections) = listed
        .split_once("; sections: ")
        .expect("serve --help lists the config sections");
    for key in keys
        .split(',')
        .map(|k| k.split_whitespace().collect::<String>())
    {
        if !reference.contains(&format!("`{key}")) {
            missing.push(format!("config key {key}"));
        }
    }
    // Each section's keys, as the controller itself names them when it
    // refuses an unknown one.
    for section in sections
        .split(',')
        .map(|k| k.split_whitespace().collect::<String>())
    {
        for key in section_keys(&section) {
            if !reference.contains(&format!("`{section}.{key}`")) {
                missing.push(format!("config key {section}.{key}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "docs/configuration.md lacks: {missing:#?}"
    );
}

/// The keys a config file section accepts: the list serde gives in the
/// error for an unknown key.
fn section_keys(section: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(&file, format!("[{section}]\nno_such_key = 1\n")).unwrap();
    let error = porta_controller::options::FileConfig::load(&file).expect_err("unknown key");
    let message = format!("{error:#}");
    let expected = message
        .split("expected one of ")
        .nth(1)
        .unwrap_or_else(|| panic!("no key list in {message:?}"));
    expected
        .split(',')
        .map(|k| k.trim().trim_matches('`').to_owned())
        .filter(|k| !k.is_empty())
        .map(|k| k.split('`').next().unwrap().to_owned())
        .collect()
}

#[test]
fn shipped_man_pages_are_what_the_programs_generate() {
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/man");
    let mut every_generated = Vec::new();
    for (program, at_least) in [
        ("porta-controller", 4),
        ("porta-gateway", 1),
        ("porta", 4),
        ("portactl", 4),
    ] {
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
            generated.len() >= at_least,
            "{program}: one page per command: {generated:?}"
        );
        every_generated.extend(generated.iter().cloned());
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
    for shipped in std::fs::read_dir(&shipped).unwrap() {
        let name = shipped.unwrap().file_name();
        assert!(
            every_generated.contains(&name),
            "packaging/man/{} is no program's page any more: remove it",
            name.to_string_lossy()
        );
    }
}

#[test]
fn every_language_of_the_staff_guide_carries_the_same_steps_and_messages() {
    use porta_client::i18n::{Lang, Msg};
    let guide = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/staff-guide.md"),
    )
    .unwrap();
    // Per language: the commands it quotes, the app's messages its table
    // explains (as the app shows them in that language), its screenshots.
    struct Section<'a> {
        name: &'a str,
        commands: Vec<String>,
        messages: Vec<String>,
        pictures: Vec<String>,
    }
    let sections: Vec<Section> = guide
        .split("\n## ")
        .skip(1)
        .map(|section| {
            let name = section.lines().next().unwrap();
            let commands = section
                .split('`')
                .skip(1)
                .step_by(2)
                .filter(|code| code.starts_with("sudo ") || code.starts_with("porta "))
                .map(str::to_owned)
                .collect();
            let messages = section
                .lines()
                .filter(|line| line.starts_with("| `"))
                .map(|line| line[3..].split('`').next().unwrap().to_owned())
                .collect();
            let pictures = section
                .split("](screenshots/")
                .skip(1)
                .map(|rest| rest.split(')').next().unwrap().to_owned())
                .collect();
            Section {
                name,
                commands,
                messages,
                pictures,
            }
        })
        .collect();
    let names: Vec<&str> = sections.iter().map(|s| s.name).collect();
    assert_eq!(names, ["English", "Català", "Español", "Italiano"]);
    let commands = &sections[0].commands;
    assert!(commands.iter().any(|c| c == "sudo adduser anna porta"));
    assert!(commands.iter().any(|c| c == "porta diagnostics"));
    // Which catalogue message a table entry is, in `lang` (placeholders
    // written as "…").
    let which = |lang: Lang, shown: &str| {
        Msg::ALL.iter().copied().find(|msg| {
            let mut text = msg.text(lang).to_owned();
            while let Some(start) = text.find('{') {
                let end = text[start..].find('}').unwrap() + start;
                text.replace_range(start..=end, "…");
            }
            text.starts_with(shown)
        })
    };
    let mut explained_in_english = Vec::new();
    for (section, lang) in sections.iter().zip(Lang::ALL_IN_GUIDE_ORDER) {
        let Section {
            name,
            commands: other_commands,
            messages,
            pictures,
        } = section;
        let expected: BTreeSet<&String> = commands.iter().collect();
        let found: BTreeSet<&String> = other_commands.iter().collect();
        assert_eq!(found, expected, "{name}: the commands differ from English");
        let explained: Vec<Msg> = messages
            .iter()
            .map(|m| {
                which(lang, m).unwrap_or_else(|| panic!("{name}: {m:?} is not what the app shows"))
            })
            .collect();
        if explained_in_english.is_empty() {
            explained_in_english = explained;
        } else {
            assert_eq!(
                explained, explained_in_english,
                "{name}: other messages than English"
            );
        }
        assert!(!pictures.is_empty(), "{name} shows the app");
        for picture in pictures {
            assert!(
                picture.ends_with(&format!("-{}.png", lang.code())),
                "{name} shows {picture}, of another language"
            );
            assert!(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../docs/screenshots")
                    .join(picture)
                    .exists(),
                "{name}: {picture} is missing"
            );
        }
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
