#!/usr/bin/env bash
# bench/ingest/run.sh: the ingest benchmarks of issue #3, side by side in one run on this machine.
#   senml_batch_rR_cN  HTTP SenML into sinergi, 1,000 readings a request, one of each of 1,000
#                      sensors (125 stations x 8) through a gateway token, durable (fsync per
#                      commit), QC on; N connections
#   plain_sqlite_rR    the same rows, same order, by a plain C program: SQLite WAL with
#                      synchronous=FULL, 10,000-row transactions, index on (sensor, time)
#   plain_sqlite_by_sensor_rR  the same rows sorted by (sensor, time): SQLite's best order
#   influxdb_rR_cN     the same rows as line protocol, 5,000 points a request, InfluxDB 1.x from
#                      Debian, WAL fsynced before every answer (wal-fsync-delay = 0s)
#   single_reading_rR  HTTP, one reading a request over keep-alive, 1,000 water-level stations
#   latest_*           GET /api/v1/stations/latest with 1,000 stations (wrk): alone, beside paced
#                      single-reading ingest, and beside single-reading ingest at full speed
#   mqtt_qosQ_rR       MQTT, one reading per message from 1,000 devices (water-level stations),
#                      QoS 0 and 1: sinergi (readings committed) and, on a second broker with the
#                      same config and accounts, the same messages to a bare subscriber
# R is the round: the three batch targets are interleaved round by round, and each target's best
# round is kept (other load on a shared machine only lowers throughput). Every store starts empty;
# counts are verified in each store afterwards. Prints a markdown table, keeps raw output in
# bench/results/ingest-<UTC time>/, stops every process it started (also on Ctrl-C).
#
# Settings (environment): BENCH_DURATION (s per measurement, 1..20, default 6), BENCH_ROUNDS
# (rounds of the batch comparison and of the single-reading run, default 3), BENCH_CONNECTIONS
# (batch ingest connections, the same for sinergi and InfluxDB, one run per value, default 16),
# BENCH_SINGLE_CONNECTIONS (single-reading connections, 64), BENCH_LATEST_CONNECTIONS (wrk
# connections polling latest, 32), BENCH_LATEST_INGEST_RATE (readings/s of the paced ingest
# beside latest, 1000 = every station once a second), BENCH_INFLUX_POINTS (5000),
# BENCH_MQTT_MESSAGES (messages per MQTT run, 200000), BENCH_MQTT_ROUNDS (default BENCH_ROUNDS),
# BENCH_MQTT_CONNECTIONS (devices, 1..1000, 1000), BENCH_MQTT_WINDOW (messages in flight per
# device, 1), BENCH_MQTT_MAX_SECONDS (cap per MQTT measurement, 1..20, 20), BENCH_ONLY (mqtt:
# only section 6; http: only sections 1-5; empty: everything), BENCH_WAIT_QUIET (seconds to
# wait at most for an idle machine before starting, 0), BENCH_STRICT (1: exit 1 when a target is
# missed), SINERGI_BIN (default: build/release/sinergi, built here with make). See
# docs/BENCHMARKS.md, "Ingest (issue #3)".
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"

DURATION=${BENCH_DURATION:-6}
ROUNDS=${BENCH_ROUNDS:-3}
CONNS=${BENCH_CONNECTIONS:-16}
SINGLE_CONNS=${BENCH_SINGLE_CONNECTIONS:-64}
LATEST_CONNS=${BENCH_LATEST_CONNECTIONS:-32}
LATEST_RATE=${BENCH_LATEST_INGEST_RATE:-1000}
INFLUX_POINTS=${BENCH_INFLUX_POINTS:-5000}
STRICT=${BENCH_STRICT:-0}
ONLY=${BENCH_ONLY:-}
MQTT_MESSAGES=${BENCH_MQTT_MESSAGES:-200000}
MQTT_ROUNDS=${BENCH_MQTT_ROUNDS:-$ROUNDS}
MQTT_CONNS=${BENCH_MQTT_CONNECTIONS:-1000}
MQTT_WINDOW=${BENCH_MQTT_WINDOW:-1}
MQTT_CAP=${BENCH_MQTT_MAX_SECONDS:-20}
CORES=$(nproc)
HZ=$(getconf CLK_TCK)

BENCH_NAME=bench/ingest
# shellcheck source=bench/lib.sh
. bench/lib.sh

case $DURATION in '' | *[!0-9]*) die "BENCH_DURATION must be whole seconds" ;; esac
case $ROUNDS in '' | *[!0-9]* | 0) die "BENCH_ROUNDS must be 1 or more" ;; esac
{ [ "$DURATION" -ge 1 ] && [ "$DURATION" -le 20 ]; } || die "BENCH_DURATION must be 1..20 seconds"
case $ONLY in '' | mqtt | http) ;; *) die "BENCH_ONLY must be empty (everything), 'mqtt' or 'http'" ;; esac
RUN_HTTP=1 RUN_MQTT=1
[ "$ONLY" = mqtt ] && RUN_HTTP=0
[ "$ONLY" = http ] && RUN_MQTT=0
case $MQTT_MESSAGES in '' | *[!0-9]* | 0) die "BENCH_MQTT_MESSAGES must be 1 or more" ;; esac
case $MQTT_ROUNDS in '' | *[!0-9]* | 0) die "BENCH_MQTT_ROUNDS must be 1 or more" ;; esac
case $MQTT_CONNS in '' | *[!0-9]* | 0) die "BENCH_MQTT_CONNECTIONS must be 1..1000" ;; esac
case $MQTT_WINDOW in '' | *[!0-9]* | 0) die "BENCH_MQTT_WINDOW must be 1..511" ;; esac
case $MQTT_CAP in '' | *[!0-9]* | 0) die "BENCH_MQTT_MAX_SECONDS must be 1..20" ;; esac
[ "$MQTT_CONNS" -le 1000 ] || die "BENCH_MQTT_CONNECTIONS must be 1..1000 (one device a station)"
[ "$MQTT_WINDOW" -le 511 ] || die "BENCH_MQTT_WINDOW must be 1..511"
[ "$MQTT_CAP" -le 20 ] || die "BENCH_MQTT_MAX_SECONDS must be 1..20"
for tool in cc pkg-config sqlite3 curl python3 awk mosquitto_ctrl; do
    command -v "$tool" >/dev/null || die "'$tool' is missing; run scripts/deps.sh"
done
pkg-config --exists libmosquitto || die "libmosquitto-dev is missing; run scripts/deps.sh"
[ "$RUN_HTTP" = 0 ] || command -v wrk >/dev/null || die "'wrk' is missing; run scripts/deps.sh"
if [ "$RUN_HTTP" = 1 ] && ! command -v influxd >/dev/null; then
    # InfluxDB 1.x is Debian's package 'influxdb' (bookworm: 1.6.7). Its postinst may start a
    # system service on :8086; this script runs its own instance on other ports and dirs.
    say "installing Debian's influxdb (InfluxDB 1.x) for the comparison"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends influxdb \
        >/dev/null || die "apt-get install influxdb failed (run 'apt-get update' first?)"
fi

