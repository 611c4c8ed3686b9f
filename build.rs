//! Stamps the build's facts into the binary: the version with the git revision (what
//! `dockhand --version` prints), and the target, profile, compiler and commit time that
//! `dockhand version` adds. Only facts of the source and the toolchain, never of the machine or
//! the moment of the build, so that release builds stay reproducible.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
    println!("cargo:rerun-if-env-changed=DOCKHAND_GIT_REVISION");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
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
    match &revision {
        Some(revision) => println!("cargo:rustc-env=DOCKHAND_VERSION={version} ({revision})"),
        None => println!("cargo:rustc-env=DOCKHAND_VERSION={version}"),
    }
    println!("cargo:rustc-env=DOCKHAND_REVISION={}", revision.unwrap_or_default());
    let fact = |name: &str| std::env::var(name).unwrap_or_default();
    println!("cargo:rustc-env=DOCKHAND_TARGET={}", fact("TARGET"));
    println!("cargo:rustc-env=DOCKHAND_PROFILE={}", fact("PROFILE"));
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let compiler = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .unwrap_or_default();
    println!("cargo:rustc-env=DOCKHAND_RUSTC={compiler}");
    // the commit time release builds set; empty for a developer's build
    println!("cargo:rustc-env=DOCKHAND_SOURCE_DATE_EPOCH={}", fact("SOURCE_DATE_EPOCH"));
}
