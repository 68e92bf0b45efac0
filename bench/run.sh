#!/usr/bin/env bash
# orderd's benchmark: builds a release orderd and the bench tools, starts everything it needs on
# loopback, runs the scenarios of bench/README.md, prints one table and writes it as JSON to
# bench/results/latest.json (and a timestamped copy). Every run is bounded in time.
#
#   bench/run.sh                 # the whole suite (6-7 minutes on 2 cores, plus the build)
#   ODB_QUICK=1 bench/run.sh     # shorter runs, 200k orders for memory (a 3-minute smoke test)
#
# Knobs (environment): ODB_DURATION (s of each server per peak scenario, 15), ODB_ROUNDS
# (alternating floor/orderd pairs it is split into, 3), ODB_CONNS (wrk connections, 64),
# ODB_HTTP_THREADS (2), ODB_WORKER_THREADS (64), ODB_EVENTS (file|none, file),
# ODB_MEM_ORDERS (1000000), ODB_MEM_BUDGET_S (300: the memory run's time cap), ODB_SKIP_DDB=1,
# ODB_SKIP_CALLGRIND=1, ODB_ONLY (comma list of http,memory,ddb,cpu,events: run only those parts),
# ODB_KEEP=1 (keep bench/work/run-* with the logs). The events part (issue 15, odb-sinkd as the
# AWS endpoint): ODB_EVENTS_SINK (sqs|sns|eventbridge, sqs), ODB_SINK_LATENCY_MS (20),
# ODB_EVENTS_DRAIN_S (60: the longest wait for the backlog after the load), ODB_EVENTS_CONF
# (extra orderd.conf lines for those runs, separated by ';').
set -Eeuo pipefail
OD_ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH=$OD_ROOT/bench
source "$OD_ROOT/scripts/deps.sh"
source "$OD_ROOT/scripts/engines.sh" # for OD_DDB_NPM_PACKAGE, the pinned DynamoDB Local

QUICK=${ODB_QUICK:-0}
DURATION=${ODB_DURATION:-$([[ $QUICK == 1 ]] && echo 4 || echo 15)}
ROUNDS=${ODB_ROUNDS:-$([[ $QUICK == 1 ]] && echo 1 || echo 3)}
DDB_DURATION=$([[ $QUICK == 1 ]] && echo 4 || echo 10) # each of scenario 7's three runs
CONNS=${ODB_CONNS:-64}
HTTP_THREADS=${ODB_HTTP_THREADS:-2}
WORKER_THREADS=${ODB_WORKER_THREADS:-64}
EVENTS=${ODB_EVENTS:-file}
FIXED_RATE=5000
FIXED_S=$([[ $QUICK == 1 ]] && echo 10 || echo 30)
BURST_S=$([[ $QUICK == 1 ]] && echo 5 || echo 10)
MEM_FIRST=100000
MEM_ORDERS=${ODB_MEM_ORDERS:-$([[ $QUICK == 1 ]] && echo 200000 || echo 1000000)}
MEM_BUDGET_S=${ODB_MEM_BUDGET_S:-300}
DDB_CONC=$WORKER_THREADS # orderd keeps at most worker_threads DynamoDB calls in flight
CG_ORDERS=$([[ $QUICK == 1 ]] && echo 500 || echo 2000)
EV_SINK=${ODB_EVENTS_SINK:-sqs}
EV_LATENCY_MS=${ODB_SINK_LATENCY_MS:-20}
EV_PEAK_S=$([[ $QUICK == 1 ]] && echo 5 || echo 10)
EV_FIXED_S=$([[ $QUICK == 1 ]] && echo 10 || echo 30)
EV_DRAIN_S=${ODB_EVENTS_DRAIN_S:-$([[ $QUICK == 1 ]] && echo 30 || echo 60)}
EV_TARGET_RATE=5000   # events/s published, sustained (E1)
EV_TARGET_P99_MS=1000 # commit-to-publish lag p99 at FIXED_RATE orders/s (E2)

BUILD=$BENCH/build
TOOLS=$BUILD/bench
WORK=$BENCH/work/run-$$
RESULTS=$BENCH/results
ROWS=$WORK/rows.jsonl
PIDS=()

# ---- plumbing ----

log() { printf '== %s\n' "$*" >&2; }

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [[ ${ODB_KEEP:-0} != 1 && -d $WORK ]]; then
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'echo "bench/run.sh: failed at line $LINENO: $BASH_COMMAND" >&2' ERR

# stop PID: ends one process this script started, waits for it, and forgets it (so the exit
# trap never signals a number the system may have given to another process since).
stop() {
    local keep=() pid
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
    for pid in "${PIDS[@]}"; do
        [[ $pid == "$1" ]] || keep+=("$pid")
    done
    PIDS=("${keep[@]}")
}

# free_port: a loopback TCP port no socket uses, below the kernel's ephemeral range (32768+)
# so that no client connection takes it between the check and the bind.
free_port() {
    local p
    for _ in $(seq 1 100); do
        p=$((20000 + RANDOM % 12000))
        if [[ -z $(ss -Htan "sport = :$p") ]]; then
            echo "$p"
            return 0
        fi
    done
    echo "no free port" >&2
    return 1
}

# wait_port PORT: until something accepts on 127.0.0.1:PORT (at most 20 s).
wait_port() {
    for _ in $(seq 1 200); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "nothing listens on 127.0.0.1:$1" >&2
    return 1
}

