#!/usr/bin/env bash
# bench/gateway/run.sh — the gateway capacity benchmark (issue 11), in one command.
#
#   bench/gateway/run.sh                       the full run (about 6-8 minutes on 2 cores)
#   bench/gateway/run.sh --quick               a short look (under a minute)
#   bench/gateway/run.sh --users 10000 --rooms 10000 --llm-latency 2s --duration 20s
#
# Options (durations take ms, s or m: 500ms, 2s, 1.5s, 1m):
#   --users N        concurrent active users of the capacity ramp's top point (default 10000,
#                    --quick 1000); every user sends the next message as soon as the last is
#                    answered
#   --rooms M        conversations (sessions) those users talk in (default = --users); fewer
#                    rooms than users puts several users in one room (the gateway queues them)
#   --llm-latency L  the scripted model's latency for the capacity ramp (default 2s)
#   --duration D     measured window of each capacity point (default 15s, --quick 4s)
#   --think T        the drive's users pause before writing again, a time drawn evenly from
#                    [0, T) (default 0: at once). With no pause, users of a model with a
#                    fixed latency fall into step and send in bursts (docs/capacity.md)
#   --tokens T       streamed tokens per answer (default 8)
#   --tool-mix PCT   percent of turns in which the model first calls a tool (the agent's own
#                    "todo", no I/O) and answers after the tool ran (default 0)
#   --p99 Y          the added-latency budget of the sizing table (default 20ms)
#   --workers W      scheduler threads of the gateway under test (default HERMES_WORKERS or 2)
#   --build-dir DIR  use (and build in) DIR instead of build/ (the release preset)
#   --no-build       do not build; the binaries must exist
#   --chat-users N   users of the chat-platform step's largest point (default 500, --quick 100;
#                    at most 2,000: the platform doubles are Python on the same cores)
#   --only LIST      a subset of: throughput,interrupt,provider,capacity,drive,chat,scale
#   --name NAME      write bench/out/NAME-* instead of gateway-* (NAME starts with "gateway"),
#                    e.g. to keep a rerun of a noisy point beside the full run
#
# What runs (every server is bench_gw_server: the real host, gateway, agent sessions, store and
# API server on 127.0.0.1, a scripted in-process model; every message is persisted to
# state.db). Each step is bounded (timeouts; the server stops itself after --seconds):
#   throughput  zero-latency model, the API server driven by 1..256 keep-alive connections:
#               turns/s, added latency p50/p99/p99.9, CPU-µs per turn; the knee (where p99
#               starts to climb); one streamed (SSE) point; one with long transcripts
#   provider    the same zero-latency load through the real provider actor and its HTTP client
#               against bench_gw_llm (a scripted OpenAI-compatible server on 127.0.0.1)
#   interrupt   /stop and a new message into a chat whose turn the model holds, 1 at a time,
#               idle and then while the throughput load runs: latency to the model's cancel
#   capacity    the model at --llm-latency, --users x {10,15,20,25,50,100}% connections
#               through the API server (at most 1,000: its HTTP server's connection cap):
#               added latency per load, RSS while all are active, interrupts at the top point
#   drive       the same ramp from the in-process adapter (no HTTP), up to --users chats: the
#               gateway's own capacity; with capacity, the sizing table
#   chat        the real `hermes gateway run` through the Matrix homeserver double and the
#               Mattermost server double (tests/doubles/), the model bench_gw_llm at
#               --llm-latency through the real provider: --chat-users/5 and --chat-users users
#               in direct rooms, and --chat-users in --chat-users/10 shared rooms
#               (bench/gateway/chat_load.py; users played inside the double)
#   scale       1,000 / 10,000 / 100,000 sessions created, then a zero-latency load across all
#               of them, with 1 and 2 workers: idle bytes per session, turns/s, p99
#
# Output: a progress bar on stderr; at the end the sizing table on stdout. Files (bench/out/):
#   gateway-results.csv  one row per measured point
#   gateway-raw.txt      every RESULT/PERSISTED/STATS line, with the step it belongs to, and
#                        each drive point's WINDOWS (p99 and burstiness per 5 s)
#   gateway-report.md    the report (the table printed at the end, and more)
#   gateway.svg          latency vs load, latency vs active users, memory vs sessions
#   logs/gateway-*       each server's stdout/stderr
# Loopback only. The numbers depend on what else the machine runs: the report shows the
# machine's busy cores during every point (machine_cores_busy), so a noisy point is visible.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
out=$root/bench/out
logs=$out/logs

