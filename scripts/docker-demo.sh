#!/usr/bin/env bash
# Runs every writer/reader pair of docker/compose.yaml in separate containers, and PHP against
# Rust both ways through docker/compose.php.yaml, and checks what crossed between them, byte for
# byte:
#
#   scripts/docker-demo.sh              # all pairs
#   scripts/docker-demo.sh stream mq    # only these: stream stream-many dgram fifo shm shmop mq
#                                       # mq-request (Rust on both sides), stream-php2rust
#                                       # stream-rust2php shm-php2rust shm-rust2php mq-php2rust
#                                       # mq-rust2php (PHP on one side), broker (Redis Streams,
#                                       # docker/compose.redis.yaml)
#
# Steps: stage the static binaries (docker/stage.sh) and build the FROM-scratch image
# ($IPC_IMAGE, default php-ipc-rs:local), then build it again with --no-cache into a private tag,
# checking that both have the same content (layers and config, see image_content below); stage this machine's PHP CLI
# (docker/stage-php.sh) and build the PHP image ($IPC_PHP_IMAGE, default php-ipc-php:local); the
# previous build of a tag is removed if nothing else uses it. Then for each pair `compose up -d`
# its two services in a project of its own name, `docker wait` both containers, and compare the
# reader's stdout (and the stream client's, which prints the server's greeting) with the expected
# bytes. One pass/fail line per pair on stdout, then `N passed, M failed`; details of a failure on
# stderr. Exits 1 if any pair failed or the builds differ.
#
# Always tears down (`down -v --remove-orphans`, also on Ctrl-C, which ends with a line saying
# what was removed): no containers, volumes, networks or check images are left, only the two
# tagged images. Every step is bounded by timeout(1), and a step that runs out says "timed out".
#
# Without a reachable Docker engine it says so and exits 0 ("0 passed, 0 failed"), unless CI=true,
# where that is a failure; likewise without a PHP CLI for the PHP pairs (each is reported as
# skipped).
#
# The broker pair also needs the Redis image ($IPC_REDIS_IMAGE, default php-ipc-redis:local),
# staged from this machine's redis-server (docker/stage-redis.sh); without one it is skipped
# (failed with CI=true), as the PHP pairs without PHP.
#
# Environment: IPC_IMAGE, IPC_PHP_IMAGE, IPC_REDIS_IMAGE (image tags), IPC_TIMEOUT (the peers' --timeout in the
# containers, default 30 s), STEP_TIMEOUT (each docker step, default 120 s), BUILD_TIMEOUT (the
# static cargo build, default 900 s).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
COMPOSE_FILE="$ROOT/docker/compose.yaml"
PHP_COMPOSE_FILE="$ROOT/docker/compose.php.yaml"
REDIS_COMPOSE_FILE="$ROOT/docker/compose.redis.yaml"
export IPC_IMAGE=${IPC_IMAGE:-php-ipc-rs:local}
export IPC_PHP_IMAGE=${IPC_PHP_IMAGE:-php-ipc-php:local}
export IPC_REDIS_IMAGE=${IPC_REDIS_IMAGE:-php-ipc-redis:local}
# What every binary in the containers may wait in total (their --timeout, via compose).
export IPC_TIMEOUT=${IPC_TIMEOUT:-30}
STEP_TIMEOUT=${STEP_TIMEOUT:-120}
BUILD_TIMEOUT=${BUILD_TIMEOUT:-900}
# Every name this run gives docker starts with this prefix (the cleanup after a killed run in
# docs/docker.md relies on it), and is its own: concurrent runs do not meet.
PROJECT="php-ipc-demo-$(date +%s)-$$"
# The second build of the reproducibility check, removed at the end.
CHECK_IMAGE="php-ipc-demo-check:$PROJECT"

