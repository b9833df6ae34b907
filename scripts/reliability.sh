#!/usr/bin/env bash
# Reliability and security of the ten binaries, measured, with counts:
#   1. load: every mechanism carries 100,000 small messages and 1,000 of the largest it allows
#      (64 KiB; a UDP datagram holds at most 65,507 bytes and a queue message msgmax, 8 KiB by
#      default), none lost, duplicated or reordered; UDP may drop by design, so its loss is
#      measured and printed, not hidden;
#   2. many peers: 8 writers at once to one datagram reader (UDS and UDP) and to one queue
#      reader, 8 clients of one stream server, every message accounted for;
#   3. faults, hostile files and other users: the crates' tests/reliability.rs (peers killed
#      with SIGKILL at each stage, stale files and objects, a key file removed, another user's
#      files and objects, a peer running as nobody, Rust and PHP writers on one store), counted
#      by test-name prefix (fault_, hostile_, load_);
#   4. hostile input: ipc-common's tests/hostile_input.rs, every byte parser on arbitrary input,
#      counted by the inputs each test says it tried;
#   5. the contract (docs/reliability.md): every crate's tests/contract.rs runs generated
#      schedules (start order, umask, sizes at the limits, slow or endless stdin, peers stopped
#      and killed, stderr closed) and checks the promises as invariants; the contract_ tests of
#      tests/reliability.rs run attackers as nobody against the bind-time and connect-time races
#      (zero successes required); counted by schedules and attack attempts;
#   6. nothing leaked: no SysV object under this run's keys, no socket file or FIFO left.
# Ends with "N passed, M failed" and exits non-zero on any failure.
#
# The load runs use release binaries: debug ones pass too, but shared memory's hand-off copies
# the segment byte by byte (volatile reads, unoptimised in debug) and takes ten times longer.
# Everything runs in a private temp dir, on private key files and kernel-chosen ports (never the
# blog's /tmp paths or port 9999); readiness is read from each reader's stderr as it is written,
# never slept for; every step has a timeout.
set -euo pipefail

root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

# Seconds any one process may take; the binaries get a shorter --timeout, so they report a wait
# that went wrong themselves before `timeout` has to kill them.
step=60
wait_secs=45

# Short: a socket path must fit sun_path's 107 bytes.
work=$(mktemp -d /tmp/ipcrel.XXXXXX)
pids=()

# ftok(3): (inode & 0xffff) | ((device & 0xff) << 16) | ('T' << 24), as /proc/sysvipc prints it.
ftok_dec() {
  local inode device
  read -r inode device < <(stat -c '%i %d' -- "$1")
  echo $(((inode & 0xffff) | ((device & 0xff) << 16) | (0x54 << 24)))
}

