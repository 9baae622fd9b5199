#!/bin/sh
# Screenshots SVGs with headless Chromium to check they render in a browser.
# Usage: scripts/render-svg.sh OUT_DIR FILE.svg...   (exits 0 with a note when
# Chromium is absent, so CI without a browser skips cleanly).
set -eu
out=$1; shift
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [ -z "$browser" ]; then
    echo "render-svg: no chromium found, skipping" >&2
    exit 0
fi
mkdir -p "$out"
for svg in "$@"; do
    png="$out/$(basename "$svg" .svg).png"
    "$browser" --headless --no-sandbox --disable-gpu --disable-background-networking \
        --hide-scrollbars --window-size=800,400 --screenshot="$png" "file://$(realpath "$svg")" \
        >/dev/null 2>&1
    test -s "$png" || { echo "render-svg: $svg did not render" >&2; exit 1; }
    echo "$png"
done
