//! Exit codes of the SPEC, decided in one place.
//!
//! Owns [`ExitStatus`] and the [`Classify`] trait that every top-level error implements, so that
//! `main.rs` maps any failure to `1` (the user's input), `2` (remote or unexpected) or `3` (work
//! left undone on purpose) without knowing which module it came from, and [`causes`], the one
//! walk down an error's `source` chain that every report uses.

/// The process exit status, as documented in the SPEC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// `0`: everything asked for was done.
    Success,
    /// `1`: the command line, configuration, reference or credentials are wrong.
    Usage,
    /// `2`: a registry or tool failed, or something unexpected happened.
    Failure,
    /// `3`: a time or delete budget was reached; rerun to continue.
    Unfinished,
}

impl ExitStatus {
    pub fn code(self) -> u8 {
        match self {
            Self::Success => 0,
            Self::Usage => 1,
            Self::Failure => 2,
            Self::Unfinished => 3,
        }
    }
}

/// How an error is reported at the edge: its exit status and an optional hint line.
pub trait Classify {
    fn exit_status(&self) -> ExitStatus;

    /// One sentence telling the user what to do next, printed as `hint: …`.
    fn hint(&self) -> Option<String> {
        None
    }
}

/// The messages of `error`'s causes, outermost first (not `error`'s own).
pub fn causes(error: &dyn std::error::Error) -> Vec<String> {
    std::iter::successors(error.source(), |cause| cause.source()).map(ToString::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Middle);

    #[derive(Debug, thiserror::Error)]
    #[error("middle")]
    struct Middle(#[source] std::io::Error);

    #[test]
    fn causes_walk_the_whole_chain_outermost_first() {
        let error = Outer(Middle(std::io::Error::other("inner")));
        assert_eq!(causes(&error), ["middle", "inner"]);
        assert!(causes(&std::io::Error::other("alone")).is_empty());
    }
}