# ---- build -------------------------------------------------------------------------------
BUILD=build/bench
mkdir -p "$BUILD"
CFLAGS_BENCH="-std=c17 -O2 -g -Wall -Wextra -Wshadow"
if [ ! -x "$BUILD/ingest_load" ] || [ bench/ingest/ingest_load.c -nt "$BUILD/ingest_load" ] ||
    [ bench/ingest/dataset.h -nt "$BUILD/ingest_load" ]; then
    # shellcheck disable=SC2086
    cc $CFLAGS_BENCH -o "$BUILD/ingest_load" bench/ingest/ingest_load.c -lpthread
fi
if [ ! -x "$BUILD/plain_sqlite" ] || [ bench/ingest/plain_sqlite.c -nt "$BUILD/plain_sqlite" ] ||
    [ bench/ingest/dataset.h -nt "$BUILD/plain_sqlite" ]; then
    # shellcheck disable=SC2046,SC2086
    cc $CFLAGS_BENCH $(pkg-config --cflags sqlite3) -o "$BUILD/plain_sqlite" \
        bench/ingest/plain_sqlite.c $(pkg-config --libs sqlite3)
fi
if [ ! -x "$BUILD/mqtt_load" ] || [ bench/ingest/mqtt_load.c -nt "$BUILD/mqtt_load" ] ||
    [ bench/ingest/dataset.h -nt "$BUILD/mqtt_load" ]; then
    # libmosquitto callbacks have parameters this tool does not use.
    # shellcheck disable=SC2046,SC2086
    cc $CFLAGS_BENCH -Wno-unused-parameter $(pkg-config --cflags libmosquitto) \
        -o "$BUILD/mqtt_load" bench/ingest/mqtt_load.c $(pkg-config --libs libmosquitto)
fi
if [ -z "${SINERGI_BIN:-}" ]; then
    make -s build/release/sinergi
    SINERGI_BIN=build/release/sinergi
fi
[ -x "$SINERGI_BIN" ] || die "no sinergi binary at $SINERGI_BIN"

# ---- scratch space and cleanup -----------------------------------------------------------
TMP=$(mktemp -d /tmp/sinergi-ingest.XXXXXX)
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS=bench/results/ingest-$STAMP
mkdir -p "$RESULTS"
PIDS=()

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

busy_cores() { # busy_cores SECONDS: cores kept busy by everything on the machine meanwhile
    local b0 b1
    b0=$(busy_jiffies)
    sleep "$1"
    b1=$(busy_jiffies)
    awk -v j=$((b1 - b0)) -v hz="$HZ" -v d="$1" 'BEGIN {printf "%.2f", j / hz / d}'
}

wait_quiet() { # wait_quiet MAX_S: until the machine is nearly idle (< 0.2 cores busy over 2 s)
    local waited=0 busy
    while :; do
        busy=$(busy_cores 2)
        waited=$((waited + 2))
        awk -v b="$busy" 'BEGIN {exit !(b < 0.2)}' && break
        [ "$waited" -lt "$1" ] || break
    done
    echo "$busy"
}

thread_jiffies() { # thread_jiffies PID: "MHD PARSE_TICKS OTHER_TICKS" split by thread name
    local t
    for t in /proc/"$1"/task/*; do
        echo "$(cat "$t/comm" 2>/dev/null) $(cut -d')' -f2 "$t/stat" 2>/dev/null | awk '{print $12 + $13}')"
    done | awk '$1 == "MHD-worker" {m += $2; next} {o += $2} END {print m + 0, o + 0}'
}

or_dash() { if [ -n "$1" ]; then echo "$1"; else echo -; fi; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", b ? a / b : 0}'; }
verdict() { awk -v r="$1" -v t="$2" 'BEGIN {print (r >= t ? "met" : "NOT met")}'; }
best() { printf '%s\n' "$@" | sort -g | tail -1; }

busy_jiffies() { awk '$1 == "cpu" {print $2 + $3 + $4}' /proc/stat; }

pid_jiffies() { # user + system ticks of a process (all threads), 0 when gone
    local j
    j=$(cut -d')' -f2 "/proc/$1/stat" 2>/dev/null | awk '{print $12 + $13}')
    echo "${j:-0}"
}

children_jiffies() { cut -d")" -f2 "/proc/$$/stat" | awk '{print $14 + $15}'; }

read -r P_A P_B P_INFLUX P_RPC P_SUT P_REF P_MQTT_HTTP <<<"$(free_ports 7)"
NOW=$(date +%s)
T0_BATCH=$((NOW - 25 * 86400 - NOW % 60)) # batch data set: 60 s steps from 25 days ago
T0_SINGLE=$((NOW - 3000))                 # single-reading data set: 1 s steps from 50 min ago
T0_MQTT=$((NOW - 86400))                  # MQTT: the single-reading data set from a day ago

# ---- environment -------------------------------------------------------------------------
{
    echo "date_utc: $(date -u '+%Y-%m-%d %H:%M:%S')"
    echo "cpu: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $CORES cores"
    echo "ram: $(free -h | awk '/^Mem:/ {print $2}')"
    echo "disk: $(df -h --output=source,fstype "$TMP" | tail -1 | awk '{print $1, $2}') (TMP=$TMP)"
    echo "kernel: $(uname -r)"
    echo "debian: $(cat /etc/debian_version 2>/dev/null || echo '?')"
    echo "libmicrohttpd: $(pkg-config --modversion libmicrohttpd)  jansson: $(pkg-config --modversion jansson)  sqlite3: $(pkg-config --modversion sqlite3)"
    echo "influxdb: $(influxd version 2>/dev/null | head -1)"
    echo "wrk: $(wrk -v 2>&1 | head -1 | awk '{print $2}')"
    echo "mosquitto: $(dpkg-query -W -f '${Version}' mosquitto 2>/dev/null)  libmosquitto1: $(dpkg-query -W -f '${Version}' libmosquitto1 2>/dev/null)"
    if [ "$SINERGI_BIN" = build/release/sinergi ]; then
        echo "sinergi: $SINERGI_BIN built from this work tree ($(git describe --always --dirty 2>/dev/null || echo dev))"
    else
        echo "sinergi: $SINERGI_BIN (given by SINERGI_BIN)"
    fi
    echo "settings: only=${ONLY:-all} duration=${DURATION}s batch_conns=$CONNS single_conns=$SINGLE_CONNS latest_conns=$LATEST_CONNS latest_ingest_rate=$LATEST_RATE influx_points=$INFLUX_POINTS"
    echo "settings_mqtt: messages=$MQTT_MESSAGES rounds=$MQTT_ROUNDS devices=$MQTT_CONNS window=$MQTT_WINDOW cap=${MQTT_CAP}s"
    echo "t0_batch: $T0_BATCH  t0_single: $T0_SINGLE  t0_mqtt: $T0_MQTT"
    echo "sinergi_src_vs_HEAD: $(git status --short src 2>/dev/null | wc -l) changed/new paths ($(git diff --shortstat HEAD -- src 2>/dev/null | sed 's/^ *//'))"
    echo "sinergi_sha256: $(sha256sum "$SINERGI_BIN" | cut -c1-16)"
    echo "load_before: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "busy_before: $(wait_quiet "${BENCH_WAIT_QUIET:-0}") cores (all processes, 2 s sample; BENCH_WAIT_QUIET=${BENCH_WAIT_QUIET:-0}s)"
} >"$RESULTS/env.txt"

