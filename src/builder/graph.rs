//! The order of a project's builds: which image is built `FROM` which (`from_image:`), checked
//! before any builder runs, and the schedule that starts each build once its base is built, at
//! most `--jobs` at a time.
//!
//! Pure: no process, no I/O. [`BuildGraph::new`] refuses unknown names, cycles (naming every
//! image of the cycle) and platforms a base is not built for; [`Schedule`] is the state machine
//! the builds run by ([`super::build_all`]): what may start now, what a failure leaves unbuilt.

use std::fmt;

/// One image as the graph sees it: its name, the project image it is built from (if any) and
/// the platforms it is built for (empty: the builder's own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node<'a> {
    pub name: &'a str,
    pub from_image: Option<&'a str>,
    pub platforms: &'a [String],
}

/// The project's images with, for each, the index of the image it is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildGraph {
    names: Vec<String>,
    bases: Vec<Option<usize>>,
}

impl BuildGraph {
    /// The graph of `nodes` (in the project file's order). Fails on a `from_image` naming no
    /// image of the project, on a cycle (an image built, through its bases, from itself), and
    /// on a platform the image is built for that its base is not built for.
    pub fn new(nodes: &[Node<'_>]) -> Result<Self, GraphError> {
        let index = |name: &str| nodes.iter().position(|node| node.name == name);
        let mut bases = Vec::with_capacity(nodes.len());
        for node in nodes {
            let base = match node.from_image {
                None => None,
                Some(base) => Some(index(base).ok_or_else(|| GraphError::Unknown {
                    image: node.name.to_owned(),
                    base: base.to_owned(),
                    known: nodes.iter().map(|node| node.name.to_owned()).collect(),
                })?),
            };
            bases.push(base);
        }
        for start in 0..nodes.len() {
            // a cycle through `start`: following the bases from it comes back to it
            let mut path = vec![start];
            let mut current = start;
            while let Some(base) = bases[current] {
                if base == start {
                    path.push(start);
                    return Err(GraphError::Cycle(
                        path.iter().map(|&at| nodes[at].name.to_owned()).collect(),
                    ));
                }
                if path.contains(&base) {
                    // a cycle further up, reported when `start` reaches it
                    break;
                }
                path.push(base);
                current = base;
            }
        }
        for (node, base) in nodes.iter().zip(&bases) {
            let Some(base) = base.map(|at| &nodes[at]) else { continue };
            if node.platforms.is_empty() != base.platforms.is_empty() {
                // one for the builder's own platform, the other for named ones: which of them
                // the builder's own is, is the builder's to say, so refuse rather than guess
                return Err(GraphError::PlatformsDiffer {
                    image: node.name.to_owned(),
                    base: base.name.to_owned(),
                });
            }
            if let Some(platform) =
                node.platforms.iter().find(|platform| !base.platforms.contains(platform))
            {
                return Err(GraphError::Platform {
                    image: node.name.to_owned(),
                    base: base.name.to_owned(),
                    platform: platform.clone(),
                });
            }
        }
        Ok(Self { names: nodes.iter().map(|node| node.name.to_owned()).collect(), bases })
    }

    /// The index of the image `image` is built from.
    pub fn base(&self, image: usize) -> Option<usize> {
        self.bases[image]
    }

    pub fn name(&self, image: usize) -> &str {
        &self.names[image]
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Whether any image is built from another: then the order differs from the file's.
    pub fn has_dependencies(&self) -> bool {
        self.bases.iter().any(Option::is_some)
    }

    /// The order one build at a time follows: every image after its base, otherwise the
    /// project file's order.
    pub fn order(&self) -> Vec<usize> {
        let mut schedule = Schedule::new(self, 1);
        let mut order = Vec::with_capacity(self.len());
        while let Some(next) = schedule.start_next() {
            order.push(next);
            schedule.finished(next, true);
        }
        order
    }
}

/// Where an image stands in a [`Schedule`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Not started yet.
    Waiting,
    Running,
    Built,
    Failed,
    /// Never built: its base (or its base's base) failed.
    BaseFailed(usize),
    /// Never started: another build failed first, and no new builds start after a failure.
    NotStarted,
}

/// Which builds run when: an image starts once its base is built, at most `jobs` at a time, the
/// earliest in the project file first. After a failure nothing new starts; the builds running
/// then finish.
#[derive(Debug, Clone)]
pub struct Schedule<'g> {
    graph: &'g BuildGraph,
    states: Vec<State>,
    jobs: usize,
    failed: bool,
}

impl<'g> Schedule<'g> {
    /// A schedule of `graph` with at most `jobs` (at least 1) builds at a time.
    pub fn new(graph: &'g BuildGraph, jobs: usize) -> Self {
        Self { graph, states: vec![State::Waiting; graph.len()], jobs: jobs.max(1), failed: false }
    }

    fn running(&self) -> usize {
        self.states.iter().filter(|state| **state == State::Running).count()
    }

