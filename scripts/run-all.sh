#!/usr/bin/env bash
# Runs the blog's eight IPC examples, writer and reader as two real processes each, with the
# blog's own default paths, ports and messages, in both start orders where the mechanism allows
# it. Each side's stdout is compared byte for byte with scripts/expected/<pair>.{reader,writer};
# one line per run, then "N passed, M failed". Exits non-zero on any failure.
#
# --trace DIR: also runs each example once more under ipc-trace (strace, reader first) and
# writes its sequence diagram to DIR/<example>.svg, one more PASS/FAIL line per example
# (docs/trace/ holds them for the current code: scripts/run-all.sh --trace docs/trace).
#
# No sleeps: a side that must start first is waited for by the line it prints when it is ready
# ("listening on ..." or "waiting for ..."), read as it is written. Every step has a timeout.
# Nothing is left behind: socket files, FIFOs and SysV objects are removed by the binaries
# themselves (checked at the end); a key file this script's run created is removed here, one that
# was there before is left alone.
set -euo pipefail

root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
expected_dir="$root/scripts/expected"

# Other arguments are ignored, as they always were.
trace_dir=
while (($#)); do
  case $1 in
  --trace)
    if (($# < 2)); then
      echo "usage: $0 [--trace DIR]" >&2
      exit 2
    fi
    trace_dir=$2
    shift 2
    ;;
  *)
    shift
    ;;
  esac
done

# The blog's defaults: the binaries use them when given no endpoint.
socket_path=/tmp/ipc-socket.sock
fifo_path=/tmp/ipc-named-pipe
shm_key_file=/tmp/ipc-shared-memory
mq_key_file=/tmp/ipc-message-queues
udp_url=udp://127.0.0.1:9999
tcp_url=tcp://127.0.0.1:9999

# Seconds any one process may take; the binaries get a shorter --timeout, so they report a wait
# that went wrong themselves before `timeout` has to kill them.
step=20
wait_secs=10

work=$(mktemp -d "${TMPDIR:-/tmp}/run-all.XXXXXX")
pids=()
created_key_files=()

cleanup() {
  local pid
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  local file
  for file in "${created_key_files[@]}"; do
    rm -f -- "$file"
  done
  rm -rf -- "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "building the binaries ..." >&2
extra_bins=()
if [[ -n $trace_dir ]]; then
  extra_bins=(--bin ipc-trace)
fi
cargo build --quiet --manifest-path "$root/Cargo.toml" \
  --bin dgram-reader --bin dgram-writer --bin stream-reader --bin stream-writer \
  --bin fifo-reader --bin fifo-writer --bin shm-reader --bin shm-writer \
  --bin mq-reader --bin mq-writer "${extra_bins[@]}"
target_dir=$(cargo metadata --format-version 1 --no-deps --manifest-path "$root/Cargo.toml" |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
bin="$target_dir/debug"

# Refuse to run over somebody else's objects: a live socket or FIFO in use at the blog's paths is
# not ours. A stale socket file is fine (the readers replace it).
preflight() {
  if [[ -e $fifo_path || -L $fifo_path ]]; then
    echo "error: $fifo_path exists (another run, or not ours); remove it or wait" >&2
    exit 1
  fi
  local key_file
  for key_file in "$shm_key_file" "$mq_key_file"; do
    if [[ ! -e $key_file ]]; then
      created_key_files+=("$key_file")
    fi
  done
}

# ftok(3): (inode & 0xffff) | ((device & 0xff) << 16) | (proj << 24), as ipcs prints it.
ftok_hex() {
  local inode device
  read -r inode device < <(stat -L -c '%i %d' -- "$1")
  printf '0x%08x' $(((inode & 0xffff) | ((device & 0xff) << 16) | (0x54 << 24)))
}

# Waits until FILE has a line matching PATTERN while process PID lives, reading lines as they are
# written (tail -f follows with inotify); fails after $step seconds or if PID exits first.
wait_for_line() {
  local file=$1 pattern=$2 pid=$3
  if timeout "$step" grep -q -m1 -E "$pattern" < <(tail -n +1 -f --pid="$pid" -- "$file"); then
    return 0
  fi
  echo "  (no line matching '$pattern' from pid $pid; its stderr:)" >&2
  sed 's/^/    /' "$file" >&2
  return 1
}

passed=0
failed=0

# run_pair NAME ORDER WRITER_WAITS "READER ARGS" "WRITER ARGS"
#   ORDER is reader-first or writer-first. WRITER_WAITS says whether the writer blocks until a
#   reader is there (sockets, FIFOs) or finishes on its own (shared memory, queues).
run_pair() {
  local name=$1 order=$2 writer_waits=$3 reader_cmd=$4 writer_cmd=$5
  local dir="$work/$name.$order"
  mkdir -p "$dir"
  local reader_pid writer_pid ok=1
  local -a reader_args writer_args
  read -r -a reader_args <<<"$reader_cmd"
  read -r -a writer_args <<<"$writer_cmd"

  start_reader() {
    timeout "$step" "$bin/${reader_args[0]}" "${reader_args[@]:1}" --timeout "$wait_secs" \
      >"$dir/reader.out" 2>"$dir/reader.err" &
    reader_pid=$!
    pids+=("$reader_pid")
  }
  start_writer() {
    timeout "$step" "$bin/${writer_args[0]}" "${writer_args[@]:1}" --timeout "$wait_secs" \
      >"$dir/writer.out" 2>"$dir/writer.err" &
    writer_pid=$!
    pids+=("$writer_pid")
  }

  : >"$dir/reader.err"
  : >"$dir/writer.err"
  if [[ $order == reader-first ]]; then
    start_reader
    wait_for_line "$dir/reader.err" '^(listening on|waiting for)' "$reader_pid" || ok=0
    start_writer
  else
    start_writer
    if [[ $writer_waits == yes ]]; then
      wait_for_line "$dir/writer.err" '^waiting for' "$writer_pid" || ok=0
    else
      wait "$writer_pid" || ok=0
    fi
    start_reader
  fi
  wait "$writer_pid" || { echo "  writer exited with $?" >&2; ok=0; }
  wait "$reader_pid" || { echo "  reader exited with $?" >&2; ok=0; }

  local side
  for side in reader writer; do
    if ! diff -u --label "expected $name.$side" --label "actual $name.$side stdout" \
      "$expected_dir/$name.$side" "$dir/$side.out" >"$dir/$side.diff"; then
      sed 's/^/  /' "$dir/$side.diff" >&2
      ok=0
    fi
  done
  if ((ok)); then
    passed=$((passed + 1))
    printf 'PASS  %-10s %s\n' "$name" "$order"
  else
    failed=$((failed + 1))
    printf 'FAIL  %-10s %s\n' "$name" "$order"
    for side in reader writer; do
      echo "  $side stderr:" >&2
      sed 's/^/    /' "$dir/$side.err" >&2
    done
  fi
}

preflight
start=$(date +%s%N)
for order in reader-first writer-first; do
  run_pair dgram-uds "$order" yes "dgram-reader" "dgram-writer"
  run_pair dgram-udp "$order" yes "dgram-reader $udp_url" "dgram-writer $udp_url"
  run_pair stream-uds "$order" yes "stream-reader" "stream-writer"
  run_pair stream-tcp "$order" yes "stream-reader $tcp_url" "stream-writer $tcp_url"
  run_pair fifo "$order" yes "fifo-reader" "fifo-writer"
  run_pair shm-sysv "$order" no "shm-reader" "shm-writer"
  run_pair shm-shmop "$order" no "shm-reader --api shmop" "shm-writer --api shmop"
  run_pair mq "$order" no "mq-reader" "mq-writer"
done
elapsed_ms=$((($(date +%s%N) - start) / 1000000))

# trace_example NAME: the example once more under ipc-trace, its diagram to $trace_dir/NAME.svg.
trace_example() {
  local name=$1
  local log="$work/trace.$name.log"
  if timeout $((step + 20)) "$bin/ipc-trace" "$name" --timeout "$wait_secs" --quiet \
    --svg "$trace_dir/$name.svg" >"$log" 2>&1; then
    passed=$((passed + 1))
    printf 'PASS  %-10s traced to %s\n' "$name" "$trace_dir/$name.svg"
  else
    failed=$((failed + 1))
    printf 'FAIL  %-10s trace\n' "$name"
    sed 's/^/  /' "$log" >&2
  fi
}

if [[ -n $trace_dir ]]; then
  mkdir -p -- "$trace_dir"
  for name in dgram-uds dgram-udp stream-uds stream-tcp fifo shm-sysv shm-shmop mq; do
    trace_example "$name"
  done
fi

# What the runs must not leave behind.
leftovers=()
for path in "$socket_path" "$fifo_path"; do
  if [[ -e $path || -L $path ]]; then
    leftovers+=("$path")
  fi
done
for key_file in "$shm_key_file" "$mq_key_file"; do
  if [[ -e $key_file ]]; then
    key=$(ftok_hex "$key_file")
    if ipcs -m -q -s | grep -qi "^$key "; then
      leftovers+=("SysV object with key $key ($key_file)")
    fi
  fi
done
if ((${#leftovers[@]})); then
  failed=$((failed + 1))
  printf 'FAIL  leftovers: %s\n' "${leftovers[*]}"
fi

echo "all pairs ran in ${elapsed_ms} ms" >&2
echo "$passed passed, $failed failed"
((failed == 0))
