//! dockhand's integration tests: one test binary driving the library and the built
//! executable against real parts (the CNCF distribution registry, buildah, skopeo) started on
//! 127.0.0.1 by the tests themselves.

mod bad_input;
mod help;
mod support;