# ---- servers -----------------------------------------------------------------------------
start_sinergi() { # start_sinergi NAME PORT [VAR=VALUE ...]: fresh database, no demo stations,
    #                 the settings given; sets SINERGI_PID
    mkdir -p "$TMP/$1"
    env SINERGI_SEED_DEMO=0 "${@:3}" "$SINERGI_BIN" serve --listen "127.0.0.1:$2" \
        --db "$TMP/$1/sinergi.db" --data-dir data --log-level warn >"$TMP/$1/out" 2>"$TMP/$1/log" &
    SINERGI_PID=$!
    PIDS+=("$SINERGI_PID")
    wait_http "http://127.0.0.1:$2/healthz"
    SINERGI_VERSION=$(curl -s "http://127.0.0.1:$2/healthz" |
        python3 -c 'import json,sys; print(json.load(sys.stdin).get("version", "?"))' || echo '?')
    local password login
    password=$(sed -n 's/^sinergi: admin password: //p' "$TMP/$1/out" | head -1)
    [ -n "$password" ] || die "sinergi did not print the first-start admin password"
    login=$(curl -s -XPOST -H 'Content-Type: application/json' \
        -d "{\"username\":\"admin\",\"password\":\"$password\"}" "http://127.0.0.1:$2/api/v1/auth/login")
    ADMIN_TOKEN=$(printf '%s' "$login" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])') ||
        die "login failed: $login"
}

# Raw readings are packed (a log and per-sensor blocks): the store's own read-only tools count
# them, from the database file, after the daemon stopped.
count_sinergi() { # count_sinergi DB: readings stored
    SINERGI_SEED_DEMO=0 "$SINERGI_BIN" readings count --db "$1" --data-dir data
}

qc_mix() { # qc_mix DB: "good/suspect/bad" counts
    SINERGI_SEED_DEMO=0 "$SINERGI_BIN" readings export --db "$1" --data-dir data |
        awk -F, 'NR > 1 { c[$6]++ } END { printf "%d/%d/%d", c[1], c[3], c[4] }'
}

# ---- measuring ---------------------------------------------------------------------------
# Row fields: name|target|readings/s|requests/s|p50 ms|p99 ms|acknowledged|counted|errors|
#             server CPU µs per reading|client CPU µs per reading|other procs (cores)|note
ROWS=()
CPU0=0 SRV0=0

measure_begin() { CPU0=$(busy_jiffies); SRV0=$(pid_jiffies "$1"); CH0=$(children_jiffies); }
measure_end() { # measure_end PID SECONDS READINGS CLIENT_CPU_S: sets SRV_US CLI_US OTHER
    local srv1 cpu1 ch1 srv_j
    srv1=$(pid_jiffies "$1") cpu1=$(busy_jiffies) ch1=$(children_jiffies)
    srv_j=$((srv1 - SRV0))
    SRV_US=$(awk -v j="$srv_j" -v n="$3" -v hz="$HZ" 'BEGIN {printf "%.2f", n ? j / hz * 1e6 / n : 0}')
    CLI_US=$(awk -v c="$4" -v n="$3" 'BEGIN {printf "%.2f", n ? c * 1e6 / n : 0}')
    # Everything else on the machine: all busy ticks less the server's and those of this
    # script's finished children (the load generators, wrk), in cores.
    OTHER=$(awk -v j=$((cpu1 - CPU0 - srv_j - (ch1 - CH0))) -v hz="$HZ" -v d="$2" \
        'BEGIN {o = j / hz / d; printf "%.2f", o < 0 ? 0 : o}')
}

# ============================================================================================
# 1. sinergi: HTTP SenML batches of 1,000 readings (125 stations x 8 sensors = 1,000 sensors)
# ============================================================================================
declare -A SINERGI_RATE INFLUX_RATE PLAIN_RATE PLAIN_SORTED_RATE
ROUND_STORED=0
sinergi_batch() { # sinergi_batch ROUND CONNS: fresh database, batch ingest for DURATION
    local r=$1 c=$2 name="senml_batch_r$1_c$2" out split stored count qc rollups
    say "sinergi: creating 125 weather stations x 8 sensors"
    rm -rf "$TMP/batch"
    start_sinergi batch "$P_A"
    "$BUILD/ingest_load" setup-batch --port "$P_A" --admin "$ADMIN_TOKEN" --out "$TMP/batch/tokens"
    say "sinergi: SenML batches, $c connections, ${DURATION}s"
    measure_begin "$SINERGI_PID"
    read -r TH_M0 TH_O0 <<<"$(thread_jiffies "$SINERGI_PID")"
    out=$(timeout $((DURATION + 30)) "$BUILD/ingest_load" senml --port "$P_A" \
        --tokens "$TMP/batch/tokens" --t0 "$T0_BATCH" --conns "$c" --duration "$DURATION" \
        2>"$RESULTS/$name.err") || die "sinergi batch ingest failed: $out $(cat "$RESULTS/$name.err")"
    echo "$out" >"$RESULTS/$name.txt"
    measure_end "$SINERGI_PID" "$(kv seconds "$out")" "$(kv ok_readings "$out")" "$(kv client_cpu_s "$out")"
    read -r TH_M1 TH_O1 <<<"$(thread_jiffies "$SINERGI_PID")"
    split=$(awk -v m=$((TH_M1 - TH_M0)) -v o=$((TH_O1 - TH_O0)) -v n="$(kv ok_readings "$out")" -v hz="$HZ" \
        'BEGIN {printf "HTTP threads %.2f + writer %.2f µs/reading", m / hz * 1e6 / n, o / hz * 1e6 / n}')
    stop_pid "$SINERGI_PID" # graceful: flushes open rollups; acknowledged readings are already durable
    stored=$(kv stored "$out")
    count=$(count_sinergi "$TMP/batch/sinergi.db")
    qc=$(qc_mix "$TMP/batch/sinergi.db")
    rollups=$(sqlite3 "$TMP/batch/sinergi.db" "SELECT count(*) FROM rollups")
    [ "$count" = "$stored" ] || die "sinergi stored $stored readings by its answers but holds $count"
    [ "$stored" -le "$ROUND_STORED" ] || ROUND_STORED=$stored
    SINERGI_RATE[$r:$c]=$(kv readings_per_s "$out")
    ROWS+=("$name|sinergi|${SINERGI_RATE[$r:$c]}|$(kv requests_per_s "$out")|$(kv p50_ms "$out")|$(kv p99_ms "$out")|$(kv ok_readings "$out")|$count|$(kv errors "$out")|$SRV_US|$CLI_US|$OTHER|$c conns; $split; QC good/suspect/bad $qc; $rollups rollup rows")
    say "sinergi batch, round $r, $c connections: ${SINERGI_RATE[$r:$c]} readings/s"
}

