//! Stamps the version with the git revision, so `dockhand --version` names the commit.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
    println!("cargo:rerun-if-env-changed=DOCKHAND_GIT_REVISION");
    let version = env!("CARGO_PKG_VERSION");
    let revision =
        std::env::var("DOCKHAND_GIT_REVISION").ok().filter(|r| !r.is_empty()).or_else(|| {
            let output =
                Command::new("git").args(["rev-parse", "--short=8", "HEAD"]).output().ok()?;
            output
                .status
                .success()
                .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        });
    match revision {
        Some(revision) => println!("cargo:rustc-env=DOCKHAND_VERSION={version} ({revision})"),
        None => println!("cargo:rustc-env=DOCKHAND_VERSION={version}"),
    }
}