# name|compose files (rust: compose.yaml; php: plus compose.php.yaml)|reader service|writer
# service(s)|reader's stdout|writer's stdout ("" = not checked); redis: plus compose.redis.yaml.
# Several writers (stream-many: three client containers, one server): the reader's lines,
# separated by ";", come in the order the clients finish, so both sides are sorted before the
# comparison; each writer's stdout is compared as it is.
PAIRS=(
    "stream|rust|stream-reader|stream-writer|Hello from Client: TCP/UDS [Stream]|Hello from Server: TCP/UDS [Stream]"
    "stream-many|rust|stream-server|stream-client-1 stream-client-2 stream-client-3|Hello from Client 1: TCP/UDS [Stream];Hello from Client 2: TCP/UDS [Stream];Hello from Client 3: TCP/UDS [Stream]|Hello from Server: TCP/UDS [Stream]"
    "dgram|rust|dgram-reader|dgram-writer|Hello from Sender: UDP/UDS [Datagram]|"
    "fifo|rust|fifo-reader|fifo-writer|Hello from Sender: Named Pipe|"
    "shm|rust|shm-reader|shm-writer|Hello from Writer: Shared Memory|"
    "shmop|rust|shmop-reader|shmop-writer|Hello from Writer: Shared Memory|"
    "mq|rust|mq-reader|mq-writer|Hello from Writer: Message Queue|"
    "mq-request|rust|mq-server|mq-client|{\"reply_type\":2,\"message\":\"Hello from Writer: Message Queue\"}|Hello from Writer: Message Queue"
    "stream-php2rust|php|stream-reader|php-stream-client|Hello from Client: TCP/UDS [Stream]|Hello from Server: TCP/UDS [Stream]"
    "stream-rust2php|php|php-stream-server|stream-writer|Hello from Client: TCP/UDS [Stream]|Hello from Server: TCP/UDS [Stream]"
    "shm-php2rust|php|shm-reader|php-shm-writer|Hello from Writer: Shared Memory|"
    "shm-rust2php|php|php-shm-reader|shm-writer-to-php|Hello from Writer: Shared Memory|"
    "mq-php2rust|php|mq-reader|php-mq-writer|Hello from Writer: Message Queue|"
    "mq-rust2php|php|php-mq-reader|mq-writer-to-php|Hello from Writer: Message Queue|"
    "broker|redis|broker-reader|broker-writer|Hello from Writer: Message Queue|"
)

in_ci() {
    [[ ${CI:-} == true || ${CI:-} == 1 ]]
}

unavailable() {
    if in_ci; then
        echo "docker-demo: $1; failing because CI=${CI}" >&2
        exit 1
    fi
    echo "docker-demo: $1; nothing to run"
    echo "0 passed, 0 failed"
    exit 0
}

command -v docker >/dev/null || unavailable "no docker command installed"
timeout 30 docker info >/dev/null 2>&1 || unavailable "no Docker engine reachable"
if timeout 30 docker compose version >/dev/null 2>&1; then
    COMPOSE=(docker compose)
elif command -v docker-compose >/dev/null; then
    COMPOSE=(docker-compose)
else
    unavailable "neither 'docker compose' nor 'docker-compose' is installed"
fi
COMPOSE+=(--project-name "$PROJECT" --file "$COMPOSE_FILE")
# The PHP and Redis pairs add their override; teardown uses both, since they name every service
# and network.
PHP_COMPOSE=("${COMPOSE[@]}" --file "$PHP_COMPOSE_FILE")
REDIS_COMPOSE=("${COMPOSE[@]}" --file "$REDIS_COMPOSE_FILE")
ALL_COMPOSE=("${PHP_COMPOSE[@]}" --file "$REDIS_COMPOSE_FILE")
# Without the buildx plugin BuildKit cannot build (an exported DOCKER_BUILDKIT=1 would make
# `docker build` fail); the classic builder needs nothing and builds this Dockerfile the same.
if ! timeout 30 docker buildx version >/dev/null 2>&1; then
    export DOCKER_BUILDKIT=0
fi