# background_busy: percent of both cores busy over one second while this suite is idle: other
# work on the machine (builds, tests) that the figures below had to share the CPU with.
background_busy() {
    local a b
    read -ra a </proc/stat
    sleep 1
    read -ra b </proc/stat
    local busy=$(((b[1] + b[2] + b[3] + b[6] + b[7] + b[8]) - (a[1] + a[2] + a[3] + a[6] + a[7] + a[8])))
    local idle=$(((b[4] + b[5]) - (a[4] + a[5])))
    echo $((100 * busy / (busy + idle + 1)))
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# ---- set-up ----

install_packages() {
    local pkgs=(wrk valgrind jq sqlite3 iproute2 curl)
    if [[ ${ODB_SKIP_DDB:-0} != 1 ]]; then
        command -v java >/dev/null || pkgs+=(default-jre-headless)
    fi
    od_install "${OD_BUILD_PACKAGES[@]}" "${pkgs[@]}"
}

build() {
    log "building release orderd and the bench tools in $BUILD"
    # -g only adds symbols (for perf and callgrind); the code is the same -O3 Release build.
    cmake -S "$OD_ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DORDERD_TESTS=OFF \
        -DORDERD_BENCH=ON -DCMAKE_C_FLAGS=-g >/dev/null
    cmake --build "$BUILD" -j"$(nproc)" >/dev/null
}

# ddb_jar: the DynamoDB Local jar, from $ORDERD_TEST_DDB_JAR, the tests' engines, or npm.
ddb_jar() {
    local sub=node_modules/amplify-dynamodb-simulator/emulator/DynamoDBLocal.jar
    local dir=$BENCH/work/engines
    for jar in "${ORDERD_TEST_DDB_JAR:-}" "$OD_ROOT/build-test/engines/$sub" "$dir/$sub"; do
        if [[ -n $jar && -f $jar ]]; then
            echo "$jar"
            return 0
        fi
    done
    command -v npm >/dev/null || od_install nodejs npm >&2
    mkdir -p "$dir"
    npm install --no-audit --no-fund --prefix "$dir" "$OD_DDB_NPM_PACKAGE" >&2
    echo "$dir/$sub"
}

# write_conf FILE PORT STORE EVENTS [EXTRA LINES...]
write_conf() {
    local file=$1 port=$2 store=$3 events=$4
    shift 4
    {
        echo "listen_address = 127.0.0.1"
        echo "listen_port = $port"
        echo "http_threads = $HTTP_THREADS"
        echo "worker_threads = $WORKER_THREADS"
        echo "log_level = warn"
        echo "store = $store"
        echo "sqlite_path = $(dirname "$file")/orderd.db"
        echo "events_sink = $events"
        echo "events_file = $(dirname "$file")/events.jsonl"
        printf '%s\n' "$@"
    } >"$file"
}

# start_orderd NAME STORE EVENTS [EXTRA LINES...]: a fresh orderd in $WORK/NAME; sets
# ORDERD_NAME, ORDERD_PID and ORDERD_PORT.
start_orderd() {
    local dir=$WORK/$1
    mkdir -p "$dir"
    ORDERD_NAME=$1
    ORDERD_PORT=$(free_port)
    write_conf "$dir/orderd.conf" "$ORDERD_PORT" "$2" "$3" "${@:4}"
    (cd "$dir" && exec "$BUILD/orderd" -c orderd.conf) 2>"$dir/orderd.log" &
    ORDERD_PID=$!
    PIDS+=("$ORDERD_PID")
    if ! wait_port "$ORDERD_PORT"; then
        echo "orderd ($1) did not start; the end of $dir/orderd.log:" >&2
        tail -n 20 "$dir/orderd.log" >&2
        return 1
    fi
}

start_floor() {
    FLOOR_PORT=$(free_port)
    "$TOOLS/odb-floor" -p "$FLOOR_PORT" -t "$HTTP_THREADS" 2>"$WORK/floor.log" &
    FLOOR_PID=$!
    PIDS+=("$FLOOR_PID")
    wait_port "$FLOOR_PORT"
}

# ---- drivers ----

# wrk_run MODE PORT SECONDS [ENV...]: the peak-rate run; prints wrk's ODB_RESULT JSON.
wrk_run() {
    local mode=$1 port=$2 secs=$3
    shift 3
    env ODB_MODE="$mode" ODB_SALT="$RANDOM$RANDOM" "$@" \
        wrk -t2 -c"$CONNS" -d"${secs}s" --timeout 10s -s "$BENCH/wrk/orders.lua" \
        "http://127.0.0.1:$port/orders" | sed -n 's/^ODB_RESULT //p'
}

# wrk_errors MODE: jq filter counting answers this mode did not expect, plus socket errors.
wrk_errors() {
    local ok
    case $1 in
    unique) ok='.status["201"]' ;;
    dup) ok='.status["200"] + .status["201"]' ;;
    invalid) ok='.status["400"]' ;;
    get) ok='.status["200"]' ;;
    esac
    echo "(.requests - ($ok)) + ([.socket_errors[]] | add)"
}

# add_row JSON: appends one finished table row.
add_row() { echo "$1" >>"$ROWS"; }