name=gateway tokens=8 tool_mix=0 quick=0 users="" rooms="" llm_ms=2000 duration_s="" p99_ms=20 think_ms=0 workers=${HERMES_WORKERS:-2}
build_dir=$root/build build=1 only_given=0 only="throughput,interrupt,provider,capacity,drive,chat,scale"
chat_users=""

die() { echo "run.sh: $*" >&2; exit 2; }
to_ms() { # "2s" "500ms" "1.5s" "1m" "2000" -> ms
  local v=$1
  if [[ $v =~ ^([0-9]+)ms$ ]]; then echo "${BASH_REMATCH[1]}"
  elif [[ $v =~ ^([0-9]+)(\.([0-9]{1,3}))?s?$ ]]; then
    local f=${BASH_REMATCH[3]:-0}
    while ((${#f} < 3)); do f=${f}0; done
    echo $((BASH_REMATCH[1] * 1000 + 10#$f))
  elif [[ $v =~ ^([0-9]+)m$ ]]; then echo $((BASH_REMATCH[1] * 60000))
  else die "bad duration '$v' (use 500ms, 2s, 1m)"; fi
}
is_int() { [[ $1 =~ ^[0-9]+$ ]] || die "'$1' is not a number"; }

while (($#)); do
  case $1 in
  --quick) quick=1; shift; continue ;;
  --no-build) build=0; shift; continue ;;
  -h | --help) sed -n '2,62p' "$0"; exit 0 ;;
  esac
  (($# >= 2)) || die "$1 needs a value"
  case $1 in
  --users) is_int "$2"; users=$2 ;;
  --rooms) is_int "$2"; rooms=$2 ;;
  --llm-latency) llm_ms=$(to_ms "$2") ;;
  --duration) duration_s=$((($(to_ms "$2") + 999) / 1000)) ;;
  --p99) p99_ms=$(to_ms "$2") ;;
  --think) think_ms=$(to_ms "$2") ;;
  --tokens) is_int "$2"; tokens=$2 ;;
  --tool-mix) is_int "$2"; tool_mix=$2 ;;
  --workers) is_int "$2"; workers=$2 ;;
  --chat-users) is_int "$2"; chat_users=$2 ;;
  --build-dir) build_dir=$(realpath -m "$2") ;;
  --only) only=$2 only_given=1 ;;
  --name) [[ $2 =~ ^gateway[A-Za-z0-9_-]*$ ]] || die "--name must start with gateway (letters, digits, - and _)"
    name=$2 ;;
  *) die "unknown option $1 (see --help)" ;;
  esac
  shift 2
done
if ((quick)); then
  users=${users:-1000} duration_s=${duration_s:-4} chat_users=${chat_users:-100}
else
  users=${users:-10000} duration_s=${duration_s:-15} chat_users=${chat_users:-500}
fi
((chat_users >= 10 && chat_users <= 2000)) || die "--chat-users must be 10..2000"
rooms=${rooms:-$users}
((users >= 1 && users <= 15000)) || die "--users must be 1..15000 (one connection each)"
((rooms >= 1 && rooms <= 1000000)) || die "--rooms must be 1..1000000"
((workers >= 1 && workers <= 64)) || die "--workers must be 1..64"
((tokens <= 10000)) || die "--tokens must be 0..10000"
((tool_mix <= 100)) || die "--tool-mix must be 0..100"
((duration_s >= 1 && duration_s <= 600)) || die "--duration must be 1s..10m"
((llm_ms <= 600000)) || die "--llm-latency must be at most 10m"
((think_ms <= 600000)) || die "--think must be at most 10m"
want() { [[ ,$only, == *,$1,* ]]; }

bin=$build_dir/bench/gateway
mkdir -p "$out" "$logs"
tmp=$(mktemp -d /tmp/hermes-gwbench.XXXXXX)
# nap: sleep without starting a process (a read that times out on a fifo nobody writes)
mkfifo "$tmp/nap"
exec 9<>"$tmp/nap"
nap() { read -r -t "$1" -u 9 || true; }
raw=$out/$name-raw.txt csv=$out/$name-results.csv meta=$out/$name-meta.txt
: >"$raw"
: >"$meta"
echo "scenario,label,workers,conns,sessions,llm_latency_ms,stream,turns_per_s,added_p50_ms,added_p99_ms,added_p999_ms,added_max_ms,errors,server_cpu_us_per_turn,server_cores,machine_cores_busy,rss_kb,bytes_per_session,extra" >"$csv"
kv() { echo "$1=$2" >>"$meta"; }

