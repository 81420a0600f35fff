#!/usr/bin/env bash
# bench/run_runtime.sh — the runtime benchmark suite (issue #2), in one command.
#
#   bench/run_runtime.sh              install what is missing, build, run, report
#   BENCH_RUNS=1 bench/run_runtime.sh one run per program instead of three (quick look)
#   BENCH_ONLY="skynet pingpong" ...  a subset of the benchmarks
#
# 1. Installs the reference runtimes from Debian packages (golang-go erlang-base libcaf-dev
#    g++ time), each only if missing. A package that cannot be installed is reported in the
#    table as UNAVAILABLE, never skipped silently.
# 2. Builds our benchmarks with the release preset (build/bench/bench_*), and the reference
#    programs from bench/ref/ into bench/out/.
# 3. Runs every benchmark for every implementation BENCH_RUNS times (default 3), interleaved
#    (hermes, go, erlang, caf, hermes, ...), each run under a timeout, peak RSS from
#    /usr/bin/time -f %M unless the program reports its own.
# 4. Prints the table of medians with each result's ratio to ours, and writes it as Markdown
#    (bench/out/runtime-results.md) and CSV (bench/out/runtime-results.csv). Every RESULT
#    line of every run is kept in bench/out/runtime-raw.txt.
#
# All implementations get the same number of scheduler threads: HERMES_WORKERS (default 2,
# the benchmark machine's core count) for ours and CAF, GOMAXPROCS for Go, +S N:N for Erlang.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=$root/bench/out
runs=${BENCH_RUNS:-3}
workers=${HERMES_WORKERS:-2}
run_timeout=${BENCH_TIMEOUT:-150}
all_benches="skynet pingpong fanout contention idle interrupt"
read -r -a benches <<<"${BENCH_ONLY:-$all_benches}"
for b in "${benches[@]}"; do
  [[ " $all_benches " == *" $b "* ]] || { echo "unknown benchmark '$b' (have: $all_benches)" >&2; exit 2; }
done
impls=(hermes go erlang caf)
export HERMES_WORKERS=$workers GOMAXPROCS=$workers

mkdir -p "$out"/{go,erlang,caf,logs}
raw=$out/runtime-raw.txt
: >"$raw"
say() { printf '\n=== %s\n' "$*" >&2; }

# ------------------------------------------------------------------ packages
declare -A unavailable=() # impl -> why it cannot run
SUDO=""
if [[ $(id -u) -ne 0 ]]; then
  SUDO="sudo"
fi
apt_updated=0
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
ensure_pkg() {
  have_pkg "$1" && return 0
  if ((apt_updated == 0)); then
    $SUDO apt-get update -qq || true
    apt_updated=1
  fi
  echo "installing $1" >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$1" >&2
}

say "dependencies"
scripts/install-deps.sh >&2 # what our own build needs (cmake, ninja, liburcu, ...)
ensure_pkg time || { echo "FATAL: /usr/bin/time (package time) is required" >&2; exit 1; }
ensure_pkg g++ || unavailable[caf]="g++ could not be installed"
ensure_pkg golang-go || unavailable[go]="golang-go could not be installed"
ensure_pkg erlang-base || unavailable[erlang]="erlang-base could not be installed"
ensure_pkg libcaf-dev || unavailable[caf]="libcaf-dev could not be installed"

# -------------------------------------------------------------------- builds
say "build: ours (release preset)"
cmake --preset release >/dev/null
targets=()
for b in "${benches[@]}"; do targets+=("bench_$b"); done
cmake --build build --target "${targets[@]}" >&2

say "build: reference programs -> bench/out/"
if [[ -z ${unavailable[go]:-} ]]; then
  for b in "${benches[@]}"; do
    if ! GOCACHE=$out/go-cache GOPATH=$out/go-path GO111MODULE=off GOFLAGS='' \
      go build -o "$out/go/$b" "bench/ref/go/$b.go" >&2; then
      unavailable[go]="go build failed (bench/ref/go/$b.go)"
      break
    fi
  done
fi
if [[ -z ${unavailable[erlang]:-} ]]; then
  erl_src=()
  for b in "${benches[@]}"; do erl_src+=("bench/ref/erlang/$b.erl"); done
  if ! erlc -o "$out/erlang" "${erl_src[@]}" >&2; then
    unavailable[erlang]="erlc failed"
  fi
fi
if [[ -z ${unavailable[caf]:-} ]]; then
  for b in "${benches[@]}"; do
    if ! g++ -O2 -std=c++17 -o "$out/caf/$b" "bench/ref/caf/$b.cpp" -lcaf_core -pthread >&2; then
      unavailable[caf]="g++ failed on bench/ref/caf/$b.cpp"
      break
    fi
  done
fi
for i in "${impls[@]}"; do
  if [[ -n ${unavailable[$i]:-} ]]; then
    printf '\n!!!!! %s IS UNAVAILABLE: %s — its column will say so !!!!!\n' "$i" "${unavailable[$i]}" >&2
    echo "UNAVAILABLE impl=$i reason=${unavailable[$i]}" >>"$raw"
  fi
