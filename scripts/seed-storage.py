#!/usr/bin/env python3
"""Writes COUNT distinct images with one tag each straight into a distribution registry's
filesystem storage (the layout docker-registry 2.8 reads: blobs by digest, and per repository
the revision, layer and tag links), for scale benchmarks where pushing 100,000 images through
the API would take longer than the run being measured. Each image is an OCI manifest without
layers whose config says when it was created, spread evenly over DAYS days (tag s000000 is the
oldest). Start the registry after this has run.

  scripts/seed-storage.py DATA_DIR REPOSITORY COUNT DAYS
"""

import datetime
import hashlib
import json
import os
import sys


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as out:
        out.write(data)


def blob(root, data):
    digest = hashlib.sha256(data).hexdigest()
    write(os.path.join(root, "blobs", "sha256", digest[:2], digest, "data"), data)
    return digest


def main():
    data_dir, repository, count, days = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    root = os.path.join(data_dir, "docker", "registry", "v2")
    repo = os.path.join(root, "repositories", repository)
    now = datetime.datetime.now(datetime.timezone.utc)
    for n in range(count):
        age = datetime.timedelta(days=days * (count - n) / count)
        created = (now - age).strftime("%Y-%m-%dT%H:%M:%SZ")
        config = json.dumps({
            "architecture": "amd64", "os": "linux", "created": created,
            "config": {"Labels": {"seed": str(n)}}, "rootfs": {"type": "layers", "diff_ids": []},
        }, separators=(",", ":")).encode()
        config_digest = blob(root, config)
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": "sha256:" + config_digest, "size": len(config)},
            "layers": [],
        }, separators=(",", ":")).encode()
        manifest_digest = blob(root, manifest)
        link = ("sha256:" + manifest_digest).encode()
        write(os.path.join(repo, "_layers", "sha256", config_digest, "link"), ("sha256:" + config_digest).encode())
        write(os.path.join(repo, "_manifests", "revisions", "sha256", manifest_digest, "link"), link)
        tag = os.path.join(repo, "_manifests", "tags", "s%06d" % n)
        write(os.path.join(tag, "current", "link"), link)
        write(os.path.join(tag, "index", "sha256", manifest_digest, "link"), link)


if __name__ == "__main__":
    main()
