//! The documentation that is generated from the code stays in step with it.

use std::fmt::Write as _;

/// `docs/environment.md` lists every variable of `src/env_vars.rs` with its doc comment,
/// grouped by the file's `// ---` sections. Regenerate with `DOCKHAND_UPDATE_DOCS=1 cargo test docs`.
#[test]
fn environment_reference_is_generated_from_env_vars() {
    let source =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/env_vars.rs")).unwrap();
    let mut markdown = String::from(
        "# Environment variables\n\nEvery variable dockhand reads or exports, generated from `src/env_vars.rs` \
         (`DOCKHAND_UPDATE_DOCS=1 cargo test docs` rewrites this file).\n",
    );
    let mut doc = Vec::new();
    for line in source.lines() {
        let line = line.trim();
        if let Some(section) =
            line.strip_prefix("// --- ").and_then(|rest| rest.strip_suffix(" ---"))
        {
            write!(markdown, "\n## {}\n\n| variable | meaning |\n|---|---|\n", capitalise(section))
                .unwrap();
        } else if let Some(text) = line.strip_prefix("///") {
            doc.push(text.trim().to_owned());
        } else if let Some(rest) = line.strip_prefix("pub const ") {
            let name = rest.split(':').next().unwrap().trim();
            writeln!(markdown, "| `{name}` | {} |", doc.join(" ").replace('|', "\\|")).unwrap();
            doc.clear();
        } else if !line.starts_with("//") {
            doc.clear();
        }
    }
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/environment.md");
    if std::env::var_os("DOCKHAND_UPDATE_DOCS").is_some() {
        std::fs::write(path, &markdown).unwrap();
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert_eq!(
        committed, markdown,
        "docs/environment.md is stale: run `DOCKHAND_UPDATE_DOCS=1 cargo test docs`"
    );
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
}