# peak ID NAME MODE TARGET [ENV...]: floor and orderd, the same wrk script, back to back, in
# ROUNDS alternating pairs of DURATION/ROUNDS seconds each (this VM's speed drifts over minutes:
# the floor alone ranged 94k-171k answers/s between runs). The row is the pair with the median
# ratio; every pair's figures are kept in its detail.
peak() {
    local id=$1 name=$2 mode=$3 target=$4
    shift 4
    local bg floor ours pairs=() i secs=$(((DURATION + ROUNDS - 1) / ROUNDS))
    bg=$(background_busy)
    log "scenario $id: $name (floor, then orderd, ${ROUNDS}x ${secs}s each; background busy ${bg}%)"
    if [[ -n ${PEAK_BEFORE:-} ]]; then
        "$PEAK_BEFORE" # set-up that must happen just before orderd's runs
    fi
    wrk_run "$mode" "$ORDERD_PORT" 2 "$@" >/dev/null # warm-up, not measured
    ROWS_BEFORE=$(orders_in_db "$ORDERD_NAME")
    for ((i = 0; i < ROUNDS; i++)); do
        floor=$(wrk_run "$mode" "$FLOOR_PORT" "$secs" "$@")
        ours=$(wrk_run "$mode" "$ORDERD_PORT" "$secs" "$@")
        pairs+=("$(jq -nc --argjson f "$floor" --argjson o "$ours" \
            '{ratio:($o.achieved_rps / $f.achieved_rps), orderd:$o, floor:$f}')")
    done
    ROWS_AFTER=$(orders_in_db "$ORDERD_NAME")
    add_row "$(printf '%s\n' "${pairs[@]}" | jq -sc --arg id "$id" --arg name "$name" \
        --arg events "$EVENTS" --argjson target "$target" --argjson bg "$bg" \
        "(sort_by(.ratio) | .[(length - 1) / 2 | floor]) as \$m | \$m.orderd as \$o | \$m.floor as \$f |
         {id:\$id, name:\$name, events:\$events, tool:\"wrk\", offered_rps:\"max\",
          achieved_rps:\$o.achieved_rps, p50_ms:\$o.p50_ms, p95_ms:\$o.p95_ms,
          p99_ms:\$o.p99_ms, max_ms:\$o.max_ms, errors:(map(.orderd | $(wrk_errors "$mode")) | add),
          ratio:\$m.ratio, ratio_to:\"floor\", target:\$target, background_busy_pct:\$bg,
          detail:{orderd:\$o, floor:\$f, floor_errors:(map(.floor.socket_errors[]) | add),
                  ratios:map(.ratio), status_201_all_rounds:(map(.orderd.status[\"201\"]) | add),
                  rounds:.}}")"
}

# fixed ID NAME SECONDS IDLE_S: odb-load at FIXED_RATE new orders/s, after IDLE_S seconds idle.
# The detail keeps the worst latency of every second, so periodic stalls show where they are.
fixed() {
    local id=$1 name=$2 secs=$3 idle=$4 bg out tl=$WORK/timeline-$1.txt
    # The servers before wrote gigabytes; their dirty pages would still be going to disk under
    # this run's commits (a 180 ms stall and p99 88 ms once). Idle means idle disks too.
    sync
    bg=$(background_busy)
    log "scenario $id: $name (background busy ${bg}%)"
    sleep "$idle"
    out=$("$TOOLS/odb-load" -p "$ORDERD_PORT" -m unique -r "$FIXED_RATE" -d "$secs" -c "$CONNS" \
        -g 5 -s "$RANDOM$RANDOM" -l "$id" -T "$tl")
    local worst
    worst=$(awk '{s = int($1); if ($3 > m[s]) m[s] = $3; if (s > n) n = s}
        END {printf "["; for (i = 0; i <= n; i++) printf "%s%.1f", (i ? "," : ""), m[i]; print "]"}' "$tl")
    add_row "$(jq -nc --argjson o "$out" --arg id "$id" --arg name "$name" --arg ev "$EVENTS" \
        --argjson bg "$bg" --argjson rate "$FIXED_RATE" --argjson worst "$worst" \
        '{id:$id, name:$name, events:$ev, tool:"odb-load", offered_rps:$o.offered_rps,
          achieved_rps:$o.achieved_rps, p50_ms:$o.p50_ms, p95_ms:$o.p95_ms, p99_ms:$o.p99_ms,
          max_ms:$o.max_ms, errors:$o.errors, ratio:($o.achieved_rps / $rate),
          ratio_to:"offered", target:{p99_ms_max:10, errors:0, served:1},
          background_busy_pct:$bg, detail:($o + {worst_ms_per_second:$worst})}')"
}

# ---- scenarios ----

# Scenario 1's promise: every 201 is a committed row. Counted in the database itself.
orders_in_db() { sqlite3 "$WORK/$1/orderd.db" 'SELECT count(*) FROM orders'; }

# seed_get: 20,000 stored orders and their ids for scenario 4, on the fresh "get" server. Done
# right before the run so that none of their idempotency records expires (and is purged) during
# it: the purge is scenario 5's subject, not this one's.
seed_get() {
    "$TOOLS/odb-load" -p "$ORDERD_PORT" -m unique -r 0 -n 20000 -c "$CONNS" -d 60 \
        -s "$RANDOM$RANDOM" -l seed >/dev/null
    sqlite3 "$WORK/get/orderd.db" 'SELECT order_id FROM orders' >"$WORK/ids.txt"
}

scenarios_http() {
    start_floor
    # Invalid orders and replays first: scenario 1's records would expire under them 15 s later,
    # and the writer's purge of those would share the CPU with them.
    start_orderd main sqlite "$EVENTS"
    peak 3 "invalid orders (400)" invalid 0.5
    peak 2 "duplicates (hot-cache replays)" dup 0.5 ODB_DUP_KEYS=100
    peak 1 "new unique orders (sqlite)" unique 0.25
    # Every 201 of the measured run must be a committed row. Orders in flight when wrk stops
    # are committed without their answer being read, so rows may exceed 201s by up to CONNS.
    local n201
    n201=$(jq -s '.[] | select(.id == "1") | .detail.status_201_all_rounds' "$ROWS")
    jq -c --argjson rows "$((ROWS_AFTER - ROWS_BEFORE))" --argjson n "$n201" \
        'if .id == "1" then .detail.rows_added = $rows | .detail.all_201_committed = ($rows >= $n)
           | .name += (if $rows >= $n then " [every 201 in the db]" else " [201s MISSING]" end)
         else . end' "$ROWS" \
        >"$ROWS.tmp" && mv "$ROWS.tmp" "$ROWS"
    stop "$ORDERD_PID"
    start_orderd get sqlite "$EVENTS"
    echo 01M7ZWXHADTN2RWPN7KR1H6A1V >"$WORK/ids.txt" # the floor answers any id alike
    PEAK_BEFORE=seed_get peak 4 "GET /orders/{id}" get null ODB_IDS="$WORK/ids.txt"
    stop "$FLOOR_PID"
    stop "$ORDERD_PID"
    start_orderd fixed sqlite "$EVENTS"
    fixed 5 "fixed ${FIXED_RATE}/s new orders, ${FIXED_S}s" "$FIXED_S" 2
    stop "$ORDERD_PID"
    # A fresh server: idle since start, nothing stored yet expiring under the burst.
    start_orderd burst sqlite "$EVENTS"
    fixed 6 "burst idle -> ${FIXED_RATE}/s, ${BURST_S}s" "$BURST_S" 5
    stop "$ORDERD_PID"
}

# mem_count: orders for the memory run: MEM_ORDERS, or as many hundred-thousands as scenario 1's
# rate gets through in MEM_BUDGET_S (at least two samples), so the suite stays bounded.
mem_count() {
    local rate fit
    rate=$(jq -s '.[] | select(.id == "1") | .achieved_rps | floor' "$ROWS")
    if [[ -z $rate ]]; then
        echo "$MEM_ORDERS" # scenario 1 not run (ODB_ONLY): no rate to budget by
        return 0
    fi
    fit=$((rate * MEM_BUDGET_S / MEM_FIRST * MEM_FIRST))
    ((fit < 2 * MEM_FIRST)) && fit=$((2 * MEM_FIRST))
    echo $((fit < MEM_ORDERS ? fit : MEM_ORDERS))
}

# mem_drive COUNT: odb-load closed-loop, pausing every MEM_FIRST answers (all connections idle)
# while the RSS is read; prints the samples as JSON lines.
mem_drive() {
    local count=$1 t0=$SECONDS line pid in out
    # Progress lines (stderr) come to us through the coprocess pipe; the JSON goes to a file.
    coproc LOAD { { "$TOOLS/odb-load" -p "$ORDERD_PORT" -m unique -r 0 -n "$count" \
        -c "$CONNS" -d "$((MEM_BUDGET_S * 2))" -P "$MEM_FIRST" -s "$RANDOM$RANDOM" -l memory \
        >"$WORK/memory.json"; } 2>&1; }
    pid=$LOAD_PID
    PIDS+=("$pid")
    # Copies: bash drops LOAD[] when the coprocess exits, before the last line is read.
    exec {in}<&"${LOAD[0]}" {out}>&"${LOAD[1]}"
    while IFS= read -r line <&"$in"; do
        if [[ $line == progress* ]]; then
            echo "{\"orders\":${line#progress },\"rss_kib\":$(rss_kib "$ORDERD_PID"),\"t_s\":$((SECONDS - t0))}"
            echo go >&"$out"
        else
            echo "$line" >&2
        fi
    done
    exec {in}<&- {out}>&-
    stop "$pid"
}

# The memory run: as fast as orderd goes, reading its RSS at every MEM_FIRST orders.
scenario_memory() {
    local count bg rss0 samples
    count=$(mem_count)
    bg=$(background_busy)
    log "scenario 8: memory, $count unique orders as fast as orderd answers (background busy ${bg}%)"
    start_orderd memory sqlite "$EVENTS"
    rss0=$(rss_kib "$ORDERD_PID")
    samples=$(mem_drive "$count" | jq -sc .)
    add_row "$(jq -nc --argjson s "$samples" --argjson o "$(cat "$WORK/memory.json")" \
        --argjson rss0 "$rss0" --argjson want "$MEM_ORDERS" --argjson first "$MEM_FIRST" \
        --arg ev "$EVENTS" --argjson bg "$bg" \
        '($s | map(select(.orders == $first)) | .[0].rss_kib) as $a | ($s | last) as $z |
         {id:"8", name:"memory: RSS after \($first) and \($z.orders) orders", events:$ev,
          tool:"odb-load", offered_rps:"max", achieved_rps:$o.achieved_rps, p50_ms:$o.p50_ms,
          p95_ms:$o.p95_ms, p99_ms:$o.p99_ms, max_ms:$o.max_ms, errors:$o.errors,
          ratio:($z.rss_kib / $a), ratio_to:"RSS@\($first)", target:1.10,
          background_busy_pct:$bg,
          detail:{rss_start_kib:$rss0, rss_first_kib:$a, rss_last_kib:$z.rss_kib,
                  growth_second_half:($z.rss_kib /
                    ($s | map(select(.orders >= $z.orders / 2)) | .[0].rss_kib)),
                  orders_wanted:$want, orders_done:$z.orders, samples:$s, load:$o}}')"
    stop "$ORDERD_PID"
}

# ---- DynamoDB ----

start_ddb() {
    local jar
    jar=$(ddb_jar)
    DDB_PORT=$(free_port)
    (cd "$(dirname "$jar")" && exec java -Djava.library.path=./DynamoDBLocal_lib \
        -jar DynamoDBLocal.jar -inMemory -port "$DDB_PORT") >"$WORK/ddb.log" 2>&1 &
    DDB_PID=$!
    PIDS+=("$DDB_PID")
    wait_port "$DDB_PORT"
}

# ddb_raw LABEL OUTBOX(0|1) SECONDS TABLE: the engine's own TransactWriteItems rate.
ddb_raw() {
    local outbox=()
    [[ $2 == 1 ]] && outbox=(-e)
    "$TOOLS/odb-ddbload" -u "http://127.0.0.1:$DDB_PORT" -c "$DDB_CONC" -d "$3" -l "$1" \
        -t "$4" "${outbox[@]}"
}

# ddb_pair ID EVENTS WARM_S: engine, orderd, engine again; the ratio is orderd / the engine's
# mean. Both write the same table, which orderd --init-store creates (with its outbox index).
ddb_pair() {
    local id=$1 events=$2 warm=$3 outbox table=bench_$2 raw1 ours raw2 bg
    outbox=$([[ $events == none ]] && echo 0 || echo 1)
    start_orderd "ddb-$events" dynamodb "$events" "aws_region = us-east-1" \
        "dynamodb_endpoint = http://127.0.0.1:$DDB_PORT" "dynamodb_table = $table"
    (cd "$WORK/ddb-$events" && "$BUILD/orderd" --init-store -c orderd.conf 2>>orderd.log)
    bg=$(background_busy)
    log "scenario $id: orderd on DynamoDB Local (events=$events) vs the engine (background busy ${bg}%)"
    # The JVM compiles its hot paths during the first seconds: part of neither rate.
    ddb_raw warm "$outbox" "$warm" "$table" >/dev/null
    wrk_run unique "$ORDERD_PORT" 3 >/dev/null
    raw1=$(ddb_raw raw-before "$outbox" "$DDB_DURATION" "$table")
    ours=$(wrk_run unique "$ORDERD_PORT" "$DDB_DURATION")
    raw2=$(ddb_raw raw-after "$outbox" "$DDB_DURATION" "$table")
    add_row "$(jq -nc --argjson a "$raw1" --argjson o "$ours" --argjson b "$raw2" --arg id "$id" \
        --arg ev "$events" --argjson bg "$bg" \
        "{id:\$id, name:\"new orders, DynamoDB Local store\", events:\$ev, tool:\"wrk\",
          offered_rps:\"max\", achieved_rps:\$o.achieved_rps, p50_ms:\$o.p50_ms,
          p95_ms:\$o.p95_ms, p99_ms:\$o.p99_ms, max_ms:\$o.max_ms,
          errors:(\$o | $(wrk_errors unique)),
          ratio:(\$o.achieved_rps / ((\$a.achieved_rps + \$b.achieved_rps) / 2)),
          ratio_to:\"engine TransactWriteItems\", target:0.8, background_busy_pct:\$bg,
          detail:{orderd:\$o, engine_before:\$a, engine_after:\$b}}")"
    stop "$ORDERD_PID"
}

scenario_ddb() {
    export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_EC2_METADATA_DISABLED=true
    start_ddb
    ddb_pair 7 "$EVENTS" 10
    if [[ $EVENTS != none ]]; then
        ddb_pair 7n none 4
    fi
    stop "$DDB_PID"
}

# ---- instructions per request (callgrind: exact counts, no timing noise) ----

# cg_start DIR PORT CMD...: CMD under callgrind with instrumentation off; sets CG_PID.
cg_start() {
    local dir=$1 port=$2
    shift 2
    (cd "$dir" && exec valgrind --tool=callgrind --instr-atstart=no \
        --callgrind-out-file="$dir/callgrind.out" "$@") 2>"$dir/valgrind.log" &
    CG_PID=$!
    PIDS+=("$CG_PID")
    CG_DUMPS=0
    wait_port "$port"
}

# cg_phase DIR PORT MODE N WARM_SALT SALT [ODB-LOAD ARGS...]: a 200-request warm-up (not
# counted), then N requests counted; prints {mode, per_request, memset_per_request, ...}.
cg_phase() {
    local dir=$1 port=$2 mode=$3 n=$4 warm_salt=$5 salt=$6
    shift 6
    "$TOOLS/odb-load" -p "$port" -m "$mode" -r 0 -n 200 -c 16 -d 120 -s "$warm_salt" "$@" >/dev/null
    callgrind_control -i on "$CG_PID" >/dev/null 2>&1
    "$TOOLS/odb-load" -p "$port" -m "$mode" -r 0 -n "$n" -c 16 -d 300 -s "$salt" "$@" \
        >"$dir/load-$mode.json"
    callgrind_control -d "$CG_PID" >/dev/null 2>&1
    callgrind_control -i off "$CG_PID" >/dev/null 2>&1
    CG_DUMPS=$((CG_DUMPS + 1))
    local file=$dir/callgrind.out.$CG_DUMPS ir memset
    ir=$(sed -n 's/^totals: //p' "$file")
    # libmicrohttpd zeroes each connection's 32 KiB memory pool after every request; callgrind
    # counts that rep-stosb memset byte by byte, so it is reported apart (the floor pays it too).
    memset=$(callgrind_annotate "$file" 2>/dev/null |
        awk '/memset/ && $1 ~ /^[0-9,]+$/ {gsub(",", "", $1); s += $1} END {print s + 0}')
    jq -nc --arg mode "$mode" --argjson ir "$ir" --argjson m "$memset" --argjson n "$n" \
        --argjson load "$(cat "$dir/load-$mode.json")" \
        '{mode:$mode, requests:$n, instructions:$ir, per_request:($ir / $n | floor),
          memset_per_request:($m / $n | floor), errors:$load.errors}'
}

cg_orderd() {
    local dir=$WORK/cg-orderd port salt=$RANDOM$RANDOM
    mkdir -p "$dir"
    port=$(free_port)
    write_conf "$dir/orderd.conf" "$port" sqlite "$EVENTS"
    cg_start "$dir" "$port" "$BUILD/orderd" -c orderd.conf
    cg_phase "$dir" "$port" unique "$CG_ORDERS" "$RANDOM" "$salt"
    # Replays: the warm-up stores the 100 orders, every counted request is a hot-cache hit.
    cg_phase "$dir" "$port" dup "$CG_ORDERS" "$salt" "$salt" -k 100
    cg_phase "$dir" "$port" invalid "$CG_ORDERS" 1 1
    sqlite3 "$dir/orderd.db" 'SELECT order_id FROM orders LIMIT 2000' >"$dir/ids.txt"
    cg_phase "$dir" "$port" get "$CG_ORDERS" 1 1 -i "$dir/ids.txt"
    stop "$CG_PID"
}

cg_floor() {
    local dir=$WORK/cg-floor port
    mkdir -p "$dir"
    port=$(free_port)
    cg_start "$dir" "$port" "$TOOLS/odb-floor" -p "$port" -t "$HTTP_THREADS"
    cg_phase "$dir" "$port" unique "$CG_ORDERS" 1 2
    stop "$CG_PID"
}

scenario_instructions() {
    log "instructions per request (callgrind, $CG_ORDERS requests per mode)"
    local ours floor
    ours=$(cg_orderd | jq -sc 'map({(.mode): .}) | add')
    floor=$(cg_floor)
    jq -nc --argjson o "$ours" --argjson f "$floor" --arg ev "$EVENTS" \
        '{events:$ev, orderd_per_accepted_order:$o.unique.per_request,
          floor_per_request:$f.per_request, ratio:($o.unique.per_request / $f.per_request),
          orderd:$o, floor:$f}' >"$WORK/cpu.json"
}

# ---- events: publishing to an SNS / SQS / EventBridge stand-in (issue 15) ----

now_ms() { date +%s%3N; }

# start_sinkd NAME: odb-sinkd answering every call after EV_LATENCY_MS, in $WORK/NAME (its log;
# its final report goes to sinkd.json when it is stopped). Sets SINKD_PID and SINKD_PORT.
start_sinkd() {
    local dir=$WORK/$1
    mkdir -p "$dir"
    SINKD_PORT=$(free_port)
    "$TOOLS/odb-sinkd" -p "$SINKD_PORT" -l "$EV_LATENCY_MS" >"$dir/sinkd.json" 2>"$dir/sinkd.log" &
    SINKD_PID=$!
    PIDS+=("$SINKD_PID")
    wait_port "$SINKD_PORT"
}

# sinkd_stats: odb-sinkd's figures so far (JSON; GET /stats).
sinkd_stats() { curl -sf --max-time 5 "http://127.0.0.1:$SINKD_PORT/stats"; }

# outbox_rows NAME: events stored and not yet published, counted in orderd's database: the
# backlog. (A published event's row is deleted in the writer's next commit.)
outbox_rows() { sqlite3 -cmd '.timeout 5000' "$WORK/$1/orderd.db" 'SELECT count(*) FROM outbox'; }

# orderd_metric NAME: an unlabelled metric of orderd's /metrics, or null where it has none.
orderd_metric() {
    { curl -sf --max-time 5 "http://127.0.0.1:$ORDERD_PORT/metrics" || true; } |
        awk -v m="$1" '$1 == m {v = $2} END {print (v == "" ? "null" : v)}'
}

# ev_orderd NAME SINK: a fresh orderd (SQLite store, defaults otherwise) whose SINK is odb-sinkd.
ev_orderd() {
    local url=http://127.0.0.1:$SINKD_PORT extra=()
    IFS=';' read -ra extra <<<"${ODB_EVENTS_CONF:-}"
    start_orderd "$1" sqlite "$2" "aws_region = us-east-1" "aws_access_key_id = bench" \
        "aws_secret_access_key = bench" "sqs_endpoint = $url" \
        "sqs_queue_url = $url/000000000000/orders" "sns_endpoint = $url" \
        "sns_topic_arn = arn:aws:sns:us-east-1:000000000000:orders" \
        "eventbridge_endpoint = $url" "${extra[@]}"
}

# ev_sampler NAME T0_MS: every second "ms-since-T0 outbox-rows events distinct-events" (the last
# two received by odb-sinkd; null where unreadable).
ev_sampler() {
    local rows ev
    trap - ERR        # being stopped mid-command is how it ends, not a failure
    trap 'exit 0' TERM
    while :; do
        rows=$(outbox_rows "$1" 2>/dev/null) || rows=null
        ev=$(sinkd_stats | jq -r '"\(.events) \(.distinct)"') || ev="null null"
        echo "$(($(now_ms) - $2)) ${rows:-null} $ev"
        sleep 1
    done
}

# ev_drain ORDERS: waits, at most EV_DRAIN_S, until odb-sinkd has received the events of ORDERS
# orders (distinct event ids); prints the milliseconds it took, or null when it did not.
ev_drain() {
    local t0 got
    t0=$(now_ms)
    while (($(now_ms) - t0 < EV_DRAIN_S * 1000)); do
        got=$(sinkd_stats | jq -e .distinct) || {
            echo "odb-sinkd does not answer GET /stats (see its log)" >&2
            return 1
        }
        if ((got >= $1)); then
            echo $(($(now_ms) - t0))
            return 0
        fi
        sleep 0.2
    done
    echo null
}

# ev_run ID NAME SINK RATE SECONDS TARGET: orderd publishing through SINK to odb-sinkd while
# odb-load sends new orders, RATE a second (0: as fast as orderd answers) for SECONDS; then at
# most EV_DRAIN_S for the backlog to go. The row: orders/s, and the commit-to-publish lag in
# the latency columns; events/s, backlog and drain in its detail (see bench/README.md).
ev_run() {
    local id=$1 name=$2 sink=$3 rate=$4 secs=$5 target=$6 dir=$WORK/ev-$1
    local args=(-r "$rate" -d "$secs" -g 5) bg load t0 t1 t2 sampler
    local at_end rows_end pending_end drained_ms at_drain left metrics rows errs alive=true
    ((rate > 0)) || args=(-r 0 -n 1000000000 -d "$secs")
    start_sinkd "ev-$id"
    ev_orderd "ev-$id" "$sink"
    sync
    bg=$(background_busy)
    log "scenario $id: $name (events_sink = $sink, odb-sinkd answering after ${EV_LATENCY_MS} ms; background busy ${bg}%)"
    t0=$(now_ms)
    ev_sampler "ev-$id" "$t0" >"$dir/timeline.txt" &
    sampler=$!
    PIDS+=("$sampler")
    load=$("$TOOLS/odb-load" -p "$ORDERD_PORT" -m unique "${args[@]}" -c "$CONNS" \
        -s "$RANDOM$RANDOM" -l "$id")
    t1=$(now_ms)
    if ! kill -0 "$ORDERD_PID" 2>/dev/null; then
        alive=false
        log "scenario $id: orderd is GONE (it ended during the load; see $dir/orderd.log)"
    fi
    at_end=$(sinkd_stats)
    rows_end=$(outbox_rows "ev-$id")
    pending_end=$(orderd_metric orderd_outbox_pending)
    rows=$(orders_in_db "ev-$id") # every order is in: odb-load has had all its answers
    log "scenario $id: load done; $((rows - $(jq .distinct <<<"$at_end"))) of $rows events not yet received, waiting up to ${EV_DRAIN_S} s"
    drained_ms=$(ev_drain "$rows")
    t2=$(now_ms)
    at_drain=$(sinkd_stats)
    left=$(outbox_rows "ev-$id")
    stop "$sampler"
    metrics=$(jq -nc --argjson pub "$(orderd_metric orderd_events_published_total)" \
        --argjson failed "$(orderd_metric orderd_events_failed_total)" \
        --argjson retries "$(orderd_metric orderd_aws_retries_total)" \
        --argjson aws_errors "$(orderd_metric orderd_aws_errors_total)" \
        --argjson pending_end "$pending_end" \
        '{events_published_total:$pub, events_failed_total:$failed, aws_retries_total:$retries,
          aws_errors_total:$aws_errors, outbox_pending_at_load_end:$pending_end}')
    # orderd's own complaints (failed calls, unexpected answers): counted, the first one kept.
    errs=$(jq -Rsc 'split("\n") | map(fromjson? | select(.level == "error" or .level == "warn")
        | select(.msg | test("no tls_cert_file|no api_keys_file") | not))
        | {count:length, first:(.[0].msg // null)}' "$dir/orderd.log")
    stop "$ORDERD_PID" # publishes what is queued (up to 5 s): after the figures, not in them
    stop "$SINKD_PID"
    add_row "$(jq -nc --argjson o "$load" --argjson a "$at_end" --argjson z "$at_drain" \
        --argjson m "$metrics" --argjson logged "$errs" --arg id "$id" --arg name "$name" \
        --arg sink "$sink" --argjson bg "$bg" --argjson target "$target" \
        --argjson t0 "$t0" --argjson t1 "$t1" --argjson t2 "$t2" --argjson drained "$drained_ms" \
        --argjson rows_end "$rows_end" --argjson left "$left" --argjson rows "$rows" \
        --argjson rate "$rate" --argjson lat "$EV_LATENCY_MS" --argjson goal "$EV_TARGET_RATE" \
        --argjson alive "$alive" \
        --argjson tl "$(jq -Rsc 'split("\n") | map(select(length > 0) | split(" ")
            | map(tonumber? // null))' "$dir/timeline.txt")" \
        '(($t1 - $t0) / 1000) as $load_s | (($t2 - $t1) / 1000) as $wait_s |
         (if $drained == null then $t2 else $t1 + $drained end) as $busy_end |
         ($z.distinct / (($busy_end - $t0) / 1000)) as $sustained |
         {id:$id, name:$name, events:$sink, tool:"odb-load",
          offered_rps:(if $rate > 0 then $rate else "max" end), achieved_rps:$o.achieved_rps,
          p50_ms:$z.lag_ms.p50, p95_ms:$z.lag_ms.p95, p99_ms:$z.lag_ms.p99, max_ms:$z.lag_ms.max,
          errors:($o.errors + $z.bad_calls + $z.bad_events + ($m.events_failed_total // 0)
                  + (if $alive then 0 else 1 end)),
          ratio:(if $id == "E1" then $sustained / $goal
                 elif $id == "E2" then ($a.distinct / $load_s) / $o.achieved_rps
                 else $z.distinct / $rows end),
          ratio_to:(if $id == "E1" then "\($goal) events/s"
                    elif $id == "E2" then "orders/s (events kept pace)" else "orders" end),
          target:$target, background_busy_pct:$bg,
          detail:{sink_latency_ms:$lat, load_s:$load_s, orders_accepted:$o.status["201"],
                  orders_in_db:$rows, events_received_at_load_end:$a.events,
                  events_received:$z.events, distinct_events:$z.distinct,
                  duplicates:$z.duplicates, events_per_s_during_load:($a.distinct / $load_s),
                  events_per_s_after_load:(($z.distinct - $a.distinct) / $wait_s),
                  events_per_s_sustained:$sustained,
                  backlog_end_events:($rows - $a.distinct), outbox_rows_at_load_end:$rows_end,
                  drained:($drained != null), drain_s:(if $drained == null then null
                                                     else $drained / 1000 end),
                  drain_wait_max_s:'"$EV_DRAIN_S"', backlog_left:($rows - $z.distinct),
                  outbox_rows_left:$left, all_delivered:($z.distinct >= $rows),
                  orderd:$m, orderd_alive_at_load_end:$alive, orderd_log_errors:$logged,
                  timeline:$tl, load:$o, sinkd:($z | del(.per_second)),
                  sinkd_per_second:$z.per_second}}')"
}

scenarios_events() {
    local s
    export AWS_EC2_METADATA_DISABLED=true
    # The responder against each sink's own protocol: every event arrives, nothing is refused.
    for s in sns sqs eventbridge; do
        ev_run "E0-$s" "events: responder check, 200 orders/s for 3s" "$s" 200 3 '{"delivered":true}'
    done
    ev_run E1 "events: peak new orders for ${EV_PEAK_S}s (lag)" "$EV_SINK" 0 "$EV_PEAK_S" \
        "{\"events_per_s_min\":$EV_TARGET_RATE}"
    ev_run E2 "events: ${FIXED_RATE}/s new orders for ${EV_FIXED_S}s (lag)" "$EV_SINK" \
        "$FIXED_RATE" "$EV_FIXED_S" \
        "{\"lag_p99_ms_max\":$EV_TARGET_P99_MS,\"backlog_end_max\":$FIXED_RATE,\"delivered\":true}"
}

# ---- the report ----

print_table() {
    jq -r '
      def n(x): if x == null then "-" elif (x | type) == "number" then
        (if x >= 100 then (x | floor | tostring) else ((x * 100 | round) / 100 | tostring) end)
        else (x | tostring) end;
      ["#", "scenario", "events", "offered/s", "achieved/s", "p50 ms", "p95 ms", "p99 ms",
       "max ms", "errors", "ratio", "to", "target", "bg%"],
      (.scenarios[] | [.id, .name, .events, n(.offered_rps), n(.achieved_rps), n(.p50_ms),
        n(.p95_ms), n(.p99_ms), n(.max_ms), n(.errors), n(.ratio), .ratio_to,
        (if .pass == null then "-" elif .pass then "PASS" else "MISS" end), n(.background_busy_pct)])
      | @tsv' "$1" | column -t -s $'\t'
    jq -r '.cpu | select(. != null) |
      "", "instructions per request (callgrind, events=\(.events); [in brackets]: without the",
      "libmicrohttpd pool memset that both servers pay, see bench/README.md):",
      (.floor as $f | .orderd | to_entries[] | .value as $o |
       "  \($o.mode): orderd \($o.per_request) [\($o.per_request - $o.memset_per_request)]" +
       "  floor \($f.per_request) [\($f.per_request - $f.memset_per_request)]" +
       "  x\($o.per_request / $f.per_request * 10 | round / 10)" +
       " [x\(($o.per_request - $o.memset_per_request) / ($f.per_request - $f.memset_per_request) | round)]" +
       (if $o.errors > 0 then "  (\($o.errors) errors)" else "" end))' "$1"
    jq -r '[.scenarios[] | select(.id | startswith("E"))] | select(length > 0) |
      def r: if . == null then "-" else (. | round | tostring) end;
      def s: if . == null then "-" else ((. * 10 | round) / 10 | tostring) end;
      "", "events (odb-sinkd answering after \(.[0].detail.sink_latency_ms) ms; in the E rows the latency columns",
      "are the lag from commit (occurred_at) to the sink call that published the event answering):",
      (.[] | .detail as $d |
       "  \(.id) \(.events): \($d.orders_accepted) orders in \($d.load_s | s) s;" +
       " events/s \($d.events_per_s_during_load | r) during the load, \($d.events_per_s_after_load | r) after," +
       " \($d.events_per_s_sustained | r) sustained",
       "     backlog at the end of the load \($d.backlog_end_events) events not received (outbox rows" +
       " \($d.outbox_rows_at_load_end), orderd_outbox_pending \($d.orderd.outbox_pending_at_load_end // "-"));" +
       (if $d.drained then " drained in \($d.drain_s | s) s" else
        " NOT drained in \($d.drain_wait_max_s) s: \($d.backlog_left) left" end) +
       "; \($d.duplicates) duplicates" +
       (if $d.all_delivered then "; every event delivered" else "" end),
       (if $d.orderd_alive_at_load_end then empty else
        "     orderd ENDED during the load (a signal from outside, or a crash): see its log" end),
       (if $d.load.errors > 0 then "     odb-load: \($d.load.errors) errors \($d.load.error_detail | tojson)"
        else empty end),
       (if $d.orderd_log_errors.count > 0 then
        "     orderd logged \($d.orderd_log_errors.count) errors/warnings, first: \($d.orderd_log_errors.first)"
        else empty end))' "$1"
}

# pass: each row judged against its target.
judge() {
    jq -c '
      if .id == "1" then .pass = (.ratio >= .target and .errors == 0 and .detail.all_201_committed)
      elif .id == "5" or .id == "6" then
        .pass = (.errors == 0 and .p99_ms <= 10 and .detail.completed == .detail.sent and .ratio >= 0.99)
      elif .id == "8" then .pass = (.ratio <= .target and .errors == 0)
      elif (.id | startswith("E")) then .pass = (.errors == 0 and
        (.target.events_per_s_min == null or .detail.events_per_s_sustained >= .target.events_per_s_min) and
        (.target.lag_p99_ms_max == null or (.p99_ms != null and .p99_ms <= .target.lag_p99_ms_max)) and
        (.target.backlog_end_max == null or .detail.backlog_end_events < .target.backlog_end_max) and
        (.target.delivered != true or .detail.all_delivered))
      elif .target == null then .pass = null
      else .pass = (.ratio >= .target and .errors == 0) end' "$ROWS"
}

report() {
    local out=$RESULTS/latest.json stamp
    stamp=$(date -u +%Y%m%dT%H%M%SZ)
    mkdir -p "$RESULTS"
    judge >"$ROWS.judged"
    jq -n --slurpfile rows "$ROWS.judged" \
        --argjson cpu "$(cat "$WORK/cpu.json" 2>/dev/null || echo null)" \
        --arg when "$stamp" --arg git "$(git -C "$OD_ROOT" describe --always --dirty 2>/dev/null || echo unknown)" \
        --arg cpus "$(nproc)" --arg model "$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)" \
        --argjson s "{\"duration_s\":$DURATION,\"rounds\":$ROUNDS,\"ddb_duration_s\":$DDB_DURATION,\"wrk_connections\":$CONNS,\"http_threads\":$HTTP_THREADS,\"worker_threads\":$WORKER_THREADS,\"events_sink\":\"$EVENTS\",\"fixed_rate\":$FIXED_RATE,\"quick\":$QUICK,\"events_part\":{\"sink\":\"$EV_SINK\",\"sink_latency_ms\":$EV_LATENCY_MS,\"peak_s\":$EV_PEAK_S,\"fixed_s\":$EV_FIXED_S,\"drain_wait_max_s\":$EV_DRAIN_S}}" \
        '{schema:1, when:$when, git:$git, machine:{cpus:($cpus | tonumber), model:$model},
          settings:$s, scenarios:($rows | sort_by(.id)), cpu:$cpu}' >"$out"
    cp "$out" "$RESULTS/$stamp.json"
    echo
    print_table "$out"
    echo
    echo "JSON: $out (bg% = other work on the machine during the run, see bench/README.md)"
}

# wanted PART: whether ODB_ONLY (a comma list of http, memory, ddb, cpu, events; default all)
# names PART.
wanted() { [[ ,${ODB_ONLY:-http,memory,ddb,cpu,events}, == *,$1,* ]]; }

main() {
    install_packages
    build
    mkdir -p "$WORK"
    : >"$ROWS"
    local t0=$SECONDS
    if wanted http; then
        scenarios_http
    fi
    if wanted memory; then
        scenario_memory
    fi
    if wanted ddb && [[ ${ODB_SKIP_DDB:-0} != 1 ]]; then
        scenario_ddb
    fi
    if wanted cpu && [[ ${ODB_SKIP_CALLGRIND:-0} != 1 ]]; then
        scenario_instructions
    fi
    if wanted events; then
        scenarios_events
    fi
    report
    log "done in $((SECONDS - t0)) s"
}

main "$@"
