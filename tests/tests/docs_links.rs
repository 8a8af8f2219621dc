//! Every path the documentation names resolves: the repository's Markdown files and the
//! crates' module docs (`//!`). A path is a backticked word or a Markdown link target that
//! names a file or folder of the repository (it starts at one of the top-level folders or ends
//! in `.md`); it may be written from the repository's root, from the file's own folder, or from
//! its crate's root.

use std::path::{Path, PathBuf};

const ROOTS: [&str; 8] = [
    "core/", "storage/", "net/", "bench/", "loadgen/", "tests/", "fuzz/", ".ci/",
];

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name == "target" || name.starts_with('.') && name != ".ci" || name == "corpus" {
            continue;
        }
        if path.is_dir() {
            files(&path, out);
        } else if name.ends_with(".md") || name.ends_with(".rs") {
            out.push(path);
        }
    }
}

/// The paths a piece of documentation names.
fn named_paths(text: &str) -> Vec<String> {
    let mut named = Vec::new();
    for (number, piece) in text.split('`').enumerate() {
        if number % 2 == 1 {
            named.push(piece.to_string());
        }
    }
    for (_, rest) in text
        .match_indices("](")
        .map(|(at, _)| text.split_at(at + 2))
    {
        if let Some((target, _)) = rest.split_once(')') {
            named.push(target.to_string());
        }
    }
    named
        .into_iter()
        .filter_map(|word| {
            let word = word
                .split(['#', ' ', ':'])
                .next()?
                .trim_end_matches(['.', ',']);
            // A segment in capitals (`fuzz/corpus/TARGET`) is a placeholder.
            let placeholder = word.split('/').any(|segment| {
                !segment.is_empty() && segment.chars().all(|c| c.is_ascii_uppercase() || c == '_')
            });
            let is_path = (ROOTS.iter().any(|root| word.starts_with(root))
                || (word.ends_with(".md") && word.len() > ".md".len()))
                && !placeholder
                && !word.contains('*')
                && !word.contains("://");
            is_path.then(|| word.to_string())
        })
        .collect()
}

fn crate_root(file: &Path) -> Option<PathBuf> {
    file.ancestors()
        .skip(1)
        .find(|dir| dir.join("Cargo.toml").is_file())
        .map(Path::to_path_buf)
}

#[test]
fn every_path_the_docs_name_resolves() {
    let root = repository();
    let mut all = Vec::new();
    files(&root, &mut all);
    let mut broken = Vec::new();
    let mut checked = 0;
    for file in &all {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        let docs: String = if file.extension().is_some_and(|extension| extension == "rs") {
            text.lines()
                .filter_map(|line| line.trim_start().strip_prefix("//!"))
                .collect::<Vec<_>>()
                .join("\n")
        } else {
            text
        };
        for path in named_paths(&docs) {
            let bases = [
                Some(root.clone()),
                file.parent().map(Path::to_path_buf),
                crate_root(file),
            ];
            checked += 1;
            if !bases.iter().flatten().any(|base| base.join(&path).exists()) {
                let shown = file
                    .strip_prefix(&root)
                    .unwrap_or(file)
                    .display()
                    .to_string();
                broken.push(format!("{shown}: `{path}`"));
            }
        }
    }
    assert!(checked > 50, "{checked} paths checked");
    assert!(
        broken.is_empty(),
        "paths that resolve nowhere:\n{}",
        broken.join("\n")
    );
}
