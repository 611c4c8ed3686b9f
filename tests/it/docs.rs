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

/// The README's table of registry implementations agrees with `dockhand registry detect` for one
/// address of each: the implementation (detected from the address, or named where nothing can
/// detect it), and the columns that are capabilities in the code.
#[test]
fn registry_table_matches_the_detected_capabilities() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme.split("### Registry implementations").nth(1).unwrap();
    let rows: Vec<Vec<&str>> = section
        .lines()
        .skip_while(|line| !line.starts_with("| implementation |"))
        .take_while(|line| line.starts_with('|'))
        .skip(2)
        .map(|line| line.trim_matches('|').split(" | ").map(str::trim).collect())
        .collect();
    // one address per implementation, as a user of it would write it
    let addresses = [
        ("default", "localhost:5000/acme/app", None),
        ("ecr", "123456789012.dkr.ecr.eu-west-1.amazonaws.com/acme/app", None),
        ("acr", "acme.azurecr.io/team/app", None),
        ("dockerhub", "docker.io/acme/app", None),
        ("gcr", "europe-docker.pkg.dev/acme/images/app", None),
        ("github", "ghcr.io/acme/app", None),
        ("gitlab", "registry.gitlab.com/acme/app", None),
        ("harbor", "harbor.example.com/acme/app", None),
        ("quay", "quay.io/acme/app", None),
        ("artifactory", "acme.jfrog.io/docker-local/app", None),
        ("nexus", "nexus.example.com:8082/acme/app", Some("nexus")),
    ];
    let names: Vec<&str> = rows.iter().map(|row| row[0]).collect();
    let expected: Vec<&str> = addresses.iter().map(|(name, _, _)| *name).collect();
    assert_eq!(names, expected, "one row per implementation, in the SPEC's order");
    let dir = tempfile::tempdir().unwrap();
    for (row, (name, address, named)) in rows.iter().zip(addresses) {
        let mut args = vec!["registry", "detect", address, "--output", "json"];
        if let Some(named) = named {
            args.extend(["--repo-implementation", named]);
        }
        let run = crate::support::binary::dockhand(dir.path(), &args).run();
        run.assert_code(0);
        let detected = run.json();
        assert_eq!(detected["implementation"], name, "{address}: {detected}");
        let yes_no = |cell: &str| cell.split_whitespace().next().map(|word| word == "yes");
        assert_eq!(
            yes_no(row[2]),
            detected["nested_repositories"].as_bool(),
            "{name}: nested repos `{}`",
            row[2]
        );
        assert_eq!(
            yes_no(row[3]),
            detected["create_repository_before_push"].as_bool(),
            "{name}: create before push `{}`",
            row[3]
        );
        let tag_delete =
            if row[4].starts_with("native API") { "native-api" } else { "distribution" };
        assert!(
            row[4].starts_with("native API") || row[4].starts_with("distribution"),
            "{}",
            row[4]
        );
        assert_eq!(detected["tag_delete"], tag_delete, "{name}: tag delete `{}`", row[4]);
        let mode = row[5].split_whitespace().next().unwrap();
        assert_eq!(detected["default_mode"], mode, "{name}: `auto` mode `{}`", row[5]);
    }
}
