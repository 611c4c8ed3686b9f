//! Publishing: every built image under every tag, named by the images repo and mode.
//!
//! Owns which references a build produces ([`targets`], pure) and pushing them: layers are
//! uploaded once per repository, extra tags are added by manifest PUT, and repositories are
//! created first where the implementation's capabilities require it. Must never delete
//! anything.

use serde::Serialize;

use crate::naming::{self, Mode, NamingError};
use crate::reference::{ImageRef, RepoAddress, Tag};

/// One reference to publish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    /// The image name from the project file.
    pub image: String,
    /// The full reference, `registry/repository:tag`.
    #[serde(serialize_with = "serialize_display")]
    pub reference: ImageRef,
    /// The repository the reference lives in.
    pub repository: String,
    /// The tag as stored in the registry (in monorepo mode it starts with the image name).
    pub tag: String,
}

fn serialize_display<S: serde::Serializer, T: std::fmt::Display>(
    value: &T,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

/// The references `images` gets under `tags` in `repo` with `mode`, image by image, in the
/// order of the tags.
pub fn targets(
    repo: &RepoAddress,
    mode: Mode,
    images: &[&str],
    tags: &[Tag],
) -> Result<Vec<Target>, NamingError> {
    let mut targets = Vec::with_capacity(images.len() * tags.len());
    for image in images {
        for tag in tags {
            let reference = naming::image_ref(repo, mode, image, tag)?;
            targets.push(Target {
                image: (*image).to_owned(),
                repository: reference.repository.to_string(),
                tag: reference.tag.as_ref().map(ToString::to_string).unwrap_or_default(),
                reference,
            });
        }
    }
    Ok(targets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_in_both_modes() {
        let repo: RepoAddress = "localhost:5000/acme/app".parse().unwrap();
        let tags: Vec<Tag> = ["main", "1.2.3"].iter().map(|t| t.parse().unwrap()).collect();
        let multi = targets(&repo, Mode::Multirepo, &["api", "web"], &tags).unwrap();
        let names: Vec<String> = multi.iter().map(|t| t.reference.to_string()).collect();
        assert_eq!(
            names,
            [
                "localhost:5000/acme/app/api:main",
                "localhost:5000/acme/app/api:1.2.3",
                "localhost:5000/acme/app/web:main",
                "localhost:5000/acme/app/web:1.2.3"
            ]
        );
        assert_eq!(multi[0].repository, "localhost:5000/acme/app/api");
        assert_eq!(multi[0].tag, "main");

        let mono = targets(&repo, Mode::Monorepo, &["api"], &tags).unwrap();
        assert_eq!(mono[1].reference.to_string(), "localhost:5000/acme/app:api-1.2.3");
        assert_eq!(mono[1].repository, "localhost:5000/acme/app");
        assert_eq!(mono[1].tag, "api-1.2.3");
        let json = serde_json::to_value(&mono[1]).unwrap();
        assert_eq!(json["reference"], "localhost:5000/acme/app:api-1.2.3");
        assert_eq!(json["image"], "api");
    }
}