# ------------------------------------------------------------------ build
if ((build)); then
  echo "building bench_gateway in $build_dir ..." >&2
  if [[ $build_dir == "$root/build" ]]; then
    cmake --preset release >/dev/null
  elif [[ ! -f $build_dir/CMakeCache.txt ]]; then
    cmake -S "$root" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHERMES_WERROR=ON >/dev/null
  fi
  cmake --build "$build_dir" --target bench_gateway hermes >"$logs/$name-build.txt" 2>&1 ||
    { tail -30 "$logs/$name-build.txt" >&2; die "build failed"; }
fi
for b in bench_gw_server bench_gw_load bench_gw_llm; do
  [[ -x $bin/$b ]] || die "$bin/$b is missing (build it, or drop --no-build)"
done
if want chat; then
  [[ -x $build_dir/hermes ]] || die "$build_dir/hermes is missing (build it, or drop --no-build)"
fi

# ------------------------------------------------------------------ progress
# Steps are planned with an estimate of their seconds; the bar is the estimated share done.
plan_total=1 plan_done=0 step_label=""
tty=0
[[ -t 2 ]] && tty=1
bar() { # seconds spent in the current step
  local spent=$1 est=$2 pct width=36 fill
  ((spent > est)) && spent=$est
  pct=$(((plan_done + spent) * 100 / plan_total))
  ((pct > 100)) && pct=100
  fill=$((pct * width / 100))
  if ((tty)); then
    printf -v fill '%*s' "$fill" ''
    printf '\r[%-*s] %3d%%  %-52.52s' "$width" "${fill// /#}" "$pct" "$step_label" >&2
  fi
}
step_begin() { # label est
  step_label=$1
  ((tty)) || printf '[%3d%%] %s\n' $((plan_done * 100 / plan_total)) "$1" >&2
  bar 0 "$2"
}
step_end() { plan_done=$((plan_done + $1)); }
# Run a command in the background with the bar ticking; its stdout goes to $2. The command is
# bounded by its own options and by `timeout` here.
progress_run() { # est out_file limit_s cmd...
  local est=$1 of=$2 limit=$3 t0=$SECONDS rc=0
  shift 3
  timeout "$limit" "$@" >"$of" &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    bar $((SECONDS - t0)) "$est"
    [[ -n ${SRV_PID:-} ]] && sample_rss
    nap 0.5
  done
  wait "$pid" || rc=$?
  return $rc
}