    /// The next image to start now, marked running; `None` while the limit is reached, no
    /// waiting image's base is built yet, or after a failure.
    pub fn start_next(&mut self) -> Option<usize> {
        if self.failed || self.running() >= self.jobs {
            return None;
        }
        let ready = (0..self.states.len()).find(|&image| {
            self.states[image] == State::Waiting
                && self.graph.base(image).is_none_or(|base| self.states[base] == State::Built)
        })?;
        self.states[ready] = State::Running;
        Some(ready)
    }

    /// Records the end of `image`'s build. A failure marks every image built (through its
    /// bases) from it [`State::BaseFailed`] and every other waiting one [`State::NotStarted`].
    pub fn finished(&mut self, image: usize, built: bool) {
        debug_assert_eq!(self.states[image], State::Running, "only a running build finishes");
        if built {
            self.states[image] = State::Built;
            return;
        }
        self.states[image] = State::Failed;
        self.failed = true;
        for other in 0..self.states.len() {
            if self.states[other] != State::Waiting {
                continue;
            }
            self.states[other] = match self.failed_ancestor(other) {
                Some(base) => State::BaseFailed(base),
                None => State::NotStarted,
            };
        }
    }

    /// The failed image `image` is built from, through its bases.
    fn failed_ancestor(&self, image: usize) -> Option<usize> {
        let mut current = self.graph.base(image);
        while let Some(base) = current {
            if self.states[base] == State::Failed {
                return Some(base);
            }
            current = self.graph.base(base);
        }
        None
    }

    /// Whether every build has ended, or will never start.
    pub fn is_done(&self) -> bool {
        !self.states.iter().any(|state| matches!(state, State::Waiting | State::Running))
    }

    pub fn state(&self, image: usize) -> State {
        self.states[image]
    }
}

/// A `from_image:` that cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    #[error(
        "Image `{image}` is built from `{base}` (`from_image:`), which is not an image of the project (its images: {})",
        known.join(", ")
    )]
    Unknown { image: String, base: String, known: Vec<String> },
    #[error("The images' `from_image:` form a cycle: {}", Cycle(.0))]
    Cycle(Vec<String>),
    #[error("Image `{image}` is built for `{platform}`, which its base `{base}` is not built for")]
    Platform { image: String, base: String, platform: String },
    #[error(
        "Image `{image}` and its base `{base}` must both name their `platforms:` or both leave them to the builder"
    )]
    PlatformsDiffer { image: String, base: String },
}

/// `a → b → a`.
struct Cycle<'a>(&'a [String]);

