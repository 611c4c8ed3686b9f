#!/usr/bin/env bash
# GitHub Packages cleanup figures (issue 11), against the GitHub stand-in (tests/it/support/
# stand_in.rs, following @octokit/openapi; not the real GitHub) in front of a real
# docker-registry. Prints figures; asserts nothing about durations.
#
# Seeds $BENCH_TAGS distinct single-tag images (default 520) in one package through the
# stand-in's registry front, makes the stand-in enforce GitHub's secondary limit (at most 180
# deletes in any 60 s, refused with 403 + retry-after), then runs `dockhand cleanup
# --keep-last 20` once and reports: API calls per deleted tag (owner lookup, version pages and
# deletes, from the stand-in's log), accepted deletes per minute (first to last delete), failed
# items and deletes refused by the limit. 500 deletions take about three minutes at GitHub's pace.
#
#   BENCH_TAGS=520 scripts/bench-github.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v docker-registry >/dev/null || { echo "bench: docker-registry is missing; run scripts/setup.sh" >&2; exit 1; }
command -v skopeo >/dev/null || { echo "bench: skopeo is missing; run scripts/setup.sh" >&2; exit 1; }
export BENCH_TAGS="${BENCH_TAGS:-520}"
echo "bench: $(date -u +%FT%TZ), commit $(git rev-parse --short HEAD), $BENCH_TAGS tags, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
nice -n 10 cargo test --quiet --test it -- --ignored --exact --nocapture \
  registry_github::bench_github_deletes_standin 2>&1 | grep '^BENCH ' || {
  echo "bench: the run failed; rerun with the cargo command above to see why" >&2
  exit 1
}