done

# ---------------------------------------------------------------------- runs
command_for() { # bench impl -> the argv in cmd[]
  case $2 in
  hermes) cmd=("$root/build/bench/bench_$1") ;;
  go) cmd=("$out/go/$1") ;;
  erlang) cmd=(erl -noshell +S "$workers:$workers" +P 4000000 -pa "$out/erlang" -run "$1" main) ;;
  caf) cmd=("$out/caf/$1") ;;
  esac
}

run_one() { # bench impl run
  local b=$1 i=$2 r=$3 log=$out/logs/$1-$2-$3.txt rssf=$out/logs/$1-$2-$3.rss rc=0
  command_for "$b" "$i"
  timeout "$run_timeout" /usr/bin/time -f %M -o "$rssf" "${cmd[@]}" >"$log" 2>&1 || rc=$?
  local line
  line=$(grep -m1 '^RESULT ' "$log" || true)
  if ((rc != 0)) || [[ -z $line ]] || [[ $line == *error=* ]]; then
    local why="exit_$rc"
    ((rc == 124)) && why="timeout_${run_timeout}s"
    echo "RUN bench=$b impl=$i run=$r status=failed why=$why" >>"$raw"
    printf '  %-10s %-6s run %d: FAILED (%s), see %s\n' "$b" "$i" "$r" "$why" "$log" >&2
    return 0
  fi
  line=${line#RESULT }
  if [[ $line != *peak_rss_kb=* ]]; then
    line="$line peak_rss_kb=$(grep -Eo '^[0-9]+$' "$rssf" | tail -1)"
  fi
  echo "RUN run=$r status=ok $line" >>"$raw"
  printf '  %-10s %-6s run %d: %s\n' "$b" "$i" "$r" "$line" >&2
}

say "runs: ${benches[*]} x ${impls[*]} x $runs (workers=$workers, timeout ${run_timeout}s each)"
start=$SECONDS
for b in "${benches[@]}"; do
  for ((r = 1; r <= runs; r++)); do
    for i in "${impls[@]}"; do
      [[ -n ${unavailable[$i]:-} ]] && continue
      run_one "$b" "$i" "$r"
    done
  done
done
echo "runs took $((SECONDS - start)) s" >&2

# -------------------------------------------------------------------- report
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
versions="gcc $(gcc -dumpfullversion)"
command -v go >/dev/null && versions+=", $(go version | awk '{print $3}')"
command -v erl >/dev/null &&
  versions+=", Erlang/OTP $(erl -noshell -eval 'io:format("~s",[erlang:system_info(otp_release)]),halt().' 2>/dev/null)"
have_pkg libcaf-dev && versions+=", CAF $(dpkg-query -W -f='${Version}' libcaf-dev)"
header="$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores ($cpu), $(uname -sr), workers=$workers, median of $runs runs; $versions"

awk -v header="$header" -v md="$out/runtime-results.md" -v csv="$out/runtime-results.csv" \
  -v benches="${benches[*]}" '
function med(k, n,   a, i, j, t) {
  n = cnt[k]
  for (i = 1; i <= n; i++) a[i] = val[k, i]
  for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
  return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function fmt(v) { return v >= 100 ? sprintf("%.0f", v) : sprintf("%.1f", v) }
function cell(b, i, m,   k) {
  if (i in unav) return "UNAVAILABLE"
  k = b SUBSEP i SUBSEP m
  if (!(k in cnt)) return fails[b, i] ? "FAILED" : "n/a"
  return fmt(shown(m, med(k))) (fails[b, i] ? " (" fails[b, i] " failed)" : "")
}
function shown(m, v) { return m == "peak_rss_kb" ? v / 1024 : v }
function label(m) { return m == "peak_rss_kb" ? "peak_rss_mb" : m }
function ratio(b, i, m,   k, h, r) {
  k = b SUBSEP i SUBSEP m; h = b SUBSEP "hermes" SUBSEP m
  if (i in unav) return "UNAVAILABLE"
  if (!(k in cnt) || !(h in cnt) || med(h) == 0) return "-"
  r = med(k) / med(h)
  return r >= 10 ? sprintf("%.0fx", r) : r >= 0.1 ? sprintf("%.2fx", r) : sprintf("%.3fx", r)
}
BEGIN {
  split("hermes go erlang caf", impl, " ")
  metrics["skynet"] = "time_ms peak_rss_kb"
  metrics["pingpong"] = "ns_per_msg"
  metrics["fanout"] = "time_ms peak_rss_kb"
  metrics["contention"] = "time_ms msgs_per_s peak_rss_kb"
  metrics["idle"] = "spawn_ms ready_ms bytes_per_actor"
  metrics["interrupt"] = "p50_us p99_us tick_p99_us samples"
}
$1 == "UNAVAILABLE" { split($2, kv, "="); unav[kv[2]] = substr($0, index($0, "reason=") + 7); next }
$1 == "RUN" {
  delete f
  for (n = 2; n <= NF; n++) { p = index($n, "="); if (p) f[substr($n, 1, p - 1)] = substr($n, p + 1) }
  if (f["status"] != "ok") { fails[f["bench"], f["impl"]]++; next }
  for (m in f) { k = f["bench"] SUBSEP f["impl"] SUBSEP m; val[k, ++cnt[k]] = f[m] + 0 }
}
END {
  nb = split(benches, B, " ")
  print "# Runtime benchmarks: hermes vs Go, Erlang, CAF" > md
  print "" > md
  print header > md
  print "" > md
  print "Ratio = other / hermes, so above 1x means ours is lower. Lower is better for every metric except msgs_per_s and samples." > md
  for (i in unav) printf("\n**%s IS UNAVAILABLE: %s**\n", toupper(i), unav[i]) > md
  print "" > md
  print "| benchmark | metric | hermes | go | erlang | caf | go/hermes | erlang/hermes | caf/hermes |" > md
  print "|---|---|---:|---:|---:|---:|---:|---:|---:|" > md
  print "bench,metric,impl,median,runs_ok,runs_failed,ratio_vs_hermes,note" > csv
  printf("\n%-10s %-16s %10s %10s %10s %10s   %9s %9s %9s\n", "benchmark", "metric", "hermes", "go", "erlang", "caf", "go/h", "erlang/h", "caf/h")
  for (x = 1; x <= nb; x++) {
    b = B[x]; nm = split(metrics[b], M, " ")
    for (y = 1; y <= nm; y++) {
      m = M[y]
      printf("| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", b, label(m), cell(b, "hermes", m), cell(b, "go", m),
             cell(b, "erlang", m), cell(b, "caf", m), ratio(b, "go", m), ratio(b, "erlang", m), ratio(b, "caf", m)) > md
      printf("%-10s %-16s %10s %10s %10s %10s   %9s %9s %9s\n", b, label(m), cell(b, "hermes", m), cell(b, "go", m),
             cell(b, "erlang", m), cell(b, "caf", m), ratio(b, "go", m), ratio(b, "erlang", m), ratio(b, "caf", m))
      for (z = 1; z <= 4; z++) {
        i = impl[z]; k = b SUBSEP i SUBSEP m
        note = (i in unav) ? "UNAVAILABLE: " unav[i] : ""
        gsub(/,/, ";", note)
        printf("%s,%s,%s,%s,%d,%d,%s,%s\n", b, m, i, (k in cnt) ? med(k) : "", cnt[k], fails[b, i],
               (i == "hermes" || !(k in cnt)) ? "" : ratio(b, i, m), note) > csv
      }
    }
  }
  # The targets from issue #2, judged on this run.
  print "" > md
  print "## Targets (issue #2)" > md
  print "" > md
  print "| target | measured | verdict |" > md
  print "|---|---|---|" > md
  t = "skynet time < 0.5 x Go"; k = "skynet" SUBSEP "hermes" SUBSEP "time_ms"; g = "skynet" SUBSEP "go" SUBSEP "time_ms"
  if ((k in cnt) && (g in cnt)) target(t, sprintf("%.0f ms vs Go %.0f ms = %.2fx", med(k), med(g), med(k) / med(g)), med(k) < 0.5 * med(g))
  k = "skynet" SUBSEP "hermes" SUBSEP "peak_rss_kb"
  if (k in cnt) target("skynet peak RSS < 64 MB", sprintf("%.1f MB", med(k) / 1024), med(k) < 65536)
  k = "pingpong" SUBSEP "hermes" SUBSEP "ns_per_msg"; g = "pingpong" SUBSEP "go" SUBSEP "ns_per_msg"
  if (k in cnt) target("ping-pong < 100 ns/msg", sprintf("%.1f ns", med(k)), med(k) < 100)
  if ((k in cnt) && (g in cnt)) target("ping-pong faster than Go", sprintf("%.1f vs %.1f ns", med(k), med(g)), med(k) < med(g))
  k = "idle" SUBSEP "hermes" SUBSEP "bytes_per_actor"
  if (k in cnt) target("idle actor <= 256 bytes", sprintf("%.0f bytes", med(k)), med(k) <= 256)
  k = "idle" SUBSEP "hermes" SUBSEP "spawn_ms"
  if (k in cnt) target("1,000,000 spawns < 0.5 s", sprintf("%.0f ms", med(k)), med(k) < 500)
  k = "interrupt" SUBSEP "hermes" SUBSEP "p99_us"
  if (k in cnt) target("interrupt p99 < 50 us, all workers busy", sprintf("%.1f us", med(k)), med(k) < 50)
}
function target(what, got, ok) {
  printf("| %s | %s | %s |\n", what, got, ok ? "met" : "**MISSED**") > md
  printf("target: %-42s %-34s %s\n", what, got, ok ? "met" : "MISSED")
}
' "$raw"

echo
echo "wrote $out/runtime-results.md, $out/runtime-results.csv (raw lines: $raw)"
