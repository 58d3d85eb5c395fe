#!/usr/bin/env bash
# The server hot path, ours against upstream in one run (docs/benchmarks.md §10).
# Both servers run as their own processes with per-connection message limits
# of 1000000; the clients are our Go client (hypha bench rpc), the npm
# hypha-rpc client (interop/js/scenario.mjs) and, when the peers chroot is
# set up, the upstream Python hypha-rpc client (bench/py_echo_bench.py). The
# server's CPU time per call is read from /proc/<pid>/stat before and after
# each run, its read/write system calls from /proc/<pid>/io.
#
# usage: bench/hotpath.sh [SECONDS]
#   env: HYPHA_PEERS_DIR  the peers scripts (default ../shared/peers beside the repository)
#        ONLY=ours        skip upstream (no peers needed)
#        IDLE_CONNS=10000 idle connections for ours; UPSTREAM_IDLE_CONNS=1000 for upstream (slow to connect)
#        CALLERS=200      caller connections of the many-clients row
#        ROWS="go1 go16 go200 npm16 py16 idle"  the measurements to make
#        HYPHA_BIN=path   a built hypha binary to measure (e.g. an older build) instead of building this tree
# Not a test. Prints one line per measurement and a table at the end.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SECS=${1:-5}
PEERS="${HYPHA_PEERS_DIR:-$ROOT/../shared/peers}"
UP_TOKEN="${PEERS_ROOT_TOKEN:-Pz7kQw3Xv9LmN2bR8tYc4HsJd6FgA1eU5oKi0WqZxTn}"
CALLERS=${CALLERS:-200}
IDLE_CONNS=${IDLE_CONNS:-10000}
UPSTREAM_IDLE_CONNS=${UPSTREAM_IDLE_CONNS:-1000}
JS="$ROOT/interop/js"
TMP=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -n "${UP_PORT:-}" ] && "$PEERS/stop-hypha.sh" "$UP_PORT" >/dev/null 2>&1 || true
  rm -rf "$TMP"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
