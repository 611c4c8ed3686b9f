//! dockhand's integration tests: one test binary driving the library and the built
//! executable against real parts (the CNCF distribution registry, buildah, skopeo) started on
//! 127.0.0.1 by the tests themselves (see `support`).

mod bad_input;
mod build;
mod ci_env;
mod cleanup;
mod dependent_builds;
mod distribution;
mod docs;
mod fuzz;
mod git_retention;
mod help;
mod layers;
mod live_build;
mod login;
mod no_project;
mod packaging;
mod publish;
mod registry_acr;
mod registry_artifactory;
mod registry_docker_hub;
mod registry_ecr;
mod registry_gcr;
mod registry_github;
mod registry_gitlab;
mod registry_harbor;
mod registry_nexus;
mod registry_quay;
#[allow(dead_code, reason = "fixtures serve every test module; not each uses every helper")]
mod support;
mod tls;