# ============================================================================================
# 2. InfluxDB 1.x: the same rows as line protocol, 5,000 points a request
# ============================================================================================
influx_batch() { # influx_batch ROUND CONNS: fresh InfluxDB, line protocol for DURATION
    local r=$1 c=$2 name="influxdb_r$1_c$2" out count pid
    rm -rf "$TMP/influx"
    mkdir -p "$TMP/influx"
    # Durability: wal-fsync-delay = "0s" (the default) makes every write wait for an fsync of
    # the WAL before its 204 (concurrent writes share one fsync).
    printf '%s\n' \
        'reporting-disabled = true' \
        "bind-address = \"127.0.0.1:$P_RPC\"" \
        '[meta]' \
        "  dir = \"$TMP/influx/meta\"" \
        '  logging-enabled = false' \
        '[data]' \
        "  dir = \"$TMP/influx/data\"" \
        "  wal-dir = \"$TMP/influx/wal\"" \
        '  wal-fsync-delay = "0s"' \
        '  query-log-enabled = false' \
        '[monitor]' \
        '  store-enabled = false' \
        '[http]' \
        "  bind-address = \"127.0.0.1:$P_INFLUX\"" \
        '  log-enabled = false' \
        '  pprof-enabled = false' \
        '[logging]' \
        '  level = "warn"' \
        '  suppress-logo = true' \
        '[continuous_queries]' \
        '  enabled = false' \
        '[subscriber]' \
        '  enabled = false' >"$TMP/influx/influxdb.conf"
    cp "$TMP/influx/influxdb.conf" "$RESULTS/influxdb.conf"
    influxd run -config "$TMP/influx/influxdb.conf" >"$TMP/influx/out" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    wait_http "http://127.0.0.1:$P_INFLUX/ping"
    curl -s -XPOST "http://127.0.0.1:$P_INFLUX/query" --data-urlencode "q=CREATE DATABASE bench" >/dev/null
    say "InfluxDB: line protocol, $INFLUX_POINTS points a request, $c connections, ${DURATION}s"
    measure_begin "$pid"
    out=$(timeout $((DURATION + 30)) "$BUILD/ingest_load" influx --port "$P_INFLUX" --t0 "$T0_BATCH" \
        --points "$INFLUX_POINTS" --conns "$c" --duration "$DURATION" 2>"$RESULTS/$name.err") ||
        die "InfluxDB ingest failed: $out $(cat "$RESULTS/$name.err")"
    echo "$out" >"$RESULTS/$name.txt"
    measure_end "$pid" "$(kv seconds "$out")" "$(kv ok_readings "$out")" "$(kv client_cpu_s "$out")"
    count=$(curl -s -G "http://127.0.0.1:$P_INFLUX/query" --data-urlencode db=bench \
        --data-urlencode "q=SELECT count(v) FROM readings" |
        python3 -c 'import json,sys; r=json.load(sys.stdin)["results"][0]; print(r["series"][0]["values"][0][1] if "series" in r else 0)')
    stop_pid "$pid"
    [ "$count" = "$(kv ok_readings "$out")" ] || die "InfluxDB acknowledged $(kv ok_readings "$out") points but counts $count"
    INFLUX_RATE[$r:$c]=$(kv readings_per_s "$out")
    ROWS+=("$name|InfluxDB $(influxd version 2>/dev/null | awk '{print $2}')|${INFLUX_RATE[$r:$c]}|$(kv requests_per_s "$out")|$(kv p50_ms "$out")|$(kv p99_ms "$out")|$(kv ok_readings "$out")|$count|$(kv errors "$out")|$SRV_US|$CLI_US|$OTHER|$c conns; $INFLUX_POINTS points a request")
    say "InfluxDB, round $r, $c connections: ${INFLUX_RATE[$r:$c]} readings/s"
}

# ============================================================================================
# 3. plain C + SQLite: the same rows, same order, 10,000-row transactions
# ============================================================================================
plain_batch() { # plain_batch ROUND [sensor]: rows 0 .. ROUND_STORED-1 of the batch data set,
    # in the order sent (time-major) or sorted by (sensor, time); fresh database
    local r=$1 order=${2:-sent} out n secs us other count cpu1 ch1 name=plain_sqlite_r$1
    [ "$order" = sent ] || name=plain_sqlite_by_sensor_r$r
    say "plain SQLite ($order order): $ROUND_STORED rows (the rows the round's largest sinergi run stored), at most 20 s"
    rm -f "$TMP/plain.db" "$TMP/plain.db-wal" "$TMP/plain.db-shm"
    CPU0=$(busy_jiffies) CH0=$(children_jiffies)
    out=$(timeout 40 "$BUILD/plain_sqlite" "$TMP/plain.db" "$ROUND_STORED" "$T0_BATCH" 20 "$order") ||
        die "plain_sqlite failed: $out"
    echo "$out" >"$RESULTS/$name.txt"
    n=$(kv readings "$out") secs=$(kv seconds "$out")
    ch1=$(children_jiffies) cpu1=$(busy_jiffies)
    us=$(awk -v j=$((ch1 - CH0)) -v n="$n" -v hz="$HZ" 'BEGIN {printf "%.2f", j / hz * 1e6 / n}')
    other=$(awk -v j=$((cpu1 - CPU0 - (ch1 - CH0))) -v hz="$HZ" -v d="$secs" \
        'BEGIN {o = j / hz / d; printf "%.2f", o < 0 ? 0 : o}')
    count=$(sqlite3 "$TMP/plain.db" "SELECT count(*) FROM readings")
    [ "$count" = "$n" ] || die "plain_sqlite inserted $n rows but the database holds $count"
    if [ "$order" = sent ]; then
        PLAIN_RATE[$r]=$(kv readings_per_s "$out")
        ROWS+=("$name|SQLite (plain C)|${PLAIN_RATE[$r]}|-|-|-|$n|$count|0|$us|-|$other|1 thread; WAL, synchronous=FULL; 10,000-row transactions; the rows in the order sent")
    else
        PLAIN_SORTED_RATE[$r]=$(kv readings_per_s "$out")
        ROWS+=("$name|SQLite (plain C)|${PLAIN_SORTED_RATE[$r]}|-|-|-|$n|$count|0|$us|-|$other|the same rows sorted by (sensor, time): the order that suits SQLite's index best")
    fi
    say "plain SQLite ($order order), round $r: $(kv readings_per_s "$out") readings/s"
}