ticks() { awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$1/stat"; }
iocalls() { awk '/^sysc[rw]:/{printf "%s ", $2}' "/proc/$1/io"; }
# per_call PID T0 T1 IO0 IO1 CALLS -> "cpu_us reads writes"
per_call() {
  python3 - "$@" <<'EOF'
import sys
t0, t1, r0, w0, r1, w1, c = sys.argv[1:8]
c = int(c)
if c <= 0:
    print("n/a n/a n/a")
else:
    print("%.1f %.2f %.2f" % ((int(t1) - int(t0)) * 10000 / c, (int(r1) - int(r0)) / c, (int(w1) - int(w0)) / c))
EOF
}
[ -d "$JS/node_modules/hypha-rpc" ] || (cd "$JS" && npm ci --no-audit --no-fund >/dev/null)
if [ -n "${HYPHA_BIN:-}" ]; then
  H=$HYPHA_BIN
else
  (cd "$ROOT" && go build -o "$TMP/hypha" ./cmd/hypha)
  H="$TMP/hypha"
fi
ulimit -n "$(ulimit -Hn)" || true
export HYPHA_WS_MSG_RATE_LIMIT=1000000 HYPHA_WS_MSG_BURST_LIMIT=1000000
echo "# $(date -u +%FT%TZ) $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), $(go version | cut -d' ' -f3), node $(node --version), ulimit -n $(ulimit -n)"

start_ours() {
  OUR_PORT=$(free_port)
  "$H" server --port "$OUR_PORT" --no-workers --root-token bench-root-token-0123456789 --jwt-secret bench \
    --data-dir "$TMP/data-$OUR_PORT" --log-level error --max-pending-connections 20000 >"$TMP/ours.log" 2>&1 &
  OUR_PID=$!
  PIDS+=("$OUR_PID")
  for _ in $(seq 100); do curl -fs -o /dev/null "http://127.0.0.1:$OUR_PORT/health/readiness" && break; sleep 0.1; done
}
start_upstream() {
  UP_PORT=$(free_port)
  "$PEERS/start-hypha.sh" "$UP_PORT" >/dev/null
  UP_PID=$(ss -Hltnp "sport = :$UP_PORT" | sed -n 's/.*pid=\([0-9]*\).*/\1/p' | head -1)
}

declare -A ROW
# go_rpc NAME URL TOKEN PID ARGS... : hypha bench rpc, parsed
go_rpc() {
  local name=$1 url=$2 tok=$3 pid=$4
  shift 4
  local out
  out=$("$H" bench rpc --server-url "$url" --token "$tok" --server-pid "$pid" --duration "${SECS}s" "$@" 2>&1) || true
  local cps p99 cpu rw
  cps=$(sed -n 's/^calls\/s: //p' <<<"$out")
  p99=$(sed -n 's/^p99: //p' <<<"$out")
  cpu=$(sed -n 's/^server cpu per call ([^)]*): //p' <<<"$out")
  rw=$(sed -n 's/^server system calls per call: \([0-9.]*\) reads, \([0-9.]*\) writes/\1 \2/p' <<<"$out")
  echo "$name: calls/s=$cps p99=$p99 server_cpu/call=$cpu reads/writes per call=$rw"
  ROW[$name]="${cps:-n/a} calls/s, p99 ${p99:-n/a}, ${cpu:-n/a} (r/w ${rw:-n/a})"
}
# npm_rpc NAME URL PID
npm_rpc() {
  local name=$1 url=$2 pid=$3
  rm -f "$TMP/stdin" && mkfifo "$TMP/stdin"
  (cd "$JS" && node scenario.mjs serve "$url" '{"service_id":"bench-echo","client_id":"bench-serve"}' \
    <"$TMP/stdin" >"$TMP/serve.out" 2>"$TMP/serve.err") &
  local serve=$!
  exec 7>"$TMP/stdin"
  for _ in $(seq 150); do grep -q '^READY' "$TMP/serve.out" 2>/dev/null && break; sleep 0.1; done
  local sid t0 io0 out t1 io1 calls res
  sid=$(sed -n 's/^READY //p' "$TMP/serve.out" | python3 -c 'import json,sys;print(json.load(sys.stdin)["service_id"])')
  t0=$(ticks "$pid"); io0=$(iocalls "$pid")
  out=$(cd "$JS" && node scenario.mjs echo_bench "$url" \
    "{\"service_id\":\"$sid\",\"seconds\":$SECS,\"concurrency\":16,\"payload_size\":16}" 2>/dev/null | sed -n 's/^RESULT //p')
  t1=$(ticks "$pid"); io1=$(iocalls "$pid")
  exec 7>&-
  wait "$serve" || true
  calls=$(python3 -c 'import json,sys;d=json.loads(sys.argv[1] or "{}");print(d.get("calls",0), d.get("calls_per_s","n/a"), d.get("p99_us","n/a"))' "$out")
  read -r c cps p99 <<<"$calls"
  res=$(per_call "$t0" "$t1" $io0 $io1 "$c")
  read -r cpu r w <<<"$res"
  echo "$name: calls/s=$cps p99=${p99}µs server_cpu/call=${cpu}µs reads/writes per call=$r $w"
  ROW[$name]="$cps calls/s, p99 ${p99} µs, ${cpu} µs (r/w $r $w)"
}
# py_rpc NAME URL PID (upstream's Python client in the peers chroot)
py_rpc() {
  local name=$1 url=$2 pid=$3
  if [ ! -x "$PEERS/run-py.sh" ]; then ROW[$name]="skipped (no peers)"; return; fi
  "$PEERS/run-py.sh" "$ROOT/bench/py_echo_bench.py" "$url" "$SECS" 16 >"$TMP/py.out" 2>"$TMP/py.err" &
  local py=$! t0 io0 t1 io1
  for _ in $(seq 300); do grep -q '^START' "$TMP/py.out" 2>/dev/null && break; sleep 0.05; done
  t0=$(ticks "$pid"); io0=$(iocalls "$pid")
  for _ in $(seq $((SECS * 20 + 600))); do grep -q '^DONE' "$TMP/py.out" 2>/dev/null && break; sleep 0.05; done
  t1=$(ticks "$pid"); io1=$(iocalls "$pid")
  wait "$py" || true
  local out c cps p99 cpu r w
  out=$(sed -n 's/^RESULT //p' "$TMP/py.out")
  read -r c cps p99 <<<"$(python3 -c 'import json,sys;d=json.loads(sys.argv[1] or "{}");print(d.get("calls",0), d.get("calls_per_s","n/a"), d.get("p99_us","n/a"))' "$out")"
  read -r cpu r w <<<"$(per_call "$t0" "$t1" $io0 $io1 "$c")"
  echo "$name: calls/s=$cps p99=${p99}µs server_cpu/call=${cpu}µs reads/writes per call=$r $w"
  ROW[$name]="$cps calls/s, p99 ${p99} µs, ${cpu} µs (r/w $r $w)"
}
# idle NAME URL PID N
idle() {
  local out
  out=$("$H" bench conns --server-url "$1" --server-pid "$3" --connections "$4" 2>&1 | tail -1) || true
  echo "$2: $out"
  ROW[$2]=$(sed -n 's/.*rss_after=\([0-9.]*MB\) per_connection=\([0-9.]*KB\) connect_time=\(.*\)/\2 per connection (\1 after, connected in \3)/p' <<<"$out")
  [ -n "${ROW[$2]}" ] || ROW[$2]="failed: $out"
}

ROWS=${ROWS:-go1 go16 go200 npm16 py16 idle}
want() { [[ " $ROWS " == *" $1 "* ]]; }
KINDS=(ours)
[ "${ONLY:-}" = ours ] || KINDS+=(upstream)
for kind in "${KINDS[@]}"; do
  if [ "$kind" = ours ]; then
    start_ours; URL=http://127.0.0.1:$OUR_PORT; PID=$OUR_PID; TOK=bench-root-token-0123456789
  else
    start_upstream; URL=http://127.0.0.1:$UP_PORT; PID=$UP_PID; TOK=$UP_TOKEN
  fi
  echo "## $kind server $URL pid $PID"
  want go16 && go_rpc "$kind go16" "$URL" "$TOK" "$PID" --concurrency 16
  want go1 && go_rpc "$kind go1" "$URL" "$TOK" "$PID" --concurrency 1
  want go200 && go_rpc "$kind go$CALLERS" "$URL" "$TOK" "$PID" --clients "$CALLERS" --concurrency "$CALLERS" --anonymous-callers
  want npm16 && npm_rpc "$kind npm16" "$URL" "$PID"
  want py16 && py_rpc "$kind py16" "$URL" "$PID"
  if ! want idle; then
    :
  elif [ "$kind" = ours ]; then
    kill "$OUR_PID"; wait "$OUR_PID" 2>/dev/null || true
    start_ours # a fresh process for the memory measurement
    idle "http://127.0.0.1:$OUR_PORT" "ours idle" "$OUR_PID" "$IDLE_CONNS"
  else
    "$PEERS/stop-hypha.sh" "$UP_PORT" >/dev/null 2>&1 || true
    start_upstream # fresh: a process that served the runs above reuses the memory they grew
    idle "http://127.0.0.1:$UP_PORT" "upstream idle" "$UP_PID" "$UPSTREAM_IDLE_CONNS"
  fi
done

echo
echo "| workload (server CPU per call, read/write system calls per call) | ours | upstream |"
echo "|---|---|---|"
for w in $ROWS; do
  [ "$w" = go200 ] && w="go$CALLERS"
  echo "| $w | ${ROW[ours $w]:-} | ${ROW[upstream $w]:-} |"
done
