#!/usr/bin/env bash
# Print the digest-pinned reference of the image's base, to paste into deploy/Dockerfile's BASE
# after reviewing the new base (changelog, scan). Needs Docker (buildx) and the network.
set -euo pipefail
ref=${1:-python:3.11-slim-bookworm}
digest=$(docker buildx imagetools inspect "$ref" --format '{{json .Manifest}}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["digest"])')
echo "$ref@$digest"