# The SysV objects under this run's key files, one "kind id key" line each.
our_sysv_objects() {
  local key_file key kind
  for key_file in "$work"/*.key; do
    [[ -e $key_file ]] || continue
    key=$(ftok_dec "$key_file")
    for kind in shm msg sem; do
      awk -v key="$key" -v kind="$kind" 'NR > 1 && $1 == key { print kind, $2, $1 }' \
        "/proc/sysvipc/$kind"
    done
  done
}

cleanup() {
  local pid kind id
  for pid in "${pids[@]}"; do
    kill -KILL "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  # Only a failed step leaves objects under our own keys; it was reported as a failure.
  while read -r kind id _; do
    case $kind in
      shm) ipcrm -m "$id" 2>/dev/null || true ;;
      msg) ipcrm -q "$id" 2>/dev/null || true ;;
      sem) ipcrm -s "$id" 2>/dev/null || true ;;
    esac
  done < <(our_sysv_objects)
  rm -rf -- "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

passed=0
failed=0
pass() {
  passed=$((passed + 1))
  printf 'ok    %s\n' "$1"
}
fail() {
  failed=$((failed + 1))
  printf 'FAIL  %s\n' "$1"
  if [[ -n ${2:-} ]]; then
    printf '%s\n' "$2" | head -40 | sed 's/^/      /'
  fi
}

echo "building release binaries for the load runs ..." >&2
timeout 900 cargo build --release --quiet -p dgram -p stream -p fifo -p mq -p shm -p load
target_dir=$(cargo metadata --format-version 1 --no-deps |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
bin="$target_dir/release"

# Waits until FILE has a line matching the extended regex PATTERN while process PID lives,
# reading lines as they are written (tail -f follows with inotify); fails after $step seconds or
# if PID exits first.
wait_for_line() {
  local file=$1 pattern=$2 pid=$3
  timeout "$step" grep -q -m1 -E -- "$pattern" < <(tail -n +1 -f --pid="$pid" -- "$file")
}

# start NAME PROGRAM ARGS...: one of our binaries in the background, stdout to $work/NAME.out,
# stderr to $work/NAME.err; its pid in $started.
started=
start() {
  local name=$1 program=$2
  shift 2
  : >"$work/$name.err"
  timeout -s KILL "$step" "$bin/$program" "$@" --timeout "$wait_secs" \
    >"$work/$name.out" 2>"$work/$name.err" &
  started=$!
  pids+=("$started")
}

# The summary line of a perfect run of COUNT messages of SIZE bytes each (stamp included).
perfect() {
  echo "received $1 of $1 messages ($(($1 * $2)) bytes): 0 lost, 0 duplicated, 0 reordered, 0 corrupted"
}

# One "mechanism sent received lost" line per load run, for the table at the end.
tally=()

# load LABEL MECHANISM SENT EXPECTED READER... -- WRITER... [-- WRITER...]
#   Starts the reader, waits for its "listening on" or "waiting for" line, starts the writers at
#   once (@URL@ in their arguments becomes the URL the reader really listens on), and checks that
#   everyone exited 0 and that the reader printed EXPECTED, or, for EXPECTED "measure-loss", that
#   nothing arrived twice or corrupted (UDP's loss is measured, not judged).
load() {
  local label=$1 mechanism=$2 sent=$3 expected=$4
  shift 4
  local reader=()
  while [[ $1 != -- ]]; do
    reader+=("$1")
    shift
  done
  shift
  local began
  began=$(date +%s%N)
  start r "${reader[@]}"
  local reader_pid=$started
  if ! wait_for_line "$work/r.err" '^(listening on|waiting for)' "$reader_pid"; then
    kill -KILL "$reader_pid" 2>/dev/null || true
    fail "$label" "the reader never got ready: $(cat "$work/r.err")"
    return
  fi
  local url
  url=$(sed -n 's/^listening on //p' "$work/r.err" | head -1)
  local writer_pids=() writer=() n=0 status=0 problems="" arg
  while (($#)); do
    writer=()
    while (($#)) && [[ $1 != -- ]]; do
      arg=$1
      writer+=("${arg//@URL@/$url}")
      shift
    done
    if (($#)); then shift; fi
    n=$((n + 1))
    start "w$n" "${writer[@]}"
    writer_pids+=("$started")
  done
  for n in "${!writer_pids[@]}"; do
    if ! wait "${writer_pids[$n]}"; then
      problems+="writer $((n + 1)) failed: $(cat "$work/w$((n + 1)).err")"$'\n'
    fi
  done
  wait "$reader_pid" || status=$?
  ((status == 0)) || problems+="reader exited with $status: $(cat "$work/r.err")"$'\n'
  label+=" [$((($(date +%s%N) - began) / 1000000)) ms]"

  local received lost
  received=$(grep -oE 'received [0-9]+ of' "$work/r.out" | awk '{ n += $2 } END { print n + 0 }')
  lost=$(grep -oE '[0-9]+ lost' "$work/r.out" | awk '{ n += $1 } END { print n + 0 }')
  tally+=("$mechanism $sent $received $lost")

  if [[ $expected == measure-loss ]]; then
    if grep -oE '[0-9]+ (duplicated|corrupted)' "$work/r.out" | grep -qv '^0 '; then
      problems+="datagrams arrived twice or corrupted: $(cat "$work/r.out")"$'\n'
    fi
    label+=" ($lost of $sent lost)"
  elif ! diff -u --label expected --label "reader stdout" <(printf '%s\n' "$expected") \
    "$work/r.out" >"$work/diff"; then
    problems+=$(cat "$work/diff")$'\n'
  fi
  if [[ -z $problems ]]; then
    pass "$label"
  else
    fail "$label" "$problems"
  fi
}

# N summary lines, or one line of N "writer k: ..." parts, for K peers of COUNT messages of SIZE.
per_client() {
  local k
  for ((k = 0; k < $1; k++)); do perfect "$2" "$3"; done
}
per_writer() {
  local k line out=""
  line=$(perfect "$2" "$3")
  for ((k = 0; k < $1; k++)); do
    out+="${out:+; }writer $k: $line"
  done
  echo "$out"
}

# The payloads: the blog's messages, and the largest each mechanism takes in a load run.
printf '%*s' 65536 '' | tr ' ' 'L' >"$work/64k"
printf '%*s' 65496 '' | tr ' ' 'U' >"$work/udp-max" # + the 11-byte stamp: 65,507, UDP's limit
msgmax=$(cat /proc/sys/kernel/msgmax)
printf '%*s' $((msgmax - 11)) '' | tr ' ' 'Q' >"$work/mq-max" # + the stamp: msgmax
uds=$((11 + 37))    # "Hello from Sender: UDP/UDS [Datagram]" and its stamp
unix=$((11 + 35))   # "Hello from Client: TCP/UDS [Stream]"
tcp=$((11 + 34))    # "Hello from Client: TCP/IP [Stream]"
fifo=$((11 + 29))   # "Hello from Sender: Named Pipe"
mq=$((11 + 32))     # "Hello from Writer: Message Queue"
shm=$((11 + 32))    # "Hello from Writer: Shared Memory"
small=100000
big=1000
peers=8
per=$((small / peers))

# --first-seq arguments for writer k of $peers.
writers() {
  local k
  for ((k = 0; k < peers; k++)); do
    printf '%s\n' -- "$@" --first-seq $((k * per))
  done
}

echo "== 1. load: $small small and $big large messages per mechanism"
load_start=$SECONDS
d="udg://$work/d.sock"
load "dgram uds: $small small" dgram-uds $small "$(perfect $small $uds)" \
  ipc-load dgram-reader "$d" --count $small -- ipc-load dgram-writer "$d" --count $small --quiet
load "dgram uds: $big x 64 KiB" dgram-uds $big "$(perfect $big $((11 + 65536)))" \
  ipc-load dgram-reader "$d" --count $big -- \
  ipc-load dgram-writer "$d" --count $big --message-file "$work/64k" --quiet
load "dgram udp: $small small" dgram-udp $small measure-loss \
  ipc-load dgram-reader udp://127.0.0.1:0 --count $small --allow-loss -- \
  ipc-load dgram-writer @URL@ --count $small --quiet
load "dgram udp: $big x 65,496 B (UDP's largest)" dgram-udp $big measure-loss \
  ipc-load dgram-reader udp://127.0.0.1:0 --count $big --allow-loss -- \
  ipc-load dgram-writer @URL@ --count $big --message-file "$work/udp-max" --quiet
for s in "unix://$work/s.sock" tcp://127.0.0.1:0; do
  size=$unix
  [[ $s == tcp* ]] && size=$tcp
  load "stream ${s%%:*}: $small small" "stream-${s%%:*}" $small "$(perfect $small $size)" \
    ipc-load stream-reader "$s" --count $small -- \
    ipc-load stream-writer @URL@ --count $small --quiet
  load "stream ${s%%:*}: $big x 64 KiB" "stream-${s%%:*}" $big "$(perfect $big $((11 + 65536)))" \
    ipc-load stream-reader "$s" --count $big -- \
    ipc-load stream-writer @URL@ --count $big --message-file "$work/64k" --quiet
done
f="$work/fifo"
load "fifo: $small small" fifo $small "$(perfect $small $fifo)" \
  ipc-load fifo-reader "$f" --count $small -- ipc-load fifo-writer "$f" --count $small --quiet
load "fifo: $big x 64 KiB" fifo $big "$(perfect $big $((11 + 65536)))" \
  ipc-load fifo-reader "$f" --count $big -- \
  ipc-load fifo-writer "$f" --count $big --message-file "$work/64k" --quiet
load "mq: $small small" mq $small "$(perfect $small $mq)" \
  ipc-load mq-reader --key-file "$work/mq-small.key" --count $small -- \
  ipc-load mq-writer --key-file "$work/mq-small.key" --count $small --quiet
load "mq: $big x $((msgmax - 11)) B (msgmax $msgmax)" mq $big "$(perfect $big "$msgmax")" \
  ipc-load mq-reader --key-file "$work/mq-big.key" --count $big -- \
  ipc-load mq-writer --key-file "$work/mq-big.key" --count $big --message-file "$work/mq-max" --quiet
load "shm: $small small" shm $small "$(perfect $small $shm)" \
  ipc-load shm-reader --key-file "$work/shm-small.key" --count $small -- \
  ipc-load shm-writer --key-file "$work/shm-small.key" --count $small --quiet
load "shm: $big x 64 KiB" shm $big "$(perfect $big $((11 + 65536)))" \
  ipc-load shm-reader --key-file "$work/shm-big.key" --count $big -- \
  ipc-load shm-writer --key-file "$work/shm-big.key" --count $big --size 131072 \
  --message-file "$work/64k" --quiet
echo "   load runs took $((SECONDS - load_start)) s"

echo "== 2. many peers: $peers at once, $per messages each"
peers_start=$SECONDS
mapfile -t args < <(writers ipc-load dgram-writer "$d" --count $per --quiet)
load "dgram uds: $peers writers" dgram-uds $small "$(per_writer $peers $per $uds)" \
  ipc-load dgram-reader "$d" --count $per --writers $peers "${args[@]}"
mapfile -t args < <(writers ipc-load dgram-writer @URL@ --count $per --quiet)
load "dgram udp: $peers writers" dgram-udp $small measure-loss \
  ipc-load dgram-reader udp://127.0.0.1:0 --count $per --writers $peers --allow-loss "${args[@]}"
clients=()
for ((k = 0; k < peers; k++)); do
  clients+=(-- ipc-load stream-writer @URL@ --count "$per" --quiet)
done
load "stream unix: $peers clients" stream-unix $small "$(per_client $peers $per $unix)" \
  ipc-load stream-reader "unix://$work/s.sock" --count $per --connections $peers "${clients[@]}"
mapfile -t args < <(writers ipc-load mq-writer --key-file "$work/mq-peers.key" --count $per --quiet)
# Interleaved writers: each message once, in any order (the "reordered" count varies).
load "mq: $peers writers" mq $small measure-loss \
  ipc-load mq-reader --key-file "$work/mq-peers.key" --count $small --any-order "${args[@]}"
if [[ ${tally[-1]} != "mq $small $small 0" ]]; then
  fail "mq: $peers writers lost messages" "${tally[-1]}"
fi
echo "   peer runs took $((SECONDS - peers_start)) s"

# run_tests LABEL CARGO-TEST-ARGS...: one crate's test binary; every test counts as one check.
# A test that cannot run here passes after printing a "skipping ..." line: those needing another
# user are all hostile_ tests, those needing PHP have "php" in their names; neither is counted
# as a fault, scenario or load test then.
# ran LOG PREFIX: how many tests named PREFIX... passed in LOG, less those that skipped.
ran() {
  local log=$1 prefix=$2 n
  n=$(grep -cE "^test ${prefix}[a-z0-9_]* \.\.\. ok\$" "$log" || true)
  if grep -q '^skipping PHP interop' "$log"; then
    n=$((n - $(grep -cE "^test ${prefix}[a-z0-9_]*php[a-z0-9_]* \.\.\. ok\$" "$log" || true)))
  fi
  if [[ $prefix == hostile_ ]]; then
    n=$((n - $(grep -c '^skipping other-user test' "$log" || true)))
  fi
  echo "$n"
}
faults=0
contract_schedules=0
attacks=()
hostile_scenarios=0
load_tests=0
hostile_inputs=0
skipped=()
measured=()
run_tests() {
  local label=$1 log="$work/tests.log" status=0
  shift
  timeout 900 cargo test "$@" -- --nocapture >"$log" 2>&1 || status=$?
  local ok bad
  ok=$(grep -cE '^test [a-z0-9_]+ \.\.\. ok$' "$log" || true)
  bad=$(grep -cE '^test [a-z0-9_]+ \.\.\. FAILED$' "$log" || true)
  faults=$((faults + $(ran "$log" fault_)))
  hostile_scenarios=$((hostile_scenarios + $(ran "$log" hostile_)))
  load_tests=$((load_tests + $(ran "$log" load_)))
  hostile_inputs=$((hostile_inputs + $(sed -n 's/^hostile inputs tried: \([0-9]*\) .*/\1/p' "$log" |
    awk '{ n += $1 } END { print n + 0 }')))
  contract_schedules=$((contract_schedules + $(sed -n 's/^contract [^:]*: \([0-9]*\) schedules.*/\1/p' "$log" |
    awk '{ n += $1 } END { print n + 0 }')))
  mapfile -t -O "${#attacks[@]}" attacks < <(grep -hE '^(bind race|connect swap)' "$log")
  mapfile -t -O "${#skipped[@]}" skipped < <(grep -h '^skipping' "$log" | sort -u)
  mapfile -t -O "${#measured[@]}" measured < <(grep -hE '^(UDP to a stopped reader|[0-9]+ variables put by)' "$log")
  passed=$((passed + ok))
  failed=$((failed + bad))
  if ((status != 0 || bad > 0)); then
    ((bad > 0)) || failed=$((failed + 1))
    fail "$label: $ok passed, $bad failed (exit $status)" "$(grep -E -A10 'panicked|^error' "$log")"
  else
    printf 'ok    %s: %s tests\n' "$label" "$ok"
  fi
}

