//! The layering of `src/` as `docs/architecture.md` describes it: every module imports only
//! modules of lower layers, `cli` is read only where the doc says, and the files of one folder
//! import each other without a circle. Reads the doc's table and the `crate::…` and `super::…`
//! paths of every source file, leaving out test code (`#[cfg(test)]` onwards).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Modules that may read `cli`.
const CLI_READERS: [&str; 3] = ["settings", "output", "commands"];

/// Each top-level module and its layer, from the doc's "Layers" table.
fn layers() -> BTreeMap<String, u32> {
    let doc = std::fs::read_to_string(Path::new(ROOT).join("docs/architecture.md")).unwrap();
    let section = doc.split("## Layers").nth(1).expect("docs/architecture.md has a Layers section");
    let mut layers = BTreeMap::new();
    for row in section.lines().take_while(|line| !line.starts_with("## ")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let Some(layer) = cells.get(1).and_then(|cell| cell.parse::<u32>().ok()) else {
            continue;
        };
        for module in cells[2].split_whitespace() {
            layers.insert(module.trim_matches('`').to_owned(), layer);
        }
    }
    layers
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(sources(&path));
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// The code of `file` before its test module.
fn code(file: &Path) -> String {
    let text = std::fs::read_to_string(file).unwrap();
    match text.find("#[cfg(test)]") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

/// Expands a `use` tree (`a::{b, c::{d, e}}`) into its paths.
fn expand(tree: &str) -> Vec<String> {
    let tree: String = tree.split_whitespace().collect();
    let Some(open) = tree.find('{') else { return vec![tree] };
    let prefix = &tree[..open];
    let inner = &tree[open + 1..tree.rfind('}').expect("balanced braces")];
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (at, character) in inner.char_indices() {
        match character {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..at]);
                start = at + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter(|part| !part.is_empty())
        .flat_map(|part| expand(part).into_iter().map(move |path| format!("{prefix}{path}")))
        .collect()
}

/// The `crate::…` and `super::…` paths a piece of code names: expanded `use` trees and paths
/// written inline.
fn paths(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    for statement in code.split("use ").skip(1) {
        let Some(end) = statement.find(';') else { continue };
        let tree = &statement[..end];
        if tree.starts_with("crate::") || tree.starts_with("super::") {
            found.extend(expand(tree));
        }
    }
    let inline = regex::Regex::new(r"\b(?:crate|super)(?:::[a-z_][a-z0-9_]*)+").unwrap();
    found.extend(inline.find_iter(code).map(|found| found.as_str().to_owned()));
    found
}

/// `src/a/b.rs` → (`a`, `b`); `src/a.rs` and `src/a/mod.rs` → (`a`, ``).
fn module_of(file: &Path) -> (String, String) {
    let relative = file.strip_prefix(Path::new(ROOT).join("src")).unwrap();
    let parts: Vec<String> = relative
        .iter()
        .map(|part| part.to_string_lossy().trim_end_matches(".rs").to_owned())
        .collect();
    let top = parts[0].clone();
    let inner = match parts.len() {
        1 => String::new(),
        _ if parts[1] == "mod" => String::new(),
        _ => parts[1].clone(),
    };
    (top, inner)
}

#[test]
fn modules_import_only_lower_layers() {
    let layers = layers();
    assert!(layers.len() >= 15, "the Layers table lists every module: {layers:?}");
    let mut problems = Vec::new();
    for file in sources(&Path::new(ROOT).join("src")) {
        let (top, _) = module_of(&file);
        if top == "main" || top == "lib" {
            continue;
        }
        let Some(&own) = layers.get(&top) else {
            problems.push(format!("`{top}` is not in the Layers table of docs/architecture.md"));
            continue;
        };
        let imported: BTreeSet<String> = paths(&code(&file))
            .into_iter()
            .filter_map(|path| path.strip_prefix("crate::").map(str::to_owned))
            .filter_map(|path| path.split("::").next().map(str::to_owned))
            .filter(|module| *module != top)
            .collect();
        for module in imported {
            let Some(&theirs) = layers.get(&module) else { continue };
            let name = file.strip_prefix(ROOT).unwrap().display();
            if theirs >= own {
                problems.push(format!("{name} (layer {own}) imports `{module}` (layer {theirs})"));
            }
            if module == "cli" && !CLI_READERS.contains(&top.as_str()) {
                problems.push(format!("{name} reads `cli`; only {CLI_READERS:?} may"));
            }
        }
    }
    assert!(problems.is_empty(), "layering broken:\n{}", problems.join("\n"));
}

#[test]
fn files_of_one_folder_import_each_other_without_a_circle() {
    let mut edges: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for file in sources(&Path::new(ROOT).join("src")) {
        let (top, inner) = module_of(&file);
        if inner.is_empty() {
            continue;
        }
        let targets = edges.entry((top.clone(), inner.clone())).or_default();
        for path in paths(&code(&file)) {
            let sibling = if let Some(rest) = path.strip_prefix(&format!("crate::{top}::")) {
                rest.split("::").next()
            } else if let Some(rest) = path.strip_prefix("super::") {
                rest.split("::").next()
            } else {
                None
            };
            if let Some(sibling) = sibling.filter(|sibling| *sibling != inner) {
                targets.insert(sibling.to_owned());
            }
        }
    }
    // `super::X` may name an item of the folder's mod.rs: only sibling files are edges
    let files: BTreeSet<(String, String)> = edges.keys().cloned().collect();
    for ((folder, _), targets) in &mut edges {
        targets.retain(|target| files.contains(&(folder.clone(), target.clone())));
    }
    assert!(
        edges
            .get(&("cleanup".to_owned(), "execute".to_owned()))
            .is_some_and(|targets| targets.contains("plan")),
        "the walk sees sibling imports: {edges:?}"
    );
    for ((folder, file), targets) in &edges {
        for target in targets {
            let mut seen = BTreeSet::new();
            let mut stack = vec![target.clone()];
            while let Some(current) = stack.pop() {
                assert!(
                    current != *file,
                    "src/{folder}: `{file}` imports `{target}`, which leads back to `{file}`"
                );
                if seen.insert(current.clone())
                    && let Some(next) = edges.get(&(folder.clone(), current))
                {
                    stack.extend(next.iter().cloned());
                }
            }
        }
    }
}

#[test]
fn use_trees_expand_to_their_paths() {
    assert_eq!(
        expand("crate::cleanup::{inventory::{Inventory, Scope}, plan}"),
        [
            "crate::cleanup::inventory::Inventory",
            "crate::cleanup::inventory::Scope",
            "crate::cleanup::plan"
        ]
    );
    assert_eq!(expand("super::Vendor"), ["super::Vendor"]);
    let code = "use crate::a::{b, c};\nfn f() { crate::d::e(); }\n";
    let found: BTreeSet<String> = paths(code).into_iter().collect();
    for expected in ["crate::a::b", "crate::a::c", "crate::d::e"] {
        assert!(found.contains(expected), "{expected} in {found:?}");
    }
}
