//! Fixtures shared by the integration tests. Each fixture stops what it starts in `Drop`.

pub mod binary;