impl fmt::Display for Cycle<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self.0.iter().map(|name| format!("`{name}`")).collect();
        f.write_str(&names.join(" → "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes<'a>(edges: &'a [(&'a str, Option<&'a str>)]) -> Vec<Node<'a>> {
        edges
            .iter()
            .map(|(name, from_image)| Node { name, from_image: *from_image, platforms: &[] })
            .collect()
    }

    fn graph(edges: &[(&str, Option<&str>)]) -> BuildGraph {
        BuildGraph::new(&nodes(edges)).unwrap()
    }

    fn names(graph: &BuildGraph, order: &[usize]) -> Vec<String> {
        order.iter().map(|&image| graph.name(image).to_owned()).collect()
    }

    #[test]
    fn every_image_comes_after_its_base_otherwise_in_file_order() {
        let independent = graph(&[("a", None), ("b", None), ("c", None)]);
        assert!(!independent.has_dependencies());
        assert_eq!(names(&independent, &independent.order()), ["a", "b", "c"]);
        let chain =
            graph(&[("app", Some("mid")), ("mid", Some("base")), ("base", None), ("x", None)]);
        assert!(chain.has_dependencies());
        assert_eq!(names(&chain, &chain.order()), ["base", "mid", "app", "x"]);
        let fan = graph(&[("b", Some("a")), ("c", Some("a")), ("a", None)]);
        assert_eq!(names(&fan, &fan.order()), ["a", "b", "c"]);
        assert!(graph(&[]).is_empty());
    }

    #[test]
    fn cycles_are_refused_naming_every_image_of_the_cycle() {
        for (edges, cycle) in [
            (&[("a", Some("a"))][..], "`a` → `a`"),
            (&[("a", Some("b")), ("b", Some("a"))][..], "`a` → `b` → `a`"),
            (
                &[("x", None), ("a", Some("c")), ("b", Some("a")), ("c", Some("b"))][..],
                "`a` → `c` → `b` → `a`",
            ),
            // `d` hangs off the cycle: the cycle is reported from where it starts, not from `d`
            (&[("d", Some("b")), ("b", Some("c")), ("c", Some("b"))][..], "`b` → `c` → `b`"),
        ] {
            let error = BuildGraph::new(&nodes(edges)).unwrap_err();
            assert!(matches!(error, GraphError::Cycle(_)), "{error:?}");
            assert_eq!(
                error.to_string(),
                format!("The images' `from_image:` form a cycle: {cycle}")
            );
        }
    }

    #[test]
    fn an_unknown_base_is_refused_listing_the_images() {
        let error = BuildGraph::new(&nodes(&[("a", None), ("b", Some("base"))])).unwrap_err();
        assert_eq!(
            error.to_string(),
            "Image `b` is built from `base` (`from_image:`), which is not an image of the project (its images: a, b)"
        );
    }

    #[test]
    fn a_dependent_image_is_built_for_platforms_its_base_has() {
        let both = ["linux/amd64".to_owned(), "linux/arm64".to_owned()];
        let amd = ["linux/amd64".to_owned()];
        let arm = ["linux/arm64".to_owned()];
        let check = |base: &[String], image: &[String]| {
            BuildGraph::new(&[
                Node { name: "base", from_image: None, platforms: base },
                Node { name: "app", from_image: Some("base"), platforms: image },
            ])
        };
        assert!(check(&both, &both).is_ok());
        assert!(check(&both, &amd).is_ok());
        assert!(check(&[], &[]).is_ok());
        for (base, image, platform) in
            [(&amd[..], &both[..], "linux/arm64"), (&amd[..], &arm[..], "linux/arm64")]
        {
            let error = check(base, image).unwrap_err();
            assert_eq!(
                error,
                GraphError::Platform {
                    image: "app".into(),
                    base: "base".into(),
                    platform: platform.into()
                }
            );
        }
        for (base, image) in [(&[][..], &amd[..]), (&both[..], &[][..])] {
            let error = check(base, image).unwrap_err();
            assert_eq!(
                error,
                GraphError::PlatformsDiffer { image: "app".into(), base: "base".into() }
            );
        }
    }

    #[test]
    fn independent_images_run_up_to_the_limit_and_dependents_wait_for_their_base() {
        let graph = graph(&[("a", None), ("b", None), ("c", Some("a")), ("d", None)]);
        let mut schedule = Schedule::new(&graph, 2);
        assert_eq!(schedule.start_next(), Some(0));
        assert_eq!(schedule.start_next(), Some(1));
        assert_eq!(schedule.start_next(), None, "two at a time");
        schedule.finished(1, true);
        // `c` waits for `a`, so `d` goes first
        assert_eq!(schedule.start_next(), Some(3));
        assert_eq!(schedule.start_next(), None);
        schedule.finished(0, true);
        assert_eq!(schedule.start_next(), Some(2));
        assert!(!schedule.is_done());
        schedule.finished(3, true);
        schedule.finished(2, true);
        assert!(schedule.is_done());
        assert!((0..4).all(|image| schedule.state(image) == State::Built));
    }

    #[test]
    fn a_failure_starts_nothing_new_and_leaves_its_dependents_unbuilt() {
        let graph =
            graph(&[("a", None), ("b", None), ("c", Some("a")), ("d", Some("c")), ("e", None)]);
        let mut schedule = Schedule::new(&graph, 2);
        assert_eq!(schedule.start_next(), Some(0));
        assert_eq!(schedule.start_next(), Some(1));
        schedule.finished(0, false);
        assert_eq!(schedule.start_next(), None, "nothing starts after a failure");
        assert!(!schedule.is_done(), "`b` still runs");
        schedule.finished(1, true);
        assert!(schedule.is_done());
        assert_eq!(
            (0..5).map(|image| schedule.state(image)).collect::<Vec<_>>(),
            [
                State::Failed,
                State::Built,
                State::BaseFailed(0),
                State::BaseFailed(0),
                State::NotStarted
            ]
        );
    }

    proptest::proptest! {
        /// Whatever the graph (each image from an earlier one, or none) and the limit: every image
        /// is built exactly once, after its base, never more than `jobs` at a time.
        #[test]
        fn schedules_respect_bases_and_the_limit(
            bases in proptest::collection::vec(proptest::option::of(0usize..8), 1..8),
            jobs in 1usize..4,
            picks in proptest::collection::vec(0usize..8, 16),
        ) {
            let names: Vec<String> = (0..bases.len()).map(|at| format!("i{at}")).collect();
            let from: Vec<Option<&str>> = bases
                .iter()
                .enumerate()
                .map(|(at, base)| base.filter(|base| *base < at).map(|base| names[base].as_str()))
                .collect();
            let nodes: Vec<Node<'_>> = names
                .iter()
                .zip(&from)
                .map(|(name, from_image)| Node { name, from_image: *from_image, platforms: &[] })
                .collect();
            let graph = BuildGraph::new(&nodes).unwrap();
            let mut schedule = Schedule::new(&graph, jobs);
            let mut running: Vec<usize> = Vec::new();
            let mut built: Vec<usize> = Vec::new();
            let mut pick = picks.iter().cycle();
            while !schedule.is_done() {
                while let Some(next) = schedule.start_next() {
                    if let Some(base) = graph.base(next) {
                        proptest::prop_assert!(built.contains(&base));
                    }
                    running.push(next);
                    proptest::prop_assert!(running.len() <= jobs);
                }
                let ended = running.remove(pick.next().unwrap() % running.len());
                schedule.finished(ended, true);
                built.push(ended);
            }
            built.sort_unstable();
            proptest::prop_assert_eq!(built, (0..names.len()).collect::<Vec<_>>());
        }
    }
}