if [ "$RUN_HTTP" = 1 ]; then # sections 1 to 5 (BENCH_ONLY=mqtt skips them)
    # Rounds interleave the three targets, so that load from other processes on a shared machine
    # is spread over them alike; the verdicts use each target's best round.
    for r in $(seq "$ROUNDS"); do
        ROUND_STORED=0
        for c in $CONNS; do sinergi_batch "$r" "$c"; done
        plain_batch "$r"
        plain_batch "$r" sensor
        for c in $CONNS; do influx_batch "$r" "$c"; done
    done

    # ============================================================================================
    # 4. sinergi: single-reading requests over keep-alive (1,000 water-level stations)
    # ============================================================================================
    say "sinergi: creating 1,000 water-level stations"
    start_sinergi single "$P_B"
    "$BUILD/ingest_load" setup-single --port "$P_B" --admin "$ADMIN_TOKEN" --out "$TMP/single/tokens"
    SINGLE_RATE=0 SINGLE_STORED=0 NEXT=0
    for r in $(seq "$ROUNDS"); do # the same daemon; each round continues the data set
        say "sinergi: single-reading requests, round $r, $SINGLE_CONNS connections, ${DURATION}s"
        measure_begin "$SINERGI_PID"
        OUT=$(timeout $((DURATION + 30)) "$BUILD/ingest_load" single --port "$P_B" \
            --tokens "$TMP/single/tokens" --t0 "$T0_SINGLE" --start "$NEXT" --conns "$SINGLE_CONNS" \
            --duration "$DURATION" 2>"$RESULTS/single_reading_r$r.err") ||
            die "single-reading ingest failed: $OUT $(cat "$RESULTS/single_reading_r$r.err")"
        echo "$OUT" >"$RESULTS/single_reading_r$r.txt"
        measure_end "$SINERGI_PID" "$(kv seconds "$OUT")" "$(kv ok_readings "$OUT")" "$(kv client_cpu_s "$OUT")"
        SINGLE_STORED=$((SINGLE_STORED + $(kv stored "$OUT")))
        NEXT=$(kv next_index "$OUT")
        RATE=$(kv readings_per_s "$OUT")
        awk -v a="$RATE" -v b="$SINGLE_RATE" 'BEGIN {exit !(a > b)}' && SINGLE_RATE=$RATE
        ROWS+=("single_reading_r$r|sinergi|$RATE|$(kv requests_per_s "$OUT")|$(kv p50_ms "$OUT")|$(kv p99_ms "$OUT")|$(kv ok_readings "$OUT")|-|$(kv errors "$OUT")|$SRV_US|$CLI_US|$OTHER|$SINGLE_CONNS conns")
        say "sinergi single, round $r: $RATE readings/s"
    done
    SINGLE_COUNT=$(count_sinergi "$TMP/single/sinergi.db")
    [ "$SINGLE_COUNT" = "$SINGLE_STORED" ] || die "sinergi stored $SINGLE_STORED single readings by its answers but holds $SINGLE_COUNT"
    ROWS+=("single_reading (all rounds)|sinergi|-|-|-|-|$SINGLE_STORED|$SINGLE_COUNT|-|-|-|-|QC good/suspect/bad $(qc_mix "$TMP/single/sinergi.db")")

    # ============================================================================================
    # 5. GET /api/v1/stations/latest with 1,000 stations (all reporting), wrk
    # ============================================================================================
    export SINERGI_TOKEN=$ADMIN_TOKEN
    LATEST_URL="http://127.0.0.1:$P_B/api/v1/stations/latest"
    LATEST_BYTES=$(curl -s -H "Authorization: Bearer $ADMIN_TOKEN" "$LATEST_URL" | wc -c)
    LATEST_OK=$(curl -s -H "Authorization: Bearer $ADMIN_TOKEN" "$LATEST_URL" |
        python3 -c 'import json,sys; s=json.load(sys.stdin)["stations"]; print(len(s), sum(x["state"] == "ok" for x in s))')
    to_ms() { # to_ms 1.55ms|497.11us|1.02s -> milliseconds
        awk -v v="$1" 'BEGIN { n = v + 0; u = v; sub(/^[0-9.]+/, "", u);
            if (u == "us") n /= 1000; else if (u == "s") n *= 1000; printf "%.2f", n }'
    }
    PAUSED_STORED=0
    latest() { # latest NAME RATE: wrk on latest for DURATION, beside ingest at RATE (-1: none, 0: full)
        local name=$1 rate=$2 out="$RESULTS/$1.txt" ing="" ing_pid=""
        measure_begin "$SINERGI_PID"
        if [ "$rate" != -1 ]; then
            timeout $((DURATION + 30)) "$BUILD/ingest_load" single --port "$P_B" \
                --tokens "$TMP/single/tokens" --t0 "$T0_SINGLE" --start "$NEXT" --rate "$rate" \
                --conns "$( [ "$rate" = 0 ] && echo "$SINGLE_CONNS" || echo 16)" \
                --duration "$DURATION" >"$RESULTS/$name.ingest.txt" 2>"$RESULTS/$name.ingest.err" &
            ing_pid=$!
        fi
        timeout $((DURATION + 10)) wrk -t2 -c"$LATEST_CONNS" -d"${DURATION}s" --latency \
            -s bench/http/auth.lua "$LATEST_URL" >"$out" || die "wrk failed on $LATEST_URL (see $out)"
        local ing_rate="-" ing_cpu=0 ing_p99="-" note
        if [ -n "$ing_pid" ]; then
            wait "$ing_pid" || die "ingest beside $name failed: $(cat "$RESULTS/$name.ingest.err")"
            ing=$(cat "$RESULTS/$name.ingest.txt")
            ing_rate=$(kv readings_per_s "$ing")
            ing_cpu=$(kv client_cpu_s "$ing")
            ing_p99=$(kv p99_ms "$ing")
            NEXT=$(kv next_index "$ing")
            PAUSED_STORED=$((PAUSED_STORED + $(kv stored "$ing")))
        fi
        local rps p50 p99 total non2xx
        rps=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$out")
        p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$out")")
        p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$out")")
        total=$(awk '/requests in/ {print $1}' "$out")
        non2xx=$(awk -F': *' '/Non-2xx or 3xx responses/ {print $2}' "$out")
        # wrk and the ingest beside it are this script's children: "other" leaves them out.
        measure_end "$SINERGI_PID" "$DURATION" "$total" "$ing_cpu"
        if [ "$rate" = -1 ]; then
            note="no ingest"
        elif [ "$rate" = 0 ]; then
            note="beside single-reading ingest at full speed ($SINGLE_CONNS conns): $ing_rate readings/s acknowledged, ingest p99 $ing_p99 ms"
        else
            note="beside paced single-reading ingest (16 conns): $ing_rate readings/s acknowledged of $rate asked, ingest p99 $ing_p99 ms"
        fi
        ROWS+=("$name|sinergi|-|$rps|$p50|$p99|$total requests|-|${non2xx:-0}|$SRV_US µs/request|-|$OTHER|$LATEST_CONNS wrk conns, $LATEST_BYTES-byte body; $note")
        say "$name: $rps requests/s, p99 $p99 ms ($note)"
    }
    latest latest_idle -1
    latest latest_paced "$LATEST_RATE"
    latest latest_full 0
    stop_pid "$SINERGI_PID"
    FINAL_COUNT=$(count_sinergi "$TMP/single/sinergi.db")
    [ "$FINAL_COUNT" = $((SINGLE_STORED + PAUSED_STORED)) ] ||
        die "sinergi acknowledged $((SINGLE_STORED + PAUSED_STORED)) single readings but holds $FINAL_COUNT"
fi

# ============================================================================================
# 6. MQTT: one reading per message, QoS 0 and QoS 1 — sinergi, and the broker delivering the
#    same messages to a bare subscriber
# ============================================================================================
# Two brokers, each started by scripts/mqtt-broker.sh from etc/mosquitto.conf.in as shipped:
# SUT serves sinergi (whose ingest client holds a persistent session there, subscribed to
# sinergi/ingest/+ at QoS 1), REF serves the bare subscriber (bench/ingest/mqtt_load.c sub: the
# same subscriptions and session kind, libmosquitto like sinergi, counts and notes the time).
# REF gets a copy of SUT's accounts (dynsec.json), so the same 1,000 devices log in to both with
# the same station codes and device tokens. Per round and QoS the same messages (the same steps
# of the single-reading data set) go first to REF, then to SUT; sinergi's runs never repeat a
# step, so no reading is a duplicate. sinergi's rate: readings committed / (last commit − first
# publish), from /metrics polled every 20 ms; the reference: messages received / (last received
# − first publish).
declare -A MQTT_RATE MQTT_REF_RATE
MQTT_ACKED=0 MQTT_STORED=0 MQTT_DROPPED=0 MQTT_REFUSED=0 MQTT_SILENT=0 MQTT_INCOMPLETE=0
MQTT_REF_MISSING=0 MQTT_STEP=0

