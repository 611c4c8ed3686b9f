//! The manifest graph of one repository, as its inventory knows it: an index points to its
//! children, and a referrer (signature, SBOM, attestation) is reached from its `subject`.
//!
//! Owns the edges both the planner and the executor follow — the planner to find what
//! everything staying needs, the executor to verify afterwards that it still resolves — so the
//! two can never disagree about what "needed" means. Pure.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

use crate::cleanup::inventory::RepositoryInventory;
use crate::reference::Digest;

/// How a manifest is reached from the one before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edge {
    /// Listed by an image index.
    IndexChild,
    /// Names the manifest before it as its `subject`.
    Referrer,
}

/// The edges of one repository's manifests.
#[derive(Debug)]
pub struct Graph<'i> {
    inventory: &'i RepositoryInventory,
    /// Manifests whose `subject` is the key, in digest order.
    referrers: HashMap<&'i Digest, Vec<&'i Digest>>,
}

impl<'i> Graph<'i> {
    pub fn new(inventory: &'i RepositoryInventory) -> Self {
        let mut referrers: HashMap<&Digest, Vec<&Digest>> = HashMap::new();
        for (digest, entry) in &inventory.manifests {
            if let Some(subject) = &entry.subject {
                referrers.entry(subject).or_default().push(digest);
            }
        }
        Self { inventory, referrers }
    }

    /// What `digest` leads to: its index children in index order, then its referrers in
    /// digest order.
    pub fn next(&self, digest: &Digest) -> impl Iterator<Item = (&'i Digest, Edge)> + '_ {
        let children = self.inventory.manifests.get(digest).map(|entry| entry.children.iter());
        children.into_iter().flatten().map(|child| (child, Edge::IndexChild)).chain(
            self.referrers
                .get(digest)
                .into_iter()
                .flatten()
                .map(|referrer| (*referrer, Edge::Referrer)),
        )
    }

    /// Every manifest reachable from `roots`, transitively, the roots excluded.
    pub fn reachable(&self, roots: &[&'i Digest]) -> BTreeSet<&'i Digest> {
        let mut seen: HashSet<&Digest> = roots.iter().copied().collect();
        let mut queue: VecDeque<&Digest> = roots.iter().copied().collect();
        let mut reached = BTreeSet::new();
        while let Some(digest) = queue.pop_front() {
            for (found, _) in self.next(digest) {
                if seen.insert(found) {
                    reached.insert(found);
                    queue.push_back(found);
                }
            }
        }
        reached
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::cleanup::inventory::{ManifestEntry, SourceLabels, TimeSource};

    fn digest(n: u8) -> Digest {
        Digest::sha256_of(&[n])
    }

    fn manifest(children: &[u8], subject: Option<u8>) -> ManifestEntry {
        ManifestEntry {
            children: children.iter().map(|&n| digest(n)).collect(),
            subject: subject.map(digest),
            created: None,
            created_source: TimeSource::Unknown,
            tombstone: false,
            source: SourceLabels::default(),
        }
    }

    /// 1 is an index of 2 and 3; 4 signs 1; 5 attests 4; 6 stands alone; 7 lists 1 again
    /// (a cycle back through the index is followed once).
    #[test]
    fn children_and_referrers_transitively_each_once() {
        let inventory = RepositoryInventory {
            address: "localhost:5000/acme/app".parse().unwrap(),
            complete: true,
            tags: Vec::new(),
            manifests: BTreeMap::from([
                (digest(1), manifest(&[2, 3], None)),
                (digest(2), manifest(&[], None)),
                (digest(3), manifest(&[7], None)),
                (digest(4), manifest(&[], Some(1))),
                (digest(5), manifest(&[], Some(4))),
                (digest(6), manifest(&[], None)),
                (digest(7), manifest(&[1], None)),
            ]),
            foreign_tags: BTreeMap::new(),
        };
        let graph = Graph::new(&inventory);
        let next: Vec<(Digest, Edge)> =
            graph.next(&digest(1)).map(|(found, edge)| (found.clone(), edge)).collect();
        assert_eq!(
            next,
            [
                (digest(2), Edge::IndexChild),
                (digest(3), Edge::IndexChild),
                (digest(4), Edge::Referrer)
            ]
        );
        let root = digest(1);
        let reached: Vec<&Digest> = graph.reachable(&[&root]).into_iter().collect();
        let mut want = [digest(2), digest(3), digest(4), digest(5), digest(7)];
        want.sort();
        assert_eq!(reached, want.iter().collect::<Vec<_>>());
        assert!(graph.reachable(&[&digest(6)]).is_empty());
        // a digest the inventory does not know leads nowhere
        assert_eq!(graph.next(&digest(9)).count(), 0);
    }
}