echo "== 3. faults, hostile files and other users (crates' tests/reliability.rs)"
tests_start=$SECONDS
for crate in dgram stream fifo mq shm; do
  run_tests "$crate reliability" -p "$crate" --test reliability
done
# The queue on Redis Streams: Redis restarted and killed, a stream trimmed, the limits (skips
# with one line without redis-server).
run_tests "broker faults" -p broker --test faults
run_tests "broker dead letters" -p broker --test poison
# Many peers: replies that never come or go to a writer that left, a dead multicast reader,
# clients that die before their answer, a full queue, silent and half-written stream clients
# among 500 (the namespace tests skip with one line without root).
run_tests "dgram reply" -p dgram --test reply
run_tests "dgram multicast and broadcast" -p dgram --test many
run_tests "stream concurrent clients" -p stream --test concurrent
run_tests "mq request/response" -p mq --test serve
for mech in dgram stream fifo mq shm; do
  run_tests "load $mech" -p load --test "$mech"
done
echo "== 4. hostile input (ipc-common's tests/hostile_input.rs)"
run_tests "ipc-common hostile input" -p ipc-common --test hostile_input
echo "   tests took $((SECONDS - tests_start)) s"

# Schedules per mechanism; a failing one prints the seed that replays it.
export CONTRACT_SCHEDULES=${CONTRACT_SCHEDULES:-60}
echo "== 5. the contract: $CONTRACT_SCHEDULES generated schedules per mechanism, attackers as nobody"
contract_start=$SECONDS
for crate in dgram stream fifo mq shm broker; do
  run_tests "$crate contract" -p "$crate" --test contract