mqtt_metric() { # mqtt_metric NAME: its value on the MQTT daemon's /metrics
    curl -s --max-time 5 "http://127.0.0.1:$P_MQTT_HTTP/metrics" | awk -v n="$1" '$1 == n {print $2}'
}

start_broker() { # start_broker DIR PORT: scripts/mqtt-broker.sh start; sets BROKER_PID
    scripts/mqtt-broker.sh start "$1" "$2" >/dev/null 2>"$1.err" ||
        die "mosquitto did not start: $(cat "$1.err") (see $1/mosquitto.log)"
    BROKER_PID=$(cat "$1/mosquitto.pid")
    PIDS+=("$BROKER_PID")
}

per_msg() { # per_msg JIFFIES MESSAGES: CPU µs per message
    awk -v j="$1" -v n="$2" -v hz="$HZ" 'BEGIN {printf "%.2f", n ? j / hz * 1e6 / n : 0}'
}

per_msg_s() { # per_msg_s CPU_SECONDS MESSAGES: CPU µs per message
    awk -v c="$1" -v n="$2" 'BEGIN {printf "%.2f", n ? c * 1e6 / n : 0}'
}

mqtt_begin() { # CPU counters before a run (both brokers, sinergi, this script's children)
    M_T0=$(date +%s.%N) M_CPU0=$(busy_jiffies) M_CH0=$(children_jiffies)
    M_SUT0=$(pid_jiffies "$SUT_PID") M_REF0=$(pid_jiffies "$REF_PID")
    M_SIN0=$(pid_jiffies "$SINERGI_PID")
}

mqtt_end() { # mqtt_end: sets M_SUT_J M_REF_J M_SIN_J (ticks) and OTHER (cores, everything else)
    local cpu ch
    M_SUT_J=$(($(pid_jiffies "$SUT_PID") - M_SUT0)) M_REF_J=$(($(pid_jiffies "$REF_PID") - M_REF0))
    M_SIN_J=$(($(pid_jiffies "$SINERGI_PID") - M_SIN0)) ch=$(($(children_jiffies) - M_CH0))
    cpu=$(($(busy_jiffies) - M_CPU0))
    OTHER=$(awk -v j=$((cpu - M_SUT_J - M_REF_J - M_SIN_J - ch)) -v hz="$HZ" -v t0="$M_T0" \
        -v t1="$(date +%s.%N)" 'BEGIN {o = j / hz / (t1 - t0); printf "%.2f", o < 0 ? 0 : o}')
}

mqtt_pub() { # mqtt_pub PORT QOS NAME [--metrics-port P]: the devices publish the round's messages
    local out
    out=$(timeout $((MQTT_CAP + 150)) "$BUILD/mqtt_load" pub --port "$1" --qos "$2" \
        --tokens "$TMP/mqtt/tokens" --conns "$MQTT_CONNS" --window "$MQTT_WINDOW" \
        --messages "$MQTT_MESSAGES" --t0 "$T0_MQTT" --start-step "$MQTT_STEP" \
        --max-seconds "$MQTT_CAP" "${@:4}" 2>"$RESULTS/$3.err") ||
        die "the MQTT devices failed ($3): $out $(cat "$RESULTS/$3.err")"
    echo "$out" >"$RESULTS/$3.txt"
    echo "$out"
}

mqtt_ref() { # mqtt_ref ROUND QOS: the round's messages through REF to the bare subscriber
    local r=$1 q=$2 name="mqtt_qos$2_r$1_bare_sub" pub sub sub_pid secs rate missing dropped
    say "Mosquitto to a bare subscriber: QoS $q, $MQTT_MESSAGES messages from $MQTT_CONNS devices"
    rm -f "$TMP/mqtt/ready"
    mqtt_begin
    timeout $((MQTT_CAP + 160)) "$BUILD/mqtt_load" sub --port "$P_REF" --user bench.sub \
        --password-file "$TMP/mqtt/sub.pw" --client-id "bench.sub.r$r.q$q" --qos 1 \
        --expect "$MQTT_MESSAGES" --max-seconds $((MQTT_CAP + 120)) --ready "$TMP/mqtt/ready" \
        >"$RESULTS/$name.sub.txt" 2>"$RESULTS/$name.sub.err" &
    sub_pid=$!
    PIDS+=("$sub_pid")
    for _ in $(seq 100); do
        [ -f "$TMP/mqtt/ready" ] && break
        sleep 0.1
    done
    [ -f "$TMP/mqtt/ready" ] || die "the bare subscriber did not subscribe: $(cat "$RESULTS/$name.sub.err")"
    pub=$(mqtt_pub "$P_REF" "$q" "$name.pub")
    wait "$sub_pid" || die "the bare subscriber failed: $(cat "$RESULTS/$name.sub.err")"
    sub=$(cat "$RESULTS/$name.sub.txt")
    mqtt_end
    secs=$(awk -v a="$(kv t_start_ns "$pub")" -v b="$(kv t_last_ns "$sub")" 'BEGIN {printf "%.3f", (b - a) / 1e9}')
    rate=$(awk -v n="$(kv received "$sub")" -v s="$secs" 'BEGIN {printf "%.0f", (s > 0 ? n / s : 0)}')
    missing=$(($(kv acked "$pub") - $(kv received "$sub")))
    MQTT_REF_MISSING=$((MQTT_REF_MISSING + (missing > 0 ? missing : 0)))
    dropped=$(kv dropped "$sub")
    [ "$dropped" = -1 ] && dropped="not published"
    MQTT_REF_RATE[$r:$q]=$rate
    ROWS+=("mqtt_qos${q}_r$r|Mosquitto $MOSQ_VERSION, bare subscriber|$rate|$(kv publish_rate "$pub")|$(or_dash "$(kv p50_ms "$pub")")|$(or_dash "$(kv p99_ms "$pub")")|$(kv acked "$pub")|$(kv received "$sub") received|$missing|$(per_msg_s "$(kv sub_cpu_s "$sub")" "$(kv received "$sub")")|$(per_msg_s "$(kv client_cpu_s "$pub")" "$(kv acked "$pub")")|$OTHER|${secs}s; subscriber's CPU in the server column, broker $(per_msg "$M_REF_J" "$(kv acked "$pub")") µs/message; broker's dropped counter: $dropped")
    say "bare subscriber, QoS $q, round $r: $rate messages/s"
}

