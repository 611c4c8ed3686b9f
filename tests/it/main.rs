//! The integration tests: one binary, real registries and peers (see `support`).

mod distribution;
#[allow(dead_code, reason = "fixtures serve every test module; not each uses every helper")]
mod support;
