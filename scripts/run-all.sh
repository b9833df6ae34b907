#!/usr/bin/env bash
# Runs the blog's eight IPC examples (and the message queue on Redis Streams where redis-server is
# installed), writer and reader as two real processes each, with the blog's own default paths,
# ports and messages, in both start orders where the mechanism allows it. Each side's stdout is
# compared byte for byte with scripts/expected/<pair>.{reader,writer}; one line per run, then
# "N passed, M failed". Exits non-zero on any failure. Then the many-peer rows: the datagram reply
# (dgram-reply: the reader answers on the same socket) in both orders, the queue's
# request/response with three clients, one stream server with ten concurrent clients (its lines
# sorted before the comparison), and multicast and broadcast to three readers inside a private
# network namespace (run_many; SKIP without one).
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
blog=0
while (($#)); do
  case $1 in
  --blog)
    blog=1
    shift
    ;;
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
  --bin mq-reader --bin mq-writer --bin broker-reader --bin broker-writer "${extra_bins[@]}"
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

# run_request_response: the queue's request/response (crates/mq/README.md, "Request/response"):
# `mq-reader --serve --requests 3` and three `mq-writer --request` at once, each with its own
# message. Each client's stdout must be its own answer (scripts/expected/mq-request.clients, the
# three in client order); the server's, its three requests, the reply types replaced by the
# client they name and sorted (scripts/expected/mq-request.server): each answer went to the type
# of the client that asked.
run_request_response() {
  local name=mq-request dir="$work/mq-request" ok=1 server_pid n
  local -a client_pids=()
  mkdir -p "$dir"
  : >"$dir/server.err"
  timeout "$step" "$bin/mq-reader" --serve --requests 3 --timeout "$wait_secs" \
    >"$dir/server.out" 2>"$dir/server.err" &
  server_pid=$!
  pids+=("$server_pid")
  wait_for_line "$dir/server.err" '^serving requests' "$server_pid" || ok=0
  for n in 1 2 3; do
    timeout "$step" "$bin/mq-writer" --request --message "Hello from Client $n: Message Queue" \
      --timeout "$wait_secs" >"$dir/client$n.out" 2>"$dir/client$n.err" &
    client_pids+=("$!")
    pids+=("$!")
  done
  # Each client's own type (its pid, not that of the `timeout` in front of it), as it says.
  local -a named=()
  local own
  for n in 1 2 3; do
    wait "${client_pids[n - 1]}" || { echo "  client $n exited with $?" >&2; ok=0; }
    own=$(sed -n 's/^received the answer of type \([0-9]*\):.*/\1/p' "$dir/client$n.err")
    named+=(-e "s/\"reply_type\":${own:-none},/\"reply_type\":CLIENT$n,/")
  done
  wait "$server_pid" || { echo "  server exited with $?" >&2; ok=0; }
  cat "$dir/client1.out" "$dir/client2.out" "$dir/client3.out" >"$dir/clients.out"
  sed "${named[@]}" "$dir/server.out" | LC_ALL=C sort >"$dir/server.sorted"
  local side
  for side in clients server; do
    local actual="$dir/$side.out"
    [[ $side == server ]] && actual="$dir/server.sorted"
    if ! diff -u --label "expected $name.$side" --label "actual $name.$side stdout" \
      "$expected_dir/$name.$side" "$actual" >"$dir/$side.diff"; then
      sed 's/^/  /' "$dir/$side.diff" >&2
      ok=0
    fi
  done
  if ((ok)); then
    passed=$((passed + 1))
    printf 'PASS  %-10s %s\n' "$name" "queue request/response with three clients"
  else
    failed=$((failed + 1))
    printf 'FAIL  %-10s %s\n' "$name" "queue request/response with three clients"
    for side in server client1 client2 client3; do
      echo "  $side stderr:" >&2
      sed 's/^/    /' "$dir/$side.err" >&2
    done
  fi
}

# run_concurrent NAME N "READER ARGS" "WRITER ARGS"
#   One server for N clients, all started at once once it listens; client I sends "Hello from
#   Client I: TCP/UDS [Stream]". The server prints its lines in the order the clients finish,
#   so its stdout is sorted (LC_ALL=C) before the comparison with scripts/expected/NAME.reader;
#   each client's stdout is compared as it is with NAME.writer.
run_concurrent() {
  local name=$1 n=$2 reader_cmd=$3 writer_cmd=$4
  local dir="$work/$name"
  mkdir -p "$dir"
  local reader_pid ok=1 i pid
  local -a reader_args writer_args writer_pids=()
  read -r -a reader_args <<<"$reader_cmd"
  read -r -a writer_args <<<"$writer_cmd"

  : >"$dir/reader.err"
  timeout "$step" "$bin/${reader_args[0]}" "${reader_args[@]:1}" --connections "$n" \
    --timeout "$wait_secs" >"$dir/reader.out" 2>"$dir/reader.err" &
  reader_pid=$!
  pids+=("$reader_pid")
  wait_for_line "$dir/reader.err" '^listening on' "$reader_pid" || ok=0
  for ((i = 1; i <= n; i++)); do
    timeout "$step" "$bin/${writer_args[0]}" "${writer_args[@]:1}" --timeout "$wait_secs" \
      --message "Hello from Client $i: TCP/UDS [Stream]" >"$dir/writer.$i.out" 2>"$dir/writer.$i.err" &
    writer_pids+=("$!")
    pids+=("$!")
  done
  i=0
  for pid in "${writer_pids[@]}"; do
    i=$((i + 1))
    wait "$pid" || { echo "  client $i exited with $?" >&2; ok=0; }
    if ! diff -u --label "expected $name.writer" --label "actual $name client $i stdout" \
      "$expected_dir/$name.writer" "$dir/writer.$i.out" >"$dir/writer.$i.diff"; then
      sed 's/^/  /' "$dir/writer.$i.diff" >&2
      ok=0
    fi
  done
  wait "$reader_pid" || { echo "  reader exited with $?" >&2; ok=0; }
  LC_ALL=C sort "$dir/reader.out" >"$dir/reader.sorted"
  if ! diff -u --label "expected $name.reader" --label "actual $name.reader stdout, sorted" \
    "$expected_dir/$name.reader" "$dir/reader.sorted" >"$dir/reader.diff"; then
    sed 's/^/  /' "$dir/reader.diff" >&2
    ok=0
  fi
  if ((ok)); then
    passed=$((passed + 1))
    printf 'PASS  %-10s %s\n' "$name" "$n concurrent clients"
  else
    failed=$((failed + 1))
    printf 'FAIL  %-10s %s\n' "$name" "$n concurrent clients"
    echo "  reader stderr:" >&2
    sed 's/^/    /' "$dir/reader.err" >&2
    for ((i = 1; i <= n; i++)); do
      echo "  client $i stderr:" >&2
      sed 's/^/    /' "$dir/writer.$i.err" >&2
      done
    fi
}

# run_many NAME "READER ARGS" "WRITER ARGS": three readers and one writer, in a private network
# namespace of this run (unshare --net, holding it with a sleep; the processes enter it with
# nsenter): a veth pair of its own, 10.77.0.1/24 with a multicast and a default route, so
# multicast and broadcast never touch this machine's interfaces. Each reader's stdout must be
# NAME.reader (the writer cannot know who received the datagram: it is the readers that count).
# Without unshare/nsenter/ip or the right to make a namespace: one SKIP line.
run_many() {
  local name=$1 reader_cmd=$2 writer_cmd=$3
  local dir="$work/$name"
  mkdir -p "$dir"
  if ! unshare --net -- nsenter --version >/dev/null 2>&1 || ! command -v ip >/dev/null; then
    printf 'SKIP  %-10s needs a private network namespace (unshare --net, nsenter, ip, as root)\n' "$name"
    return 0
  fi
  local setup="ip link set lo up && ip link add v0 type veth peer name v1 \
    && ip addr add 10.77.0.1/24 broadcast 10.77.0.255 dev v0 && ip link set v0 up \
    && ip link set v1 up && ip route add 224.0.0.0/4 dev v0 && ip route add default dev v0"
  : >"$dir/netns.err"
  # Bounded by its own sleep; unshare execs the shell, so $! is the namespace's first process.
  unshare --net -- sh -c "$setup && echo netns-ready >&2 && exec sleep $step" \
    2>"$dir/netns.err" &
  local holder=$! ok=1 i
  pids+=("$holder")
  local -a reader_args writer_args reader_pids=()
  read -r -a reader_args <<<"$reader_cmd"
  read -r -a writer_args <<<"$writer_cmd"
  if wait_for_line "$dir/netns.err" '^netns-ready' "$holder"; then
    local -a enter=(nsenter "--net=/proc/$holder/ns/net" --)
    for i in 1 2 3; do
      : >"$dir/reader$i.err"
      timeout "$step" "${enter[@]}" "$bin/${reader_args[0]}" "${reader_args[@]:1}" \
        --timeout "$wait_secs" >"$dir/reader$i.out" 2>"$dir/reader$i.err" &
      reader_pids+=("$!")
      pids+=("$!")
      wait_for_line "$dir/reader$i.err" '^listening on' "$!" || ok=0
    done
    timeout "$step" "${enter[@]}" "$bin/${writer_args[0]}" "${writer_args[@]:1}" \
      --timeout "$wait_secs" >"$dir/writer.out" 2>"$dir/writer.err" || {
      echo "  writer exited with $?" >&2
      ok=0
    }
    for i in 1 2 3; do
      wait "${reader_pids[$((i - 1))]}" || { echo "  reader $i exited with $?" >&2; ok=0; }
      if ! diff -u --label "expected $name.reader" --label "actual $name reader $i stdout" \
        "$expected_dir/$name.reader" "$dir/reader$i.out" >&2; then
        ok=0
      fi
    done
    if ! diff -u --label "expected $name.writer" --label "actual $name.writer stdout" \
      "$expected_dir/$name.writer" "$dir/writer.out" >&2; then
      ok=0
    fi
  else
    ok=0
  fi
  kill "$holder" 2>/dev/null || true
  wait "$holder" 2>/dev/null || true
  if ((ok)); then
    passed=$((passed + 1))
    printf 'PASS  %-10s three readers, private network namespace\n' "$name"
  else
    failed=$((failed + 1))
    printf 'FAIL  %-10s three readers, private network namespace\n' "$name"
    for i in netns reader1 reader2 reader3 writer; do
      echo "  $i stderr:" >&2
      sed 's/^/    /' "$dir/$i.err" >&2 2>/dev/null || true
    done
  fi
}

# --blog: the blog's scripts, translated line for line into cargo examples
# (crates/<mechanism>/examples/<mechanism>-blog-*.rs), run as pairs and against the hardened
# binaries as peers (blog writer -> our reader, our writer -> blog reader), checked against the
# same scripts/expected/ files. Everything is private: socket files, FIFOs and key files in a
# directory of this run, IP ports chosen by the kernel (port 0, learned from the reader's
# "listening on" line) or, where the writer must start first, a port no socket uses. The blog's
# flaws stay: where one makes a start order fail (its writer sends before anyone listens), only
# the order the blog assumes is run, and a "note" line says so.
blog_exit=
if ((blog)); then
  blog_main() {
    echo "building the blog examples ..." >&2
    cargo build --quiet --manifest-path "$root/Cargo.toml" \
      -p dgram -p stream -p fifo -p shm -p mq --examples

    # A free local port for a writer that starts before its reader (no port 0 to learn then).
    blog_free_port() {
      local used port _
      used=$(ss -Htuan | awk '{ sub(/.*:/, "", $5); print $5 }' | sort -u)
      for _ in {1..100}; do
        port=$((20000 + RANDOM % 10000))
        if ! grep -qx "$port" <<<"$used"; then
          echo "$port"
          return 0
        fi
      done
      return 1
    }

    # blog_run NAME ORDER READER WRITER [EXPECTED_READER]
    #   READER, WRITER: "blog:EXAMPLE ARGS" (a blog example: no options) or "ours:BINARY ARGS"
    #   (a hardened binary, given --timeout). In ARGS, @DIR@ is this run's private directory and
    #   @ADDR@ the IP endpoint (127.0.0.1:PORT). EXPECTED_READER names the reader's expected file
    #   when it is not NAME.reader.
    blog_run() {
      local name=$1 order=$2 reader_spec=$3 writer_spec=$4 expect_reader=${5:-$1}
      local label="${writer_spec%%:*}→${reader_spec%%:*}"
      local dir
      dir=$(mktemp -d "$work/b.XXXX")
      touch "$dir/key"
      local addr=127.0.0.1:0 writer_waits=yes ok=1 reader_pid writer_pid
      if [[ $order == writer-first && "$reader_spec $writer_spec" == *@ADDR@* ]]; then
        addr=127.0.0.1:$(blog_free_port)
      fi
      case $name in shm-* | mq) writer_waits=no ;; esac

      # blog_start SIDE SPEC: starts one side in the background; its pid in ${SIDE}_pid.
      blog_start() {
        local side=$1 spec=$2 program args=()
        read -r -a args <<<"${spec#*:}"
        args=("${args[@]//@DIR@/$dir}")
        args=("${args[@]//@ADDR@/$addr}")
        if [[ $spec == blog:* ]]; then
          program="$bin/examples/${args[0]}"
        else
          program="$bin/${args[0]}"
          args+=(--timeout "$wait_secs")
        fi
        timeout "$step" "$program" "${args[@]:1}" >"$dir/$side.out" 2>"$dir/$side.err" &
        printf -v "${side}_pid" %s "$!"
        pids+=("$!")
      }

      : >"$dir/reader.err"
      : >"$dir/writer.err"
      if [[ $order == reader-first ]]; then
        blog_start reader "$reader_spec"
        wait_for_line "$dir/reader.err" '^(listening on|waiting for)' "$reader_pid" || ok=0
        if [[ $addr == *:0 ]]; then
          addr=$(sed -n 's|^listening on [a-z]*://\([0-9.]*:[0-9]*\).*|\1|p' "$dir/reader.err")
        fi
        blog_start writer "$writer_spec"
      else
        blog_start writer "$writer_spec"
        if [[ $writer_waits == yes ]]; then
          wait_for_line "$dir/writer.err" '^waiting for' "$writer_pid" || ok=0
        else
          wait "$writer_pid" || { echo "  writer exited with $?" >&2; ok=0; }
        fi
        blog_start reader "$reader_spec"
      fi
      wait "$writer_pid" || { echo "  writer exited with $?" >&2; ok=0; }
      wait "$reader_pid" || { echo "  reader exited with $?" >&2; ok=0; }

      local side expected
      for side in reader writer; do
        expected="$expected_dir/$name.$side"
        [[ $side == reader ]] && expected="$expected_dir/$expect_reader.reader"
        if ! cmp -s "$expected" "$dir/$side.out"; then
          diff -u --label "expected ${expected##*/}" --label "actual $name.$side stdout" \
            <(cat -v "$expected") <(cat -v "$dir/$side.out") | sed 's/^/  /' >&2 || true
          ok=0
        fi
      done

      # What the blog's scripts leave behind (they never unlink): removed here, and said.
      local left=() file key
      for file in "$dir"/*; do
        case ${file##*/} in
        reader.* | writer.* | key) ;;
        *) left+=("$(stat -c %F -- "$file") ${file##*/}") ;;
        esac
      done
      key=$(ftok_hex "$dir/key")
      if ipcs -m -q -s | grep -qi "^$key "; then
        echo "  SysV object with key $key left behind:" >&2
        ipcs -m -q -s | grep -i "^$key " | sed 's/^/    /' >&2
        ipcs -m -q -s | awk -v k="$key" 'tolower($1) == k { print $2 }' | while read -r id; do
          ipcrm -m "$id" 2>/dev/null || ipcrm -q "$id" 2>/dev/null || ipcrm -s "$id" 2>/dev/null || true
        done
        ok=0
      fi

      if ((ok)); then
        passed=$((passed + 1))
        printf 'PASS  %-10s %-10s %s' "$name" "$label" "$order"
      else
        failed=$((failed + 1))
        printf 'FAIL  %-10s %-10s %s' "$name" "$label" "$order"
      fi
      if ((${#left[@]})); then
        printf '  (the blog left %s behind; removed)' "${left[*]}"
      fi
      printf '\n'
      if ((!ok)); then
        for side in reader writer; do
          echo "  $side stderr:" >&2
          sed 's/^/    /' "$dir/$side.err" >&2
        done
      fi
    }

    # blog_example NAME "BLOG READER" "BLOG WRITER" "OUR READER" "OUR WRITER"
    #     BLOG_WRITER_ORDERS BLOG_READER_ORDERS [EXPECTED_FOR_BLOG_READER]
    #   runs blog→blog, blog→ours and ours→blog in every start order both sides allow
    #   ("both", "reader-first" or "writer-first").
    blog_example() {
      local name=$1 blog_reader=$2 blog_writer=$3 our_reader=$4 our_writer=$5
      local writer_orders=$6 reader_orders=$7 blog_expect=${8:-$1} order
      for order in reader-first writer-first; do
        local w_ok=0 r_ok=0
        [[ $writer_orders == both || $writer_orders == "$order" ]] && w_ok=1
        [[ $reader_orders == both || $reader_orders == "$order" ]] && r_ok=1
        if ((w_ok && r_ok)); then
          blog_run "$name" "$order" "blog:$blog_reader" "blog:$blog_writer" "$blog_expect"
        fi
        if ((w_ok)); then
          blog_run "$name" "$order" "ours:$our_reader" "blog:$blog_writer"
        fi
        if ((r_ok)); then
          blog_run "$name" "$order" "blog:$blog_reader" "ours:$our_writer" "$blog_expect"
        fi
      done
    }

    local start elapsed_ms
    start=$(date +%s%N)
    echo "note  dgram, stream: the blog's writer runs after its reader only: it sends (connects) once, a second after it starts, and a datagram sent before the reader binds is lost"
    blog_example dgram-uds "dgram-blog-uds-reader @DIR@/s" "dgram-blog-uds-writer @DIR@/s" \
      "dgram-reader udg://@DIR@/s" "dgram-writer udg://@DIR@/s" reader-first both
    blog_example dgram-udp "dgram-blog-udp-reader @ADDR@" "dgram-blog-udp-writer @ADDR@" \
      "dgram-reader udp://@ADDR@" "dgram-writer udp://@ADDR@" reader-first both
    blog_example stream-uds "stream-blog-uds-reader @DIR@/s" "stream-blog-uds-writer @DIR@/s" \
      "stream-reader unix://@DIR@/s" "stream-writer unix://@DIR@/s" reader-first both
    blog_example stream-tcp "stream-blog-tcp-reader @ADDR@" "stream-blog-tcp-writer @ADDR@" \
      "stream-reader tcp://@ADDR@" "stream-writer tcp://@ADDR@" reader-first both
    blog_example fifo "fifo-blog-reader @DIR@/p" "fifo-blog-writer @DIR@/p" \
      "fifo-reader @DIR@/p" "fifo-writer @DIR@/p" both both
    echo "note  shm: the blog's reader runs after its writer only: it reads once, a second after it starts, whatever is there"
    echo "note  shm-shmop: the blog's reader prints the whole 1024-byte segment, 992 NULs after the message (scripts/expected/shm-shmop-blog.reader)"
    blog_example shm-sysv "shm-blog-sysvshm-reader @DIR@/key" "shm-blog-sysvshm-writer @DIR@/key" \
      "shm-reader --key-file @DIR@/key" "shm-writer --key-file @DIR@/key" both writer-first
    blog_example shm-shmop "shm-blog-shmop-reader @DIR@/key" "shm-blog-shmop-writer @DIR@/key" \
      "shm-reader --api shmop --key-file @DIR@/key" "shm-writer --api shmop --key-file @DIR@/key" \
      both writer-first shm-shmop-blog
    blog_example mq "mq-blog-reader @DIR@/key" "mq-blog-writer @DIR@/key" \
      "mq-reader --key-file @DIR@/key" "mq-writer --key-file @DIR@/key" both both
    elapsed_ms=$((($(date +%s%N) - start) / 1000000))
    echo "all blog runs ran in ${elapsed_ms} ms" >&2
    echo "$passed passed, $failed failed"
    ((failed == 0))
  }
  blog_main && blog_exit=0 || blog_exit=$?
  exit "$blog_exit"
fi

# The message queue on Redis Streams (crates/broker), only where redis-server is installed: on the
# Unix socket of a redis-server this run starts in its own directory (nothing saved), never on a
# Redis that was running here before; the other pairs do not wait for it.
broker_url=
start_redis() {
  if ! command -v redis-server >/dev/null; then
    echo "skip  broker     redis-server not installed (apt-get install -y redis-server)"
    return 0
  fi
  local dir="$work/redis"
  mkdir -p "$dir"
  redis-server --port 0 --unixsocket "$dir/redis.sock" --unixsocketperm 700 --dir "$dir" \
    --save '' --appendonly no --logfile '' >"$dir/log" 2>&1 &
  pids+=("$!")
  if wait_for_line "$dir/log" 'ready to accept connections' "$!"; then
    broker_url="unix://$dir/redis.sock"
  else
    failed=$((failed + 1))
    printf 'FAIL  %-10s redis-server did not start\n' broker
  fi
}

preflight
start_redis
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
  run_pair dgram-reply "$order" yes "dgram-reader --reply Received" "dgram-writer --expect-reply"
  if [[ -n $broker_url ]]; then
    run_pair broker "$order" no "broker-reader --url $broker_url" "broker-writer --url $broker_url"
  fi
done
run_request_response
# Ten concurrent stream clients: one server (--connections 10), ten clients at once.
run_concurrent stream-ten 10 "stream-reader" "stream-writer"
run_many dgram-multicast "dgram-reader udp://239.255.0.1:9999" "dgram-writer udp://239.255.0.1:9999"
run_many dgram-broadcast "dgram-reader udp://0.0.0.0:9999 --shared" \
  "dgram-writer udp://255.255.255.255:9999 --broadcast"
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