mqtt_sinergi() { # mqtt_sinergi ROUND QOS: the round's messages through SUT into sinergi
    local r=$1 q=$2 name="mqtt_qos$2_r$1_sinergi" pub acked stored dropped refused silent note
    say "sinergi over MQTT: QoS $q, $MQTT_MESSAGES messages from $MQTT_CONNS devices"
    mqtt_begin
    pub=$(mqtt_pub "$P_SUT" "$q" "$name" --metrics-port "$P_MQTT_HTTP")
    mqtt_end
    acked=$(kv acked "$pub") stored=$(kv stored "$pub") dropped=$(kv dropped "$pub")
    refused=$(($(kv duplicates "$pub") + $(kv rejected "$pub") + $(kv malformed "$pub") + $(kv unknown "$pub")))
    silent=$((acked - stored - dropped - refused))
    MQTT_ACKED=$((MQTT_ACKED + acked)) MQTT_STORED=$((MQTT_STORED + stored))
    MQTT_DROPPED=$((MQTT_DROPPED + dropped)) MQTT_REFUSED=$((MQTT_REFUSED + refused))
    MQTT_SILENT=$((MQTT_SILENT + (silent > 0 ? silent : 0)))
    note="$(kv seconds "$pub")s; broker $(per_msg "$M_SUT_J" "$acked") µs/message; stored $stored, dropped by the broker $dropped, refused $refused"
    if [ "$(kv complete "$pub")" != 1 ]; then
        MQTT_INCOMPLETE=$((MQTT_INCOMPLETE + 1))
        note="$note; NOT all committed within ${MQTT_CAP}s: the rate counts those that were"
    fi
    MQTT_RATE[$r:$q]=$(kv readings_per_s "$pub")
    ROWS+=("mqtt_qos${q}_r$r|sinergi|${MQTT_RATE[$r:$q]}|$(kv publish_rate "$pub")|$(or_dash "$(kv p50_ms "$pub")")|$(or_dash "$(kv p99_ms "$pub")")|$acked|$(kv stored_timed "$pub") committed in the timed window|$silent|$(per_msg "$M_SIN_J" "$stored")|$(per_msg_s "$(kv client_cpu_s "$pub")" "$acked")|$OTHER|$note; $(ratio "${MQTT_RATE[$r:$q]}" "${MQTT_REF_RATE[$r:$q]}")x the bare subscriber of this round")
    say "sinergi over MQTT, QoS $q, round $r: ${MQTT_RATE[$r:$q]} readings/s"
}

mqtt_section() {
    local a c
    mkdir -p "$TMP/mqtt"
    MOSQ_VERSION=$(dpkg-query -W -f '${Version}' mosquitto 2>/dev/null || mosquitto -h | head -1)
    start_broker "$TMP/mqtt/sut" "$P_SUT"
    SUT_PID=$BROKER_PID
    start_sinergi mqtt "$P_MQTT_HTTP" SINERGI_MQTT_ENABLED=1 SINERGI_MQTT_HOST=127.0.0.1 \
        SINERGI_MQTT_PORT="$P_SUT" SINERGI_MQTT_PASSWORD_FILE="$TMP/mqtt/sut/admin.pw" \
        SINERGI_MQTT_SPOOL_DIR="$TMP/mqtt/spool"
    for _ in $(seq 100); do
        [ "$(mqtt_metric sinergi_mqtt_connected)" = 1 ] && break
        sleep 0.1
    done
    [ "$(mqtt_metric sinergi_mqtt_connected)" = 1 ] || die "sinergi did not connect to the broker"
    # Each new station's broker account is one dynamic-security change, and the plugin rewrites
    # its whole JSON file for each: about a minute for 1,000 (not measured).
    say "sinergi: creating 1,000 water-level stations and their broker accounts (about a minute)"
    "$BUILD/ingest_load" setup-single --port "$P_MQTT_HTTP" --admin "$ADMIN_TOKEN" --out "$TMP/mqtt/tokens"
    for _ in $(seq 300); do
        [ "$(mqtt_metric sinergi_mqtt_accounts_pending)" = 0 ] && break
        sleep 0.1
    done
    [ "$(mqtt_metric sinergi_mqtt_accounts_pending)" = 0 ] || die "the broker accounts did not follow"
    mkdir -p "$TMP/mqtt/ref"
    chmod 0700 "$TMP/mqtt/ref"
    cp "$TMP/mqtt/sut/dynsec.json" "$TMP/mqtt/sut/admin.pw" "$TMP/mqtt/ref/"
    start_broker "$TMP/mqtt/ref" "$P_REF"
    REF_PID=$BROKER_PID
    # The bare subscriber's account on REF: the ACLs of sinergi's service account.
    (umask 077 && head -c 18 /dev/urandom | base64 | tr -d '/+=\n' >"$TMP/mqtt/sub.pw")
    a=(mosquitto_ctrl -h 127.0.0.1 -p "$P_REF" -u sinergi.admin -P "$(cat "$TMP/mqtt/ref/admin.pw")" dynsec)
    {
        "${a[@]}" createRole bench.sub
        # shellcheck disable=SC2016 # $SYS is a topic, not a variable
        for c in "subscribePattern sinergi/ingest/#" "publishClientReceive sinergi/ingest/#" \
            'subscribePattern $SYS/broker/publish/messages/#' \
            'publishClientReceive $SYS/broker/publish/messages/#' "publishClientSend sinergi/alerts/#"; do
            # shellcheck disable=SC2086
            "${a[@]}" addRoleACL bench.sub $c allow
        done
        "${a[@]}" createClient bench.sub -p "$(cat "$TMP/mqtt/sub.pw")"
        "${a[@]}" addClientRole bench.sub bench.sub
    } >"$RESULTS/mqtt_ref_account.txt" 2>&1 || die "cannot create the bare subscriber's account on REF"
    local steps=$(((MQTT_MESSAGES + MQTT_CONNS - 1) / MQTT_CONNS))
    [ $((MQTT_ROUNDS * 2 * steps)) -lt 80000 ] || die "too many MQTT messages for the data set's day"
    for r in $(seq "$MQTT_ROUNDS"); do
        for q in 0 1; do
            mqtt_ref "$r" "$q"
            mqtt_sinergi "$r" "$q"
            MQTT_STEP=$((MQTT_STEP + steps))
        done
    done
    stop_pid "$SINERGI_PID"
    MQTT_COUNT=$(count_sinergi "$TMP/mqtt/sinergi.db")
    MQTT_DROP_LOG=$(cat "$TMP/mqtt/sut/mosquitto.log" "$TMP/mqtt/ref/mosquitto.log" | grep -c 'being dropped' || true)
    ROWS+=("mqtt (all runs)|sinergi|-|-|-|-|$MQTT_ACKED|$MQTT_COUNT|$MQTT_SILENT|-|-|-|rows in the database after SIGTERM; stored $MQTT_STORED, dropped by the broker $MQTT_DROPPED, refused $MQTT_REFUSED; broker logs: $MQTT_DROP_LOG 'being dropped' notices; QC good/suspect/bad $(qc_mix "$TMP/mqtt/sinergi.db")")
    [ "$MQTT_COUNT" = "$MQTT_STORED" ] ||
        die "sinergi reported $MQTT_STORED MQTT readings committed but its database holds $MQTT_COUNT"
    stop_pid "$SUT_PID"
    stop_pid "$REF_PID"
}
[ "$RUN_MQTT" = 0 ] || mqtt_section

{
    echo "load_after: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "sinergi_version (GET /healthz): $SINERGI_VERSION"
    [ "$RUN_HTTP" = 0 ] || echo "latest: $LATEST_BYTES bytes, stations/ok: $LATEST_OK"
} >>"$RESULTS/env.txt"