done
echo "   contract took $((SECONDS - contract_start)) s"

echo "== 6. nothing leaked"
leaked=$(our_sysv_objects)
if [[ -z $leaked ]]; then
  pass "no SysV object under this run's $(find "$work" -name '*.key' | wc -l) keys"
else
  fail "SysV objects left under this run's keys" "$leaked"
fi
left=$(find "$work" \( -type s -o -type p \) -print)
if [[ -z $left ]]; then
  pass "no socket file or FIFO left"
else
  fail "socket files or FIFOs left" "$left"
fi

echo "== counts"
printf '%-11s %12s %12s %10s\n' mechanism sent received lost
printf '%s\n' "${tally[@]}" | awk '
  { sent[$1] += $2; got[$1] += $3; lost[$1] += $4; if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 } }
  END { for (i = 1; i <= n; i++) { m = order[i]; printf "%-11s %12d %12d %10d\n", m, sent[m], got[m], lost[m] } }'
for line in "${measured[@]}"; do
  echo "measured: $line"
done
echo "faults injected and survived: $faults"
echo "contract schedules run, every promise held: $contract_schedules"
for line in "${attacks[@]}"; do
  echo "attack: $line"
done
echo "hostile scenarios refused (files, objects, users): $hostile_scenarios"
echo "hostile inputs tried: $hostile_inputs"
echo "load tests with stopped or concurrent peers: $load_tests"
for line in "${skipped[@]}"; do
  echo "note: $line"
done
echo "$passed passed, $failed failed"
((failed == 0))
