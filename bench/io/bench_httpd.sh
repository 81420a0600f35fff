#!/usr/bin/env bash
# bench/io/bench_httpd.sh — requests per second of our HTTP server (rt_httpd, answering "ok"
# from an actor) next to nginx serving the same tiny response, both on 127.0.0.1, both
# loaded by the same wrk run; the result is reported as a ratio.
#
#   bench/io/bench_httpd.sh [BUILD_DIR]      default BUILD_DIR: build
#   BENCH_SECONDS=10 BENCH_CONNS=64 BENCH_THREADS=2 BENCH_RUNS=3   (the defaults)
#
# Needs: wrk, nginx-light and python3 (Debian packages); BUILD_DIR/bench/io/bench_httpd_server.
# Every server runs under `timeout`, and each wrk run is bounded by BENCH_SECONDS; nothing
# outlives the script (trap). nginx runs unprivileged from a temporary prefix.
# Prints one RESULT line per server and run, then the medians and the ratio:
#   RESULT bench=httpd_ok impl=hermes rps=... p50_ms=... p99_ms=...
#   RESULT bench=httpd_ok impl=nginx  rps=...
#   RESULT bench=httpd_ok ratio_hermes_to_nginx=0.xx
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
secs=${BENCH_SECONDS:-10}
conns=${BENCH_CONNS:-64}
threads=${BENCH_THREADS:-2}
runs=${BENCH_RUNS:-3}
server=$build/bench/io/bench_httpd_server

for tool in wrk nginx; do
  command -v "$tool" >/dev/null || [[ -x /usr/sbin/$tool ]] || {
    echo "bench_httpd: $tool is missing (apt-get install wrk nginx-light)" >&2; exit 2; }
done
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
[[ -x $server ]] || { echo "bench_httpd: build $server first" >&2; exit 2; }

tmp=$(mktemp -d /tmp/hermes-bench-httpd.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() { # bounded: 10 s
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "bench_httpd: nothing listens on port $1" >&2
  return 1
}

# --- our server
hport=$(free_port)
timeout $((runs * (secs + 5) + 30)) "$server" "$hport" $((runs * (secs + 5) + 20)) \
  >"$tmp/hermes.out" 2>&1 &
pids+=($!)
wait_port "$hport"

# --- nginx, same response, one worker per core like our pool
nport=$(free_port)
mkdir -p "$tmp/nginx/logs"
cat >"$tmp/nginx/nginx.conf" <<EOF
worker_processes ${HERMES_WORKERS:-2};
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$nport;
    location / { default_type text/plain; return 200 "ok"; }
  }
}
EOF
timeout $((runs * (secs + 5) + 30)) "$nginx_bin" -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" \
  -g 'daemon off;' >"$tmp/nginx.out" 2>&1 &
pids+=($!)
wait_port "$nport"

# Sanity: both answer "ok".
for p in "$hport" "$nport"; do
  body=$(python3 -c 'import sys, urllib.request as u; print(u.urlopen(sys.argv[1], timeout=5).read().decode())' "http://127.0.0.1:$p/")
  [[ $body == ok ]] || { echo "bench_httpd: port $p answered '$body'" >&2; exit 1; }
done

run_wrk() { # impl port -> prints rps
  local out
  out=$(timeout $((secs + 15)) wrk -t"$threads" -c"$conns" -d"${secs}s" --latency \
    "http://127.0.0.1:$2/")
  local rps p50 p99 errs
  rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  errs=$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out" | tr '\n' ' ')
  echo "RESULT bench=httpd_ok impl=$1 rps=$rps p50=$p50 p99=$p99 conns=$conns threads=$threads secs=$secs${errs:+ errors=\"$errs\"}" >&2
  echo "$rps"
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

h_all=() n_all=()
for _ in $(seq 1 "$runs"); do   # interleaved, so drift hits both alike
  h_all+=("$(run_wrk hermes "$hport")")
  n_all+=("$(run_wrk nginx "$nport")")
done
h=$(printf '%s\n' "${h_all[@]}" | median)
n=$(printf '%s\n' "${n_all[@]}" | median)
echo "RESULT bench=httpd_ok impl=hermes rps_median=$h runs=$runs"
echo "RESULT bench=httpd_ok impl=nginx rps_median=$n runs=$runs"
awk -v h="$h" -v n="$n" 'BEGIN { printf "RESULT bench=httpd_ok ratio_hermes_to_nginx=%.2f\n", h / n }'