# ---- report ------------------------------------------------------------------------------
# As in bench/http: load from other processes only lowers throughput, so each target's best
# round is the estimate of its rate; every round is in the table.
TARGETS=() VERDICTS=()
if [ "$RUN_HTTP" = 1 ]; then
    PLAIN_BEST=$(best "${PLAIN_RATE[@]}")
    RATIO_LINES=()
    BEST_C="" SINERGI_BEST=0 INFLUX_BEST=0
    for c in $CONNS; do
        s_runs=() i_runs=()
        for r in $(seq "$ROUNDS"); do
            s_runs+=("${SINERGI_RATE[$r:$c]}")
            i_runs+=("${INFLUX_RATE[$r:$c]}")
        done
        sb=$(best "${s_runs[@]}") ib=$(best "${i_runs[@]}")
        RATIO_LINES+=("  - $c connections: sinergi best $sb (runs ${s_runs[*]}), InfluxDB best $ib (runs ${i_runs[*]}): $(ratio "$sb" "$PLAIN_BEST")x plain, $(ratio "$sb" "$ib")x InfluxDB")
        if awk -v a="$sb" -v b="$SINERGI_BEST" 'BEGIN {exit !(a > b)}'; then SINERGI_BEST=$sb BEST_C=$c; fi
        if awk -v a="$ib" -v b="$INFLUX_BEST" 'BEGIN {exit !(a > b)}'; then INFLUX_BEST=$ib; fi
    done
    R_PLAIN=$(ratio "$SINERGI_BEST" "$PLAIN_BEST")
    R_INFLUX=$(ratio "$SINERGI_BEST" "$INFLUX_BEST")
    V_PLAIN=$(verdict "$R_PLAIN" 2)
    V_INFLUX=$(verdict "$R_INFLUX" 0.5)
    V_SINGLE=$(verdict "$SINGLE_RATE" 20000)
    VERDICTS+=("$V_PLAIN" "$V_INFLUX" "$V_SINGLE")
    TARGETS+=("- SenML batches >= 2x plain SQLite: $V_PLAIN (${R_PLAIN}x: sinergi $SINERGI_BEST at $BEST_C connections vs plain $PLAIN_BEST readings/s, best rounds)")
    PLAIN_SORTED_BEST=$(best "${PLAIN_SORTED_RATE[@]}")
    R_SORTED=$(ratio "$SINERGI_BEST" "$PLAIN_SORTED_BEST")
    TARGETS+=("  - beside the same rows sorted by (sensor, time), the order that suits SQLite best (not the issue's comparison, shown for fairness): $(verdict "$R_SORTED" 2) (${R_SORTED}x: plain $PLAIN_SORTED_BEST readings/s)")
    TARGETS+=("- SenML batches >= 0.5x InfluxDB: $V_INFLUX (${R_INFLUX}x: sinergi $SINERGI_BEST vs InfluxDB $INFLUX_BEST readings/s, best rounds)")
    TARGETS+=("${RATIO_LINES[@]}")
    TARGETS+=("- single-reading requests >= 20,000 readings/s: $V_SINGLE ($SINGLE_RATE readings/s, best round)")
    TARGETS+=("- latest with 1,000 stations (stations/ok: $LATEST_OK): see the latest_* rows")
fi
if [ "$RUN_MQTT" = 1 ]; then
    for q in 0 1; do
        s_runs=() b_runs=() p_runs=()
        for r in $(seq "$MQTT_ROUNDS"); do
            s_runs+=("${MQTT_RATE[$r:$q]}")
            b_runs+=("${MQTT_REF_RATE[$r:$q]}")
            p_runs+=("$(ratio "${MQTT_RATE[$r:$q]}" "${MQTT_REF_RATE[$r:$q]}")")
        done
        sb=$(best "${s_runs[@]}") bb=$(best "${b_runs[@]}")
        v=$(verdict "$(ratio "$sb" "$bb")" 0.8)
        VERDICTS+=("$v")
        TARGETS+=("- MQTT QoS $q >= 0.8x Mosquitto to a bare subscriber: $v ($(ratio "$sb" "$bb")x: sinergi best $sb readings/s (runs ${s_runs[*]}) vs bare subscriber best $bb messages/s (runs ${b_runs[*]}); round by round ${p_runs[*]})")
    done
    v=met
    [ "$MQTT_SILENT" = 0 ] && [ "$MQTT_COUNT" = "$MQTT_STORED" ] || v="NOT met"
    VERDICTS+=("$v")
    TARGETS+=("- MQTT zero silent loss: $v ($MQTT_ACKED messages acknowledged by the broker (QoS 1) or written to it (QoS 0) over all sinergi runs: $MQTT_STORED committed and in the database ($MQTT_COUNT rows), $MQTT_DROPPED dropped by the broker and counted on /metrics, $MQTT_REFUSED refused and counted, $MQTT_SILENT unaccounted for; $MQTT_INCOMPLETE runs not fully committed within ${MQTT_CAP}s; the bare subscriber missed $MQTT_REF_MISSING)")
fi
MAX_OTHER=$(printf '%s\n' "${ROWS[@]}" | awk -F'|' '$12 + 0 > m {m = $12 + 0} END {printf "%.2f", m}')
QUIET=$(awk -v m="$MAX_OTHER" 'BEGIN {print (m <= 0.3 ? "quiet" : "NOT quiet: other processes took CPU during some runs, so those numbers and ratios are unreliable")}')
{
    echo "| benchmark | target | readings/s | requests/s | p50 ms | p99 ms | acknowledged | counted in store | errors | server CPU µs/reading | client CPU µs/reading | other procs (cores) | notes |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    for row in "${ROWS[@]}"; do
        IFS='|' read -r name tgt rate rps p50 p99 ack cnt errs srv cli other note <<<"$row"
        echo "| $name | $tgt | $rate | $rps | $p50 | $p99 | $ack | $cnt | $errs | $srv | $cli | $other | $note |"
    done
    echo
    echo "Targets (issue #3):"
    printf '%s\n' "${TARGETS[@]}"
    echo
    echo "Machine during the runs: at most $MAX_OTHER cores used by other processes ($QUIET)."
    [ "$RUN_HTTP" = 0 ] || echo "${DURATION}s per run, $ROUNDS interleaved rounds of the batch comparison; every store empty at its start; counts verified in each store afterwards."
    [ "$RUN_MQTT" = 0 ] || echo "MQTT: $MQTT_MESSAGES messages per run from $MQTT_CONNS devices, $MQTT_WINDOW in flight per device, at most ${MQTT_CAP}s timed; $MQTT_ROUNDS rounds, the bare subscriber and sinergi in turn; for the MQTT rows 'requests/s' is the devices' publishing rate, p50/p99 the PUBACK latency (QoS 1), 'errors' the messages unaccounted for (sinergi) or not received (bare subscriber), 'server CPU' sinergi's or the bare subscriber's."
    echo "Raw output in $RESULTS/"
} >"$RESULTS/summary.md"

cat "$RESULTS/env.txt"
echo
cat "$RESULTS/summary.md"
if [ "$STRICT" = 1 ]; then
    for v in "${VERDICTS[@]}"; do [ "$v" = met ] || exit 1; done
fi
