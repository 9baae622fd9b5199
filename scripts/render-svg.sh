#!/bin/sh
# Screenshots SVGs with headless Chromium to check they render in a browser.
# Usage: scripts/render-svg.sh OUT_DIR FILE.svg...
# Writes OUT_DIR/NAME.png per FILE.svg, at the size the SVG declares, and
# prints each path. Fails without a browser (install one: scripts/test-deps.sh)
# or when a screenshot is missing or empty.
set -eu
if [ $# -lt 2 ]; then
    echo "usage: $0 OUT_DIR FILE.svg..." >&2
    exit 2
fi
out=$1; shift
browser=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)}
if [ -z "$browser" ] || [ ! -x "$browser" ]; then
    echo "render-svg: no chromium found (install chromium: scripts/test-deps.sh, or set CHROMIUM)" >&2
    exit 1
fi
mkdir -p "$out"
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
for svg in "$@"; do
    png="$out/$(basename "$svg" .svg).png"
    # The root element's width and height, rounded up: the window is the picture.
    size=$(sed -n 's/.*<svg[^>]* width="\([0-9.]*\)" height="\([0-9.]*\)".*/\1 \2/p' "$svg" | head -n 1 |
        awk '{ printf "%d,%d", ($1 == int($1) ? $1 : int($1) + 1), ($2 == int($2) ? $2 : int($2) + 1) }')
    [ -n "$size" ] || { echo "render-svg: $svg has no width and height on <svg>" >&2; exit 1; }
    rm -f "$png"
    "$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --user-data-dir="$profile" --hide-scrollbars --window-size="$size" \
        --screenshot="$png" "file://$(realpath "$svg")" >"$profile/log" 2>&1 || {
        cat "$profile/log" >&2
        echo "render-svg: chromium failed on $svg" >&2
        exit 1
    }
    test -s "$png" || { cat "$profile/log" >&2; echo "render-svg: $svg did not render" >&2; exit 1; }
    echo "$png"
done