# ------------------------------------------------------------------ the server
SRV_PID="" SRV_OUT="" RSS_MAX=0 SRV_EXTRA=()
# The loops that watch the server while it is measured start no processes (bash builtins
# only): on 2 cores, a tail|grep every tenth of a second is load the server shares the
# cores with.
read_rss() { # the server's VmRSS in KB into RSS_KB
  local k v _
  RSS_KB=0
  while read -r k v _; do
    [[ $k == VmRSS: ]] && { RSS_KB=$v; break; }
  done <"/proc/$SRV_PID/status" 2>/dev/null
  return 0
}
rss_now() { read_rss; echo "$RSS_KB"; }
sample_rss() {
  read_rss
  ((RSS_KB > RSS_MAX)) && RSS_MAX=$RSS_KB
  return 0
}
srv_start() { # tag workers latency_ms limit_s
  local tag=$1 w=$2 lat=$3 limit=$4 fifo=$tmp/in-$1 i
  SRV_HOME=$tmp/home-$tag SRV_OUT=$logs/$name-$tag.out
  rm -rf "$SRV_HOME"
  mkfifo "$fifo"
  HERMES_WORKERS=$w "$bin/bench_gw_server" --home "$SRV_HOME" --workers "$w" --latency-ms "$lat" \
    --tokens "$tokens" --tool-mix "$tool_mix" --seconds "$limit" --max-inflight 40000 "${SRV_EXTRA[@]}" <"$fifo" >"$SRV_OUT" 2>"$logs/$name-$tag.err" &
  SRV_BG=$!
  exec 7>"$fifo"
  for ((i = 0; i < 300; i++)); do
    grep -q '^READY' "$SRV_OUT" 2>/dev/null && break
    kill -0 "$SRV_BG" 2>/dev/null || break
    sleep 0.1
  done
  grep -q '^READY' "$SRV_OUT" || { tail -5 "$logs/$name-$tag.err" >&2; die "server $tag did not start"; }
  SRV_PORT=$(sed -n 's/^READY port=\([0-9]*\).*/\1/p' "$SRV_OUT")
  SRV_PID=$(sed -n 's/^READY.* pid=\([0-9]*\).*/\1/p' "$SRV_OUT")
  SRV_TAG=$tag RSS_MAX=0
}
# Send a command; print the first new output line starting with prefix (within limit_s).
srv_cmd() { # command prefix limit_s
  local n0 i line lines
  mapfile -t lines <"$SRV_OUT"
  n0=${#lines[@]}
  echo "$1" >&7
  for ((i = 0; i < $3 * 10; i++)); do
    mapfile -t -s "$n0" lines <"$SRV_OUT"
    for line in "${lines[@]}"; do
      [[ $line == "$2"* ]] && { echo "$line"; return 0; }
    done
    kill -0 "$SRV_BG" 2>/dev/null || break
    nap 0.1
  done
  echo "TIMEOUT $1"
  return 1
}
srv_stop() { # graceful stop (the store commits everything), then PERSISTED into raw
  local i
  echo quit >&7 || true
  exec 7>&-
  for ((i = 0; i < 600; i++)); do
    kill -0 "$SRV_BG" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$SRV_BG" 2>/dev/null; then
    echo "server $SRV_TAG did not stop in 60 s: killed" >&2
    kill "$SRV_BG" 2>/dev/null || true
  fi
  wait "$SRV_BG" 2>/dev/null || true
  grep -h '^PERSISTED' "$SRV_OUT" | sed "s/^/step=$SRV_TAG /" >>"$raw" || true
  SRV_PID=""
}
cleanup() {
  if [[ -n ${SRV_BG:-} ]] && kill -0 "$SRV_BG" 2>/dev/null; then kill "$SRV_BG" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# ------------------------------------------------------------------ results
field() { # line key -> value ("" if absent)
  local v
  v=$(tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p" | head -1)
  echo "$v"
}
# Append a load RESULT as a CSV row.
csv_row() { # scenario label workers line [bytes_per_session] [extra]
  local l=$4
  echo "$1,$2,$3,$(field "$l" conns),$(field "$l" sessions),$(field "$l" latency_ms),$(field "$l" stream),$(field "$l" turns_per_s),$(field "$l" added_p50_ms),$(field "$l" added_p99_ms),$(field "$l" added_p999_ms),$(field "$l" added_max_ms),$(field "$l" errors),$(field "$l" server_cpu_us_per_turn),$(field "$l" server_cores),$(field "$l" machine_cores_busy),$(field "$l" rss_kb),${5:-},${6:-}" >>"$csv"
}
# One closed-loop load point through the API server; the RESULT line goes to $LOAD_LINE.
load_point() { # est label conns sessions seconds warmup latency_ms stream prefix
  local f=$tmp/load.out ramp=0
  (($7 > 0)) && ramp=$7 # spread the first requests over the model's latency (no lock-step)
  progress_run "$1" "$f" $(($5 + $6 + 90)) "$bin/bench_gw_load" --port "$SRV_PORT" --pid "$SRV_PID" \
    --conns "$3" --sessions "$4" --seconds "$5" --warmup "$6" --latency-ms "$7" --stream "$8" \
    --prefix "$9" --label "$2" --ramp-ms "$ramp" --drain-s 60 || true
  LOAD_LINE=$(grep -m1 '^RESULT' "$f" || echo "RESULT bench=gw_load label=$2 error=no_result")
  echo "step=$SRV_TAG $LOAD_LINE" >>"$raw"
}

# ------------------------------------------------------------------ plan
if ((quick)); then
  tp_conns="1 16 64" tp_secs=2 tp_warm=1 probes=40 int_secs=6
  scale_sizes="10000" scale_workers="$workers" scale_secs=3 cap_pcts="25 100"
  ((only_given)) || only=throughput,interrupt,capacity,scale # drive, provider when asked for
else
  tp_conns="1 4 16 64 128 256" tp_secs=5 tp_warm=1 probes=200 int_secs=20
  scale_sizes="1000 10000 100000" scale_workers="1 2" scale_secs=6 cap_pcts="10 15 20 25 50 100"
fi
api_max_users=1000 # rt_httpd's default max_conns (1,024), less headroom for the probes
cap_points="" drive_points=""
for pc in $cap_pcts; do
  u=$((users * pc / 100))
  ((u < 1)) && u=1
  [[ " $drive_points " == *" $u "* ]] || drive_points="$drive_points $u"
  ((u > api_max_users)) && u=$api_max_users
  [[ " $cap_points " == *" $u "* ]] || cap_points="$cap_points $u"
done
cap_warm=$(((2 * llm_ms + 1999) / 1000 + 1))
est_tp=0 est_int=0 est_cap=0 est_drive=0 est_scale=0
for c in $tp_conns; do est_tp=$((est_tp + tp_secs + tp_warm + 1)); done
((quick)) || est_tp=$((est_tp + tp_secs + tp_warm + 3 + 2 * tp_secs + 2))
est_int=$((int_secs + 6))
for u in $cap_points; do est_cap=$((est_cap + duration_s + cap_warm + 2 + u / 2000)); done
for u in $drive_points; do est_drive=$((est_drive + duration_s + cap_warm + 2 + u / 2000)); done
for w in $scale_workers; do for s in $scale_sizes; do est_scale=$((est_scale + scale_secs + 4 + s / 1500)); done; done
# chat: [platform users rooms] points; each costs warm-up + window + start-up (~8 s)
chat_points="matrix $((chat_users / 5)) $((chat_users / 5)) matrix $chat_users $chat_users matrix $chat_users $((chat_users / 10))
mattermost $((chat_users / 5)) $((chat_users / 5)) mattermost $chat_users $chat_users mattermost $chat_users $((chat_users / 10))"
est_chat=$((6 * (duration_s + cap_warm + 8)))
want throughput && plan_total=$((plan_total + est_tp))
want interrupt && plan_total=$((plan_total + est_int))
want capacity && plan_total=$((plan_total + est_cap))
want provider && plan_total=$((plan_total + tp_secs + 6))
want drive && plan_total=$((plan_total + est_drive))
want chat && plan_total=$((plan_total + est_chat))
want scale && plan_total=$((plan_total + est_scale))

kv date "$(date -u +%FT%TZ)"
kv host_cpus "$(nproc)"
kv cpu_model "$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)"
kv mem_total_mb "$(awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo)"
kv loadavg_start "$(cut -d' ' -f1-3 /proc/loadavg)"
kv workers "$workers"
kv users "$users"
kv rooms "$rooms"
kv llm_latency_ms "$llm_ms"
kv think_ms "$think_ms"
kv duration_s "$duration_s"
kv p99_budget_ms "$p99_ms"
kv tokens "$tokens"
kv tool_mix "$tool_mix"
kv quick "$quick"
echo "gateway capacity benchmark: $(nproc) cores (shared with whatever else runs: load average $(cut -d' ' -f1 /proc/loadavg)), ~$((plan_total / 60 + 1)) min" >&2
t_begin=$SECONDS

# ------------------------------------------------------------------ throughput + interrupt
if want throughput || want interrupt; then
  srv_start tp "$workers" 0 $((est_tp + est_int + 300))
  kv rss_empty_kb "$(rss_now)"
  if want throughput; then
    for c in $tp_conns; do
      step_begin "throughput: $c connections, zero-latency model" $((tp_secs + tp_warm + 1))
      # fresh sessions for every point, so that transcripts are equally short (0-30 turns)
      load_point $((tp_secs + tp_warm + 1)) "tp-c$c" "$c" $((c * 8 > 1000 ? c * 8 : 1000)) "$tp_secs" "$tp_warm" 0 0 "tp$c"
      csv_row throughput "tp-c$c" "$workers" "$LOAD_LINE"
      step_end $((tp_secs + tp_warm + 1))
    done
    ((quick)) || step_begin "throughput: 64 connections, streamed (SSE)" $((tp_secs + tp_warm + 3))
    ((quick)) || load_point $((tp_secs + tp_warm + 3)) "tp-sse-c64" 64 1000 "$tp_secs" "$tp_warm" 0 1 tp
    ((quick)) || csv_row throughput_sse "tp-sse-c64" "$workers" "$LOAD_LINE"
    ((quick)) || step_end $((tp_secs + tp_warm + 3))
    # long transcripts: 50 sessions take every turn, so each grows by hundreds of messages
    ((quick)) || step_begin "throughput: 64 connections, 50 sessions (long transcripts)" $((2 * tp_secs + 2))
    ((quick)) || load_point $((2 * tp_secs + 2)) "tp-hist-c64" 64 50 $((2 * tp_secs)) 1 0 0 hist
    ((quick)) || csv_row throughput_history "tp-hist-c64" "$workers" "$LOAD_LINE" "" \
      "transcript_msgs_end=$(($(field "$LOAD_LINE" turns) * 2 / 50))"
    ((quick)) || step_end $((2 * tp_secs + 2))
  fi
  if want interrupt; then
    step_begin "interrupt latency, idle then under load" "$est_int"
    line=$(srv_cmd "probe $((probes / 4))" RESULT 70)
    echo "step=interrupt-idle $line" >>"$raw"
    f=$tmp/int-load.out
    timeout $((int_secs + 90)) "$bin/bench_gw_load" --port "$SRV_PORT" --pid "$SRV_PID" --conns 64 \
      --sessions 1000 --seconds "$int_secs" --warmup 1 --prefix tp --label int-load --drain-s 60 >"$f" &
    lp=$!
    t0=$SECONDS
    while ((SECONDS - t0 < 2)); do bar $((SECONDS - t0)) "$est_int"; sleep 0.5; done
    srv_cmd "probe $probes" RESULT 70 >"$tmp/int.out" &
    pp=$!
    while kill -0 "$pp" 2>/dev/null || kill -0 "$lp" 2>/dev/null; do bar $((SECONDS - t0)) "$est_int"; sleep 0.5; done
    wait "$pp" || true
    wait "$lp" || true
    echo "step=interrupt-load $(cat "$tmp/int.out")" >>"$raw"
    LOAD_LINE=$(grep -m1 '^RESULT' "$f" || echo "RESULT error=no_result")
    echo "step=interrupt-load $LOAD_LINE" >>"$raw"
    csv_row interrupt_load int-load "$workers" "$LOAD_LINE"
    step_end "$est_int"
  fi
  echo "step=tp $(srv_cmd stats STATS 10)" >>"$raw"
  srv_stop
fi

# ------------------------------------------------------------------ the real provider path
# The provider actor and its HTTP client against bench_gw_llm (zero latency) instead of the
# in-process model: what a turn costs on the path users run.
if want provider; then
  step_begin "real provider: 64 connections, HTTP to a scripted LLM" $((tp_secs + 6))
  "$bin/bench_gw_llm" --port 0 --tokens "$tokens" --seconds $((tp_secs + 120)) >"$logs/$name-llm.out" \
    2>"$logs/$name-llm.err" &
  llm_bg=$!
  for ((i = 0; i < 100; i++)); do
    grep -q '^READY' "$logs/$name-llm.out" 2>/dev/null && break
    sleep 0.1
  done
  lport=$(sed -n 's/^READY port=\([0-9]*\).*/\1/p' "$logs/$name-llm.out")
  [[ -n $lport ]] || die "bench_gw_llm did not start"
  SRV_EXTRA=(--llm "http://127.0.0.1:$lport/v1" --provider-inflight 256)
  srv_start provider "$workers" 0 $((tp_secs + 120))
  SRV_EXTRA=()
  load_point $((tp_secs + 5)) "provider-c64" 64 1000 "$tp_secs" "$tp_warm" 0 0 prov
  csv_row provider "provider-c64" "$workers" "$LOAD_LINE"
  srv_stop
  kill "$llm_bg" 2>/dev/null || true
  wait "$llm_bg" 2>/dev/null || true
  step_end $((tp_secs + 6))
fi

# ------------------------------------------------------------------ capacity at the LLM's latency
# Through the API server: at most api_max_users connections (rt_httpd's default connection cap
# is 1,024 and the API server does not raise it; see docs/capacity.md). The interrupt probe
# runs again while the top point's users are all active.
if want capacity; then
  srv_start cap "$workers" "$llm_ms" $((est_cap + 300))
  rss0=$(rss_now)
  kv cap_rss_start_kb "$rss0"
  top=${cap_points##* }
  for u in $cap_points; do
    e=$((duration_s + cap_warm + 2 + u / 2000))
    step_begin "API server: $u users, LLM latency ${llm_ms} ms" "$e"
    s=$((rooms * u / users))
    ((s < 1)) && s=1
    RSS_MAX=0 ip=""
    if [[ $u == "$top" ]] && want interrupt; then
      (sleep $((cap_warm + 1)) && srv_cmd "probe $((probes / 2))" RESULT 70 >"$tmp/int-cap.out") &
      ip=$!
    fi
    load_point "$e" "cap-u$u" "$u" "$s" "$duration_s" "$cap_warm" "$llm_ms" 0 "cap$u"
    csv_row capacity "cap-u$u" "$workers" "$LOAD_LINE" "" "rss_peak_kb=$RSS_MAX"
    if [[ -n $ip ]]; then
      wait "$ip" || true
      echo "step=interrupt-cap users=$u $(cat "$tmp/int-cap.out" 2>/dev/null)" >>"$raw"
    fi
    step_end "$e"
  done
  kv cap_rss_peak_kb "$RSS_MAX"
  echo "step=cap $(srv_cmd stats STATS 10)" >>"$raw"
  srv_stop
fi

# ------------------------------------------------------------------ the in-process adapter
# The same closed loop without HTTP, up to --users chats: the gateway, agent sessions and
# store on their own. Chats are reused from point to point, so each point's peak RSS over the
# empty server is what that many active chats cost.
if want drive; then
  srv_start drive "$workers" "$llm_ms" $((est_drive + 300))
  rss0=$(rss_now)
  kv drive_rss_start_kb "$rss0"
  secs=$((duration_s + cap_warm))
  for u in $drive_points; do
    e=$((secs + 2 + u / 2000))
    step_begin "in-process adapter: $u chats, LLM latency ${llm_ms} ms" "$e"
    t0=$SECONDS
    srv_cmd "drive $u $secs $think_ms" OK 10 >/dev/null || true
    RSS_MAX=0
    while ((SECONDS - t0 < secs)); do bar $((SECONDS - t0)) "$e"; sample_rss; nap 0.5; done
    line=$(srv_cmd drive_result RESULT $((secs + 60)) || true)
    echo "step=drive rss_start_kb=$rss0 rss_peak_kb=$RSS_MAX $line" >>"$raw"
    mapfile -t win < <(grep '^WINDOWS' "$SRV_OUT")
    ((${#win[@]})) && echo "step=drive-u$u ${win[-1]}" >>"$raw"
    csv_row drive "drive-u$u" "$workers" "$line conns=$u" \
      $(((RSS_MAX - rss0) * 1024 / u)) "rss_peak_kb=$RSS_MAX failures=$(field "$line" failures)"
    step_end "$e"
  done
  srv_stop
fi

# ------------------------------------------------------------------ through chat platforms
# The real gateway binary, its Matrix or Mattermost adapter, the platform double playing the
# users (tests/doubles/autopilot.py), the real provider against bench_gw_llm. The doubles are
# Python: their own cores are in the RESULT (double_cores), and they are what limits the rate.
if want chat; then
  set -- $chat_points
  while (($# >= 3)); do
    plat=$1 u=$2 r=$3
    shift 3
    e=$((duration_s + cap_warm + 8))
    kind=dm
    ((r < u)) && kind=rooms$r
    step_begin "$plat: $u users ($kind), LLM latency ${llm_ms} ms" "$e"
    f=$tmp/chat.out
    progress_run "$e" "$f" $((e + 240)) /usr/bin/python3 "$root/bench/gateway/chat_load.py" \
      --platform "$plat" --users "$u" --rooms "$r" --llm-latency-ms "$llm_ms" --tokens "$tokens" \
      --duration "$duration_s" --warmup "$cap_warm" --workers "$workers" \
      --hermes "$build_dir/hermes" --llm-bin "$bin/bench_gw_llm" --label "$plat-$kind-u$u" \
      --log-dir "$logs" --quiet 2>>"$logs/$name-chat.err" || true
    line=$(grep -m1 '^RESULT' "$f" || echo "RESULT bench=gw_chat label=$plat-$kind-u$u error=no_result")
    echo "step=chat $line" >>"$raw"
    csv_row "chat_$plat" "$plat-$kind-u$u" "$workers" \
      "$line conns=$u sessions=$u latency_ms=$llm_ms stream=0" "$(field "$line" bytes_per_active_session)" \
      "rooms=$r double_cores=$(field "$line" double_cores) rss_idle_kb=$(field "$line" rss_idle_kb)"
    step_end "$e"
  done
fi

# ------------------------------------------------------------------ scaling: sessions x workers
if want scale; then
  for w in $scale_workers; do
    for s in $scale_sizes; do
      e=$((scale_secs + 4 + s / 1500))
      step_begin "scale: $s sessions, $w worker(s)" "$e"
      srv_start "scale-w$w-s$s" "$w" 0 $((e + 900))
      f=$tmp/create.out
      h0=$(srv_cmd heap HEAP 10 || true)
      progress_run $((e - scale_secs - 2)) "$f" $((60 + s / 200)) "$bin/bench_gw_load" --port "$SRV_PORT" \
        --pid "$SRV_PID" --conns 64 --create "$s" --prefix sc --label "create-w$w-s$s" \
        --settle-ms 1500 --drain-s 30 || true
      cl=$(grep -m1 '^RESULT' "$f" || echo "RESULT error=no_result")
      h1=$(srv_cmd heap HEAP 10 || true)
      echo "step=scale-w$w-s$s $cl" >>"$raw"
      echo "step=scale-w$w-s$s-heap-before $h0" >>"$raw"
      echo "step=scale-w$w-s$s-heap-after $h1" >>"$raw"
      hb="" ha=$(field "$h0" in_use) hz=$(field "$h1" in_use)
      [[ -n $ha && -n $hz ]] && hb=$(((hz - ha) / s))
      csv_row scale_create "create-w$w-s$s" "$w" "$cl" "$(field "$cl" bytes_per_session)" \
        "rss_before_kb=$(field "$cl" rss_before_kb) heap_bytes_per_session=$hb schema_bytes=$(field "$h1" schema_bytes) system_prompt_bytes=$(field "$h1" system_prompt_bytes)"
      load_point "$e" "scale-w$w-s$s" 64 "$s" "$scale_secs" 1 0 0 sc
      csv_row scale "scale-w$w-s$s" "$w" "$LOAD_LINE"
      echo "step=scale-w$w-s$s $(srv_cmd stats STATS 10)" >>"$raw"
      srv_stop
      step_end "$e"
    done
  done
  # Resting conversations: 10,000 sessions once their agents left memory (gateway.agent_idle_s,
  # 2 s here instead of 120 s): what an idle conversation costs while its chat actor waits.
  # Twice: the first batch's RSS includes the peak of 10,000 loaded agents, whose freed pages
  # glibc keeps and the next agents reuse; the second batch shows what one more resting
  # conversation adds on a gateway that has been running.
  s=10000 e=$((26 + s / 750))
  step_begin "scale: 2 x $s resting conversations" "$e"
  export GATEWAY_AGENT_IDLE=2
  srv_start "rest-s$s" "$workers" 0 $((e + 300))
  unset GATEWAY_AGENT_IDLE
  f=$tmp/create.out
  h0=$(srv_cmd heap HEAP 10 || true)
  rest_batch() { # prefix: create s sessions, wait until their agents rested; sets cl, st, a, h
    progress_run $((e / 2 - 8)) "$f" $((60 + s / 200)) "$bin/bench_gw_load" --port "$SRV_PORT" \
      --pid "$SRV_PID" --conns 64 --create "$s" --prefix "$1" --label "rest-s$s" \
      --settle-ms 500 --drain-s 30 || true
    cl=$(grep -m1 '^RESULT' "$f" || echo "RESULT error=no_result")
    for ((i = 0; i < 60; i++)); do # until only the chat actors are left (bounded: 30 s)
      st=$(srv_cmd stats STATS 10 || true)
      a=$(field "$st" actors)
      [[ -n $a ]] && ((a <= n_chats + s + 50)) && break
      sleep 0.5
    done
    n_chats=$((n_chats + s))
    sleep 6 # one router tick: the writer hands freed pages back (gw_io.c)
    h=$(srv_cmd heap HEAP 10 || true)
  }
  n_chats=0
  rest_batch rs
  cl1=$cl h1=$h
  rest_batch rt
  h2=$h
  echo "step=rest-s$s $cl1" >>"$raw"
  echo "step=rest-s$s-stats $st" >>"$raw"
  echo "step=rest-s$s-heap-before $h0" >>"$raw"
  echo "step=rest-s$s-heap-after $h1" >>"$raw"
  echo "step=rest-s$s-heap-second $h2" >>"$raw"
  rb=$(field "$cl1" rss_before_kb) ra=$(field "$h1" rss_kb) r2=$(field "$h2" rss_kb)
  hb="" rest="" rest2="" hb2=""
  [[ -n $rb && -n $ra ]] && rest=$(((ra - rb) * 1024 / s))
  [[ -n $ra && -n $r2 ]] && rest2=$(((r2 - ra) * 1024 / s))
  ha=$(field "$h0" in_use) hz=$(field "$h1" in_use) hy=$(field "$h2" in_use)
  [[ -n $ha && -n $hz ]] && hb=$(((hz - ha) / s))
  [[ -n $hz && -n $hy ]] && hb2=$(((hy - hz) / s))
  csv_row scale_rest "rest-s$s" "$workers" "$cl1" "$rest" \
    "heap_bytes_per_session=$hb actors_left=$a resident_bytes_per_session=$(field "$cl1" bytes_per_session) more_rss_bytes_per_session=$rest2 more_heap_bytes_per_session=$hb2"
  srv_stop
  step_end "$e"
fi

((tty)) && printf '\r%*s\r' 100 '' >&2
kv loadavg_end "$(cut -d' ' -f1-3 /proc/loadavg)"
kv wall_s $((SECONDS - t_begin))
echo "done in $((SECONDS - t_begin)) s" >&2
PYTHONDONTWRITEBYTECODE=1 python3 "$root/bench/gateway/report.py" --csv "$csv" --raw "$raw" --meta "$meta" \
  --md "$out/$name-report.md" --svg "$out/$name.svg"
