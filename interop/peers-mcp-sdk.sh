#!/usr/bin/env bash
# Installs the Python MCP SDK (the `mcp` package of the python-sdk repository of
# the modelcontextprotocol organisation) into the peers harness's Debian chroot,
# so that upstream's MCP proxy worker can run there and
# TestUpstreamMCPProxyShapes compares it with ours. Opt-in, as root, idempotent.
#
# usage: interop/peers-mcp-sdk.sh SDK_GIT_DIR [TAG]
#   SDK_GIT_DIR  a git dir (bare or not) of that repository; nothing is fetched here
#   TAG          the release to install (default v1.11.0, the version the upstream
#                `hypha` repository pins in its requirements.txt)
# env: PEERS_HOME  the harness's state folder (default ~/.cache/hypha-peers)
#
# What it does (see docs/compatibility.md, section 9):
#  1. installs the SDK's dependencies from Debian inside the chroot (only the
#     missing ones): pydantic 2, pydantic-settings, httpx, httpx-sse, anyio,
#     starlette, sse-starlette, uvicorn, jsonschema, python-multipart;
#  2. exports the tag's src/mcp to /opt/mcp-sdk/mcp in the chroot, with a
#     minimal mcp-<version>.dist-info so that importlib.metadata knows the
#     version (the SDK's low-level server asks for it);
#  3. writes /usr/local/lib/python3.X/dist-packages/zz-peers-mcp-sdk.pth, which
#     puts /opt/mcp-sdk first on sys.path: the harness puts its import-only
#     `mcp` stand-in first on PYTHONPATH, and the real package must win;
#  4. checks that the SDK imports and builds a Tool under the harness's
#     PYTHONPATH. Only then is the .pth written, so a failed install leaves
#     the harness as it was.
# Undo: rm the .pth file (and /opt/mcp-sdk) inside the chroot.
set -euo pipefail
GITDIR="${1:?usage: $0 SDK_GIT_DIR [TAG]}"
TAG="${2:-v1.11.0}"
STATE="${PEERS_HOME:-$HOME/.cache/hypha-peers}"
ROOTFS="$STATE/vendor/trixie-root"
[ -x "$ROOTFS/usr/bin/python3" ] || { echo "no peers chroot at $ROOTFS: run the harness's setup.sh first" >&2; exit 1; }
git --git-dir="$GITDIR" rev-parse -q --verify "$TAG^{commit}" >/dev/null 2>&1 ||
  git -C "$GITDIR" rev-parse -q --verify "$TAG^{commit}" >/dev/null ||
  { echo "$GITDIR has no tag $TAG" >&2; exit 1; }
gitsdk() { if git --git-dir="$GITDIR" rev-parse -q --verify HEAD >/dev/null 2>&1; then git --git-dir="$GITDIR" "$@"; else git -C "$GITDIR" "$@"; fi; }

IN=(chroot "$ROOTFS" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive)

# 1. dependencies, from Debian
DEPS=(python3-pydantic python3-pydantic-settings python3-httpx python3-httpx-sse python3-anyio
  python3-starlette python3-sse-starlette python3-uvicorn python3-jsonschema python3-python-multipart)
MISSING=()
for p in "${DEPS[@]}"; do
  "${IN[@]}" dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || MISSING+=("$p")
done
if [ "${#MISSING[@]}" -gt 0 ]; then
  "${IN[@]}" apt-get install -y --no-install-recommends "${MISSING[@]}" ||
    { "${IN[@]}" apt-get update && "${IN[@]}" apt-get install -y --no-install-recommends "${MISSING[@]}"; }
fi

# 2. the package, from the tag
VERSION="${TAG#v}"
DEST="$ROOTFS/opt/mcp-sdk"
NEW="$ROOTFS/opt/mcp-sdk.new"
rm -rf "$NEW"; mkdir -p "$NEW"
gitsdk archive --format=tar "$TAG" src/mcp | tar -x -C "$NEW" --strip-components=1
mkdir -p "$NEW/mcp-$VERSION.dist-info"
printf 'Metadata-Version: 2.1\nName: mcp\nVersion: %s\n' "$VERSION" >"$NEW/mcp-$VERSION.dist-info/METADATA"
echo "peers-mcp-sdk.sh" >"$NEW/mcp-$VERSION.dist-info/INSTALLER"
gitsdk rev-parse "$TAG^{commit}" >"$NEW/SOURCE_COMMIT"

# 4 (before 3). the check, under the harness's PYTHONPATH with the new copy first
CHECK='import importlib.metadata as m, mcp, mcp.types as t
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamablehttp_client
from mcp.client.sse import sse_client
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
t.Tool(name="probe", inputSchema={"type": "object"})
print("mcp", m.version("mcp"), "from", mcp.__file__)'
# (sys.path.insert, not PYTHONPATH: on a re-run the .pth would put the old copy first)
OUT="$("${IN[@]}" PYTHONPATH=/opt/peers/shims:/opt/peers/hypha:/opt/peers/hypha-rpc/python \
  python3 -c "import sys; sys.path.insert(0, '/opt/mcp-sdk.new')
$CHECK")" || { echo "the SDK at $TAG does not import in the chroot" >&2; exit 1; }
case "$OUT" in *"from /opt/mcp-sdk.new/"*) ;; *) echo "the check imported another mcp: $OUT" >&2; exit 1 ;; esac
rm -rf "$DEST"; mv "$NEW" "$DEST"

# 3. make it win over the stand-in
SITE="$("${IN[@]}" python3 -c 'import sys; print("/usr/local/lib/python%d.%d/dist-packages" % sys.version_info[:2])')"
mkdir -p "$ROOTFS$SITE"
echo "import sys; sys.path.insert(0, '/opt/mcp-sdk')" >"$ROOTFS$SITE/zz-peers-mcp-sdk.pth"
"${IN[@]}" PYTHONPATH=/opt/peers/shims:/opt/peers/hypha:/opt/peers/hypha-rpc/python python3 -c "$CHECK"