selected=()
if (($#)); then
    for name in "$@"; do
        found=
        for pair in "${PAIRS[@]}"; do
            [[ ${pair%%|*} == "$name" ]] && selected+=("$pair") && found=1
        done
        [[ -n $found ]] || { echo "docker-demo: no pair named '$name'" >&2; exit 2; }
    done
else
    selected=("${PAIRS[@]}")
fi

WORK=$(mktemp -d)
CHILD=
STARTED=
CHECK_BUILT=
# The log of the docker build under way, until it has succeeded.
BUILDING=

# Runs one step in the background under timeout(1), so that a Ctrl-C interrupts `wait` at once
# (a foreground child would make bash hold the trap until it ends) and cleanup can kill it.
# Sets TIMED_OUT when timeout(1) ended the step, for the caller's message.
TIMED_OUT=
bounded() {
    local secs=$1 status=0
    shift
    TIMED_OUT=
    timeout "$secs" "$@" &
    CHILD=$!
    wait "$CHILD" || status=$?
    CHILD=
    if ((status == 124)); then
        TIMED_OUT="timed out after ${secs}s"
    fi
    return "$status"
}

# " (timed out after Ns)" after a step that timeout(1) ended, else nothing.
why() {
    [[ -z $TIMED_OUT ]] || printf ' (%s)' "$TIMED_OUT"
}

# A classic build that fails or is cut short leaves the images of the steps it committed, untagged.
# They are ours if they descend from a step image our log names (" ---> 0123456789ab"): remove
# those that nothing else uses (`docker image rm` refuses the others), nothing more.
forget_failed_build() {
    local log=$1 steps image id
    steps=$(sed -n 's/^ ---> \([0-9a-f]\{12\}\)$/\1/p' "$log" 2>/dev/null | sort -u)
    [[ -n $steps ]] || return 0
    # The daemon may commit the step it was on after the client went away.
    sleep 1
    for image in $(timeout 30 docker images --quiet --filter dangling=true); do
        id=$image
        for _ in {1..20}; do
            if grep -qx "${id:0:12}" <<<"$steps"; then
                timeout 60 docker image rm "$image" >/dev/null 2>&1 || true
                break
            fi
            id=$(timeout 30 docker image inspect --format '{{.Parent}}' "$id" 2>/dev/null) || break
            id=${id#sha256:}
            [[ -n $id ]] || break
        done
    done
}

# docker build with its output in log $1, cleaned up after if it fails (forget_failed_build).
docker_build() {
    local log=$1 status=0
    shift
    BUILDING=$log
    bounded "$STEP_TIMEOUT" docker build --force-rm "$@" >"$log" 2>&1 || status=$?
    if ((status != 0)); then
        forget_failed_build "$log"
    fi
    BUILDING=
    return "$status"
}

teardown() {
    local status=0
    if [[ -n $BUILDING ]]; then
        forget_failed_build "$BUILDING"
        BUILDING=
    fi
    if [[ -n $STARTED ]]; then
        STARTED=
        bounded "$STEP_TIMEOUT" "${ALL_COMPOSE[@]}" down --volumes --remove-orphans --timeout 5 \
            >"$WORK/down.log" 2>&1 || {
            echo "docker-demo: teardown of project $PROJECT failed$(why):" >&2
            cat "$WORK/down.log" >&2
            status=1
        }
    fi
    # A failed build may have left no image to remove.
    if [[ -n $CHECK_BUILT ]] && timeout 30 docker image inspect "$CHECK_IMAGE" >/dev/null 2>&1; then
        CHECK_BUILT=
        bounded "$STEP_TIMEOUT" docker image rm "$CHECK_IMAGE" >"$WORK/rmi.log" 2>&1 || {
            echo "docker-demo: removing the check image $CHECK_IMAGE failed$(why):" >&2
            cat "$WORK/rmi.log" >&2
            status=1
        }
    fi
    return "$status"
}

# The script's own stdout and stderr: a signal's trap runs with the redirections of the step it
# interrupted (`bounded ... >"$WORK/x.log" 2>&1`), whose files cleanup then deletes.
exec {OUT}>&1 {ERR}>&2

cleanup() {
    local status=$?
    trap - EXIT INT TERM HUP
    exec 1>&"$OUT" 2>&"$ERR"
    if [[ -n $CHILD ]]; then
        kill -TERM "$CHILD" 2>/dev/null || true
        wait "$CHILD" 2>/dev/null || true
    fi
    teardown || status=1
    rm -rf "$WORK"
    if ((status == 129 || status == 130 || status == 143)); then
        echo "docker-demo: interrupted; removed what this run had created (project $PROJECT)" >&2
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# Without an image no pair can run: each counts as failed.
no_image() {
    echo "docker-demo: $1" >&2
    echo "0 passed, ${#selected[@]} failed"
    exit 1
}

# What makes two builds the same image. With the classic builder (no BuildKit here) the image ID
# is the digest of a config that also records when and in which container each step ran, so two
# builds never share it; and a local image has no registry digest. What is reproducible, and what
# a registry's digest would be made of, is the content: the layers' digests (RootFS.Layers: the
# sha256 of each uncompressed layer tar, names, modes, owners, times and bytes) and the config
# that the containers run with (user, env, entrypoint, labels...), for the same platform.
image_content() {
    bounded 30 docker image inspect \
        --format '{{.Os}}/{{.Architecture}} {{json .RootFS.Layers}} {{json .Config}}' "$1"
}

# Builds tag $1 from context $2 (which holds its Dockerfile), with any further docker build
# options, and removes the previous build of the tag unless something still uses it, so reruns
# do not pile up dangling images.
build_image() {
    local tag=$1 context=$2 old new
    shift 2
    old=$(timeout 30 docker image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)
    docker_build "$WORK/build.log" "$@" --tag "$tag" "$context" || {
        cat "$WORK/build.log" >&2
        return 1
    }
    new=$(timeout 30 docker image inspect --format '{{.Id}}' "$tag")
    if [[ -n $old && $old != "$new" ]] &&
        [[ $(timeout 30 docker image inspect --format '{{len .RepoTags}}' "$old") == 0 ]]; then
        timeout "$STEP_TIMEOUT" docker image rm "$old" >/dev/null 2>&1 ||
            echo "docker-demo: left the previous image ${old#sha256:} (still in use)" >&2
    fi
}

# The image always holds every binary, whichever pairs run, so it is the same image each time.
# The context is our own: a concurrent run (CI beside a developer) cannot swap it under our build.
echo "docker-demo: staging static binaries" >&2
context="$WORK/context"
bounded "$BUILD_TIMEOUT" "$ROOT/docker/stage.sh" "$context" >/dev/null ||
    no_image "staging the static binaries failed$(why) (cargo's errors above)"

# From the cache when nothing changed: the same image ID each run, so concurrent runs do not
# move the tag under each other and leave dangling images.
echo "docker-demo: building $IPC_IMAGE from $context" >&2
build_image "$IPC_IMAGE" "$context" || no_image "docker build of $IPC_IMAGE failed$(why)"

# Reproducibility: stage again into another directory (cargo has nothing to rebuild; this checks
# the layout and the file times) and build again from nothing (--no-cache): the result must have
# the content of $IPC_IMAGE (itself a build from nothing the first time, or a cache hit whose
# files are checksummed). The binaries' own reproducibility (remapped paths) needs two cargo
# builds from scratch, too slow for every run: docs/docker.md.
repro=0
echo "docker-demo: building it again from nothing (--no-cache) to check that it is reproducible" >&2
if bounded "$BUILD_TIMEOUT" "$ROOT/docker/stage.sh" "$WORK/context2" >/dev/null 2>"$WORK/stage2.log" &&
    CHECK_BUILT=1 && docker_build "$WORK/build2.log" --no-cache --tag "$CHECK_IMAGE" "$WORK/context2"; then
    image_content "$IPC_IMAGE" >"$WORK/content1"
    image_content "$CHECK_IMAGE" >"$WORK/content2"
    if cmp -s "$WORK/content1" "$WORK/content2"; then
        echo "pass: reproducible: a --no-cache rebuild has the same layers and config ($(
            sha256sum <"$WORK/content1" | cut -c1-16))"
    else
        echo "FAIL: reproducible: a --no-cache rebuild differs from $IPC_IMAGE"
        diff <(tr ',' '\n' <"$WORK/content1") <(tr ',' '\n' <"$WORK/content2") >&2 || true
        repro=1
    fi
else
    echo "FAIL: reproducible: the second build failed$(why)"
    cat "$WORK/stage2.log" "$WORK/build2.log" >&2 2>/dev/null || true
    repro=1
fi

# The PHP image, for the pairs that have PHP on one side.
php_ready=
php_missing=
need_php=
for pair in "${selected[@]}"; do
    [[ $(cut -d'|' -f2 <<<"$pair") == php ]] && need_php=1
done
if [[ -n $need_php ]]; then
    if ! command -v php >/dev/null; then
        php_missing="no php command to stage (Debian: apt-get install php-cli)"
    elif ! bounded "$STEP_TIMEOUT" "$ROOT/docker/stage-php.sh" "$WORK/php-context" >/dev/null; then
        php_missing="staging PHP failed$(why)"
    else
        echo "docker-demo: building $IPC_PHP_IMAGE from $WORK/php-context" >&2
        if build_image "$IPC_PHP_IMAGE" "$WORK/php-context"; then
            php_ready=1
        else
            php_missing="docker build of $IPC_PHP_IMAGE failed$(why)"
        fi
    fi
fi

# The Redis image, for the broker pair.
redis_ready=
redis_missing=
need_redis=
for pair in "${selected[@]}"; do
    [[ $(cut -d'|' -f2 <<<"$pair") == redis ]] && need_redis=1
done
if [[ -n $need_redis ]]; then
    if ! command -v redis-server >/dev/null; then
        redis_missing="no redis-server to stage (Debian: apt-get install redis-server)"
    elif ! bounded "$STEP_TIMEOUT" "$ROOT/docker/stage-redis.sh" "$WORK/redis-context" >/dev/null; then
        redis_missing="staging redis-server failed$(why)"
    else
        echo "docker-demo: building $IPC_REDIS_IMAGE from $WORK/redis-context" >&2
        if build_image "$IPC_REDIS_IMAGE" "$WORK/redis-context"; then
            redis_ready=1
        else
            redis_missing="docker build of $IPC_REDIS_IMAGE failed$(why)"
        fi
    fi
fi

# Checks one container: exit code 0 and stdout exactly `expected` plus "\n". Stdout alone is the
# payload; `docker logs` keeps the container's stderr (progress lines) on its own stderr.
check_container() {
    local label=$1 id=$2 code=$3 expected=$4 ok=0
    bounded "$STEP_TIMEOUT" docker logs "$id" >"$WORK/$label.out" 2>"$WORK/$label.err" || {
        echo "  docker logs $label failed$(why)" >&2
        return 1
    }
    if [[ $code == 124 ]]; then
        echo "  $label timed out (exit 124) waiting for its peer" >&2
        ok=1
    elif [[ $code != 0 ]]; then
        echo "  $label exited with $code" >&2
        ok=1
    fi
    if [[ -n $expected ]]; then
        local out="$WORK/$label.out"
        if [[ $expected == *";"* ]]; then
            # Lines in no particular order (a server's clients finish as they do): sorted.
            tr ';' '\n' <<<"$expected" | LC_ALL=C sort >"$WORK/$label.expected"
            LC_ALL=C sort "$out" >"$WORK/$label.sorted"
            out="$WORK/$label.sorted"
        else
            printf '%s\n' "$expected" >"$WORK/$label.expected"
        fi
        if ! cmp -s "$WORK/$label.expected" "$out"; then
            echo "  $label stdout differs from the expected bytes:" >&2
            diff -u --label expected --label "$label stdout" \
                "$WORK/$label.expected" "$out" >&2 || true
            ok=1
        fi
    fi
    if ((ok)); then
        echo "  $label stderr:" >&2
        sed 's/^/    /' "$WORK/$label.err" >&2
    fi
    return "$ok"
}

# run_pair NAME FILES READER "WRITER..." READER_EXPECTS WRITER_EXPECTS: one reader, one writer
# or several (each service once).
run_pair() {
    local name=$1 files=$2 reader=$3 reader_expects=$5 writer_expects=$6
    local -a writers services ids codes
    read -r -a writers <<<"$4"
    services=("$reader" "${writers[@]}")
    local -a compose=("${COMPOSE[@]}")
    [[ $files == php ]] && compose=("${PHP_COMPOSE[@]}")
    [[ $files == redis ]] && compose=("${REDIS_COMPOSE[@]}")
    STARTED=1
    bounded "$STEP_TIMEOUT" "${compose[@]}" up --detach --no-color "${services[@]}" \
        >"$WORK/$name.up" 2>&1 || {
        echo "  compose up failed$(why):" >&2
        sed 's/^/    /' "$WORK/$name.up" >&2
        return 1
    }
    # --all: a fast pair has exited already, and compose v2 lists only running containers
    # without it. Files, not $(...): a step in a command substitution would run in a subshell,
    # out of reach of the Ctrl-C trap.
    : >"$WORK/$name.ids"
    local service
    for service in "${services[@]}"; do
        bounded "$STEP_TIMEOUT" "${compose[@]}" ps --all --quiet "$service" >>"$WORK/$name.ids"
    done
    mapfile -t ids <"$WORK/$name.ids"
    if ((${#ids[@]} != ${#services[@]})); then
        echo "  compose did not create all ${#services[@]} containers" >&2
        return 1
    fi
    bounded "$STEP_TIMEOUT" docker wait "${ids[@]}" >"$WORK/$name.codes" || {
        echo "  the containers did not finish$(why)" >&2
        return 1
    }
    mapfile -t codes <"$WORK/$name.codes"
    local status=0 i
    check_container "$reader" "${ids[0]}" "${codes[0]}" "$reader_expects" || status=1
    for ((i = 1; i < ${#services[@]}; i++)); do
        check_container "${services[i]}" "${ids[i]}" "${codes[i]}" "$writer_expects" || status=1
    done
    return "$status"
}

# The reproducibility check counts as one check.
passed=$((1 - repro))
failed=$repro
for pair in "${selected[@]}"; do
    IFS='|' read -r name files reader writer reader_expects writer_expects <<<"$pair"
    missing=
    [[ $files == php && -z $php_ready ]] && missing=$php_missing
    [[ $files == redis && -z $redis_ready ]] && missing=$redis_missing
    if [[ -n $missing ]]; then
        if in_ci; then
            echo "FAIL: $name: $missing (CI=${CI})"
            failed=$((failed + 1))
        else
            echo "skip: $name: $missing"
        fi
        continue
    fi
    echo "docker-demo: running $name ($reader + $writer)" >&2
    if run_pair "$name" "$files" "$reader" "$writer" "$reader_expects" "$writer_expects"; then
        message="pass: $name: $reader printed \"${reader_expects//;/\", \"}\""
        [[ -z $writer_expects ]] || message+=", $writer printed \"$writer_expects\""
        echo "$message"
        passed=$((passed + 1))
    else
        echo "FAIL: $name ($reader + $writer)"
        failed=$((failed + 1))
    fi
done

# A failed teardown or a leftover object fails the run too, counted as one more failure.
teardown || failed=$((failed + 1))
leftovers=$(
    filter="label=com.docker.compose.project=$PROJECT"
    timeout 30 docker ps --all --quiet --filter "$filter"
    timeout 30 docker volume ls --quiet --filter "$filter"
    timeout 30 docker network ls --quiet --filter "$filter"
    timeout 30 docker image ls --quiet "$CHECK_IMAGE"
)
if [[ -n $leftovers ]]; then
    echo "docker-demo: project $PROJECT left objects behind: $leftovers" >&2
    failed=$((failed + 1))
fi

echo "$passed passed, $failed failed"
((failed == 0))
