#!/usr/bin/env bash
# A view of the source as the installed `certplane` namespace, for static tools (mypy,
# import-linter) that cannot see setuptools' editable finder. Directory symlinks, so new
# modules appear without reinstalling; bare `server`, `ca`, … never land on sys.path.
set -euo pipefail
cd "$(dirname "$0")/.."
tree=build/source-tree/certplane
mkdir -p "$tree"
for package in server ca policy agent; do
    ln -sfn "../../../$package" "$tree/$package"
done
