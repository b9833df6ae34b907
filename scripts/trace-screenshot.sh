#!/usr/bin/env bash
# The visual check of ipc-trace's SVG sequence diagrams: renders each one in headless Chromium,
# fails if the browser finds the XML malformed (its DOM then holds a <parsererror>) or draws
# next to nothing, and leaves the PNGs for a human to look at.
#
#   scripts/trace-screenshot.sh [--out DIR] [SVG...]     # default: docs/trace/*.svg
#
# Without chromium (apt-get install chromium) it prints one line saying so and exits 0: no CI
# check depends on it.
set -euo pipefail

root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
out=
svgs=()
while (($#)); do
  case $1 in
  --out)
    out=${2:?--out needs a directory}
    shift 2
    ;;
  -h | --help)
    sed -n '2,9p' "${BASH_SOURCE[0]}"
    exit 0
    ;;
  *)
    svgs+=("$1")
    shift
    ;;
  esac
done
if ((${#svgs[@]} == 0)); then
  svgs=("$root"/docs/trace/*.svg)
fi

browser=
for candidate in chromium chromium-browser google-chrome; do
  if command -v "$candidate" >/dev/null; then
    browser=$candidate
    break
  fi
done
if [[ -z $browser ]]; then
  echo "SKIP  trace screenshots: chromium is not installed (apt-get install chromium)"
  exit 0
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/trace-shot.XXXXXX")
cleanup() { rm -rf -- "$work"; }
trap cleanup EXIT
if [[ -z $out ]]; then
  out="$work/png"
fi
mkdir -p -- "$out"

headless() {
  timeout 60 "$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars \
    --user-data-dir="$work/profile" "$@" 2>>"$work/browser.log"
}

passed=0
failed=0
for svg in "${svgs[@]}"; do
  name=$(basename -- "$svg" .svg)
  png="$out/$name.png"
  url="file://$(cd -- "$(dirname -- "$svg")" && pwd)/$(basename -- "$svg")"
  # The diagram's own size, so the screenshot holds all of it.
  width=$(grep -o -m1 'width="[0-9.]*"' "$svg" | head -1 | tr -dc '0-9.')
  height=$(grep -o -m1 'height="[0-9.]*"' "$svg" | head -1 | tr -dc '0-9.')
  problem=
  if [[ -z $width || -z $height ]]; then
    problem="no width/height on the <svg> element"
  elif headless --dump-dom "$url" | grep -q parsererror; then
    problem="the browser cannot parse it"
  elif ! headless --window-size="${width%.*},${height%.*}" --screenshot="$png" "$url" >/dev/null; then
    problem="the browser failed to render it"
  elif [[ ! -s $png ]] || (($(stat -c %s -- "$png") < 10000)); then
    problem="the screenshot is (nearly) empty"
  fi
  if [[ -z $problem ]]; then
    passed=$((passed + 1))
    printf 'PASS  %-10s %s\n' "$name" "$png"
  else
    failed=$((failed + 1))
    printf 'FAIL  %-10s %s\n' "$name" "$problem"
  fi
done
echo "$passed passed, $failed failed"
((failed == 0))
