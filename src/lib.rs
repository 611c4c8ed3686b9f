//! dockhand ships container images from CI.
//!
//! Data flows through the crate in one direction:
//!
//! ```text
//! env + argv + dockhand.yaml     env_vars::EnvMap, cli::Cli, project::ProjectFile
//!   ▼
//! ci::detect ─► settings         CiContext + typed settings (flag > env > file > CI default)
//!   ▼
//! docker_config                  fresh 0700 dir, config.json 0600, exported as DOCKER_CONFIG
//!   ▼
//! registry::detect ─► connect    Implementation + Capabilities; the registry seam (Vendor)
//!   ▼
//! build ─► publish               builder argv run by `process`; names from `naming`
//!   ▼
//! cleanup                        inventory ─► plan (pure) ─► execute
//!   ▼
//! output                         data on stdout (text|json), logs on stderr, CI file commands
//! ```
//!
//! The middle (references, naming, detection, policy, plan) is pure and tested directly; I/O
//! stays at the edges. Errors are typed per module and classified into the SPEC's exit codes
//! by [`exit::Classify`].

pub mod builder;
pub mod ci;
pub mod cleanup;
pub mod cli;
pub mod commands;
pub mod docker_config;
pub mod env_vars;
pub mod exit;
pub mod naming;
pub mod output;
pub mod process;
pub mod project;
pub mod publish;
pub mod reference;
pub mod registry;
pub mod secret;
pub mod settings;
pub mod tags;
