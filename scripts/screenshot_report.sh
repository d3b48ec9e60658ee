#!/usr/bin/env bash
# Renders a profile's report (default report/quick/index.html) in headless Chromium (Debian's `chromium` package) and writes a full-page PNG,
# so a person (or a session) can look at what the report shows.
#   scripts/screenshot_report.sh [report/quick/index.html] [report/quick/screenshot.png] [height]
set -euo pipefail
page="$(realpath "${1:-report/quick/index.html}")"
out="${2:-$(dirname "$page")/screenshot.png}"
height="${3:-6000}"
if ! command -v chromium >/dev/null; then
  echo "chromium not found: apt-get install chromium" >&2; exit 1
fi
profile="$(mktemp -d)"
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
  --disable-component-update --disable-sync --user-data-dir="$profile" --hide-scrollbars \
  --window-size=1200,"$height" --screenshot="$out" "file://$page" 2>/dev/null
rm -rf "$profile"
echo "screenshot: $out"
