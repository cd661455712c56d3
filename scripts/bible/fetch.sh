#!/usr/bin/env bash
# Fetches Debian's SWORD modules sword-text-kjv (King James Version) and
# sword-text-sparv (Reina-Valera 1909) with apt-get download, unpacks them with
# dpkg -x into a temporary directory and writes train/dev/test JSONL verse pairs.
# Usage: scripts/bible/fetch.sh OUT_DIR
set -euo pipefail
out=${1:?usage: fetch.sh OUT_DIR}
repo=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && apt-get download sword-text-kjv sword-text-sparv)
for deb in "$tmp"/*.deb; do dpkg -x "$deb" "$tmp/root"; done
ztext="$tmp/root/usr/share/sword/modules/texts/ztext"
(cd "$repo" && go run ./scripts/bible -en "$ztext/engKJV2006eb" -es "$ztext/spaRV1909eb" -out "$out")
