#!/usr/bin/env bash
# The npm hypha-rpc client's echo through a server, for docs/benchmarks.md:
# one Node process serves `echo` (scenario.mjs serve), another calls it
# (scenario.mjs echo_bench). Not a test.
#
# usage: interop/bench-js.sh go|upstream [SECONDS] [CONCURRENCY...]
#   go        builds ./cmd/hypha and runs `hypha server` on a free port
#   upstream  the real Python server via $HYPHA_PEERS_DIR/start-hypha.sh
#             (default ../shared/peers; needs its setup, see its README)
# Both servers run with per-connection message limits of 1000000. Each line
# ends with the server process's CPU time per call (user+system from
# /proc/<pid>/stat, before and after the run), the measure that does not
# depend on how much CPU the clients take, and its read and write system
# calls per call (/proc/<pid>/io).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
KIND=${1:?go|upstream}; SECS=${2:-5}; shift 2 || true
CONCS=("$@"); [ ${#CONCS[@]} -gt 0 ] || CONCS=(1 16)
JS="$ROOT/interop/js"
PEERS="${HYPHA_PEERS_DIR:-$ROOT/../shared/peers}"
[ -d "$JS/node_modules/hypha-rpc" ] || (cd "$JS" && npm ci --no-audit --no-fund >/dev/null)
PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
URL=http://127.0.0.1:$PORT
TMP=$(mktemp -d)
export HYPHA_WS_MSG_RATE_LIMIT=1000000 HYPHA_WS_MSG_BURST_LIMIT=1000000
if [ "$KIND" = go ]; then
  (cd "$ROOT" && go build -o "$TMP/hypha" ./cmd/hypha)
  "$TMP/hypha" server --port "$PORT" --no-workers --data-dir "$TMP/data" --jwt-secret bench >"$TMP/server.log" 2>&1 &
  SPID=$!
  trap 'kill $SPID 2>/dev/null || true; rm -rf "$TMP"' EXIT
  for _ in $(seq 50); do curl -fs -o /dev/null "$URL/health/readiness" && break; sleep 0.1; done
else
  "$PEERS/start-hypha.sh" "$PORT" >/dev/null
  trap '"$PEERS/stop-hypha.sh" '"$PORT"' >/dev/null; rm -rf "$TMP"' EXIT
  SPID=$(ss -Hltnp "sport = :$PORT" | sed -n 's/.*pid=\([0-9]*\).*/\1/p' | head -1)
fi
cpu_ticks() { awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$SPID/stat"; }
sys_calls() { awk '/^sysc[rw]:/{printf "%s ", $2}' "/proc/$SPID/io" 2>/dev/null || echo "0 0"; }
mkfifo "$TMP/stdin"
(cd "$JS" && node scenario.mjs serve "$URL" '{"service_id":"bench-echo","client_id":"bench-serve"}' \
  <"$TMP/stdin" >"$TMP/serve.out" 2>"$TMP/serve.err") &
SERVE=$!
exec 7>"$TMP/stdin"
for _ in $(seq 100); do grep -q '^READY' "$TMP/serve.out" 2>/dev/null && break; sleep 0.1; done
SID=$(sed -n 's/^READY //p' "$TMP/serve.out" | python3 -c 'import json,sys;print(json.load(sys.stdin)["service_id"])')
echo "# $KIND server $URL (pid $SPID), node $(node --version), $(nproc) CPUs"
run() { # concurrency payload
  local t0 t1 out io0 io1
  t0=$(cpu_ticks); io0=$(sys_calls)
  out=$(cd "$JS" && node scenario.mjs echo_bench "$URL" \
    "{\"service_id\":\"$SID\",\"seconds\":$SECS,\"concurrency\":$1,\"payload_size\":$2}" 2>/dev/null |
    sed -n 's/^RESULT //p; s/^ERROR /ERROR /p')
  t1=$(cpu_ticks); io1=$(sys_calls)
  echo "$out $(echo "$out" | python3 -c 'import json,sys
try: c=json.load(sys.stdin)["calls"]
except Exception: c=0
a=sys.argv[1:]
if not c: print("server_cpu_per_call_us=n/a"); sys.exit()
r0,w0,r1,w1=(int(x) for x in (a[2:4]+a[4:6]) if x) if len(a)==6 else (0,0,0,0)
print("server_cpu_per_call_us=%.1f server_reads_per_call=%.2f server_writes_per_call=%.2f" % ((int(a[1])-int(a[0]))*10000/c, (r1-r0)/c, (w1-w0)/c))' "$t0" "$t1" $io0 $io1)"
}
for c in "${CONCS[@]}"; do echo "concurrency=$c payload=16 $(run "$c" 16)"; done
echo "concurrency=4 payload=65536 $(run 4 65536)"
exec 7>&-
wait "$SERVE" || true
