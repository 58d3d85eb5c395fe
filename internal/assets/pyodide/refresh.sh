#!/usr/bin/env bash
# Refreshes the vendored Pyodide runtime from the npm registry:
#   internal/assets/pyodide/refresh.sh [VERSION]
# It packs the npm package `pyodide` at VERSION (default: the one in
# VERSION), keeps the files a page needs to run Python (no source maps,
# TypeScript declarations or console pages) and stores each gzip-compressed
# without a name or timestamp (so the same input gives the same bytes).
# Commit the result together with VERSION; the Go package embeds the .gz
# files and serves them at /assets/pyodide/<name>.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
version="${1:-$(cat "$here/VERSION")}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "pyodide@$version" >/dev/null && tar xzf "pyodide-$version.tgz")
files="pyodide.mjs pyodide.js pyodide.asm.js pyodide.asm.wasm python_stdlib.zip pyodide-lock.json package.json"
for f in $files; do
  test -f "$tmp/package/$f" || { echo "refresh: pyodide@$version has no $f" >&2; exit 1; }
done
rm -f "$here"/*.gz
for f in $files; do
  gzip -9 -n -c "$tmp/package/$f" >"$here/$f.gz"
done
echo "$version" >"$here/VERSION"
echo "pyodide $version vendored in $here"
