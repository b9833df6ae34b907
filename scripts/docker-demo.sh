#!/usr/bin/env bash
# Runs every writer/reader pair of docker/compose.yaml in separate containers and checks what
# crossed between them, byte for byte:
#
#   scripts/docker-demo.sh              # all pairs
#   scripts/docker-demo.sh stream mq    # only these (stream dgram fifo shm shmop mq)
#
# Steps: stage the static binaries (docker/stage.sh), build the FROM-scratch image
# ($IPC_IMAGE, default php-ipc-rs:local; the previous build is removed if nothing else uses it),
# then for each pair `compose up -d` its two services in a project of its own name, `docker wait`
# both containers, and compare the reader's stdout (and the stream client's, which prints the
# server's greeting) with the expected bytes. One pass/fail line per pair on stdout, then
# `N passed, M failed`; details of a failure on stderr. Exits 1 if any pair failed.
#
# Always tears down (`down -v --remove-orphans`, also on Ctrl-C): no containers, volumes or
# networks are left, only the tagged image. Every step is bounded by timeout(1).
#
# Without a reachable Docker engine it says so and exits 0 ("0 passed, 0 failed"), unless CI=true,
# where that is a failure.
#
# Environment: IPC_IMAGE (image tag), IPC_TIMEOUT (the binaries' --timeout in the containers,
# default 30 s), STEP_TIMEOUT (each docker step, default 120 s), BUILD_TIMEOUT (the static cargo
# build, default 900 s).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
COMPOSE_FILE="$ROOT/docker/compose.yaml"
export IPC_IMAGE=${IPC_IMAGE:-php-ipc-rs:local}
# What every binary in the containers may wait in total (their --timeout, via compose).
export IPC_TIMEOUT=${IPC_TIMEOUT:-30}
STEP_TIMEOUT=${STEP_TIMEOUT:-120}
BUILD_TIMEOUT=${BUILD_TIMEOUT:-900}
PROJECT="php-ipc-demo-$(date +%s)-$$"

# name|reader service|writer service|reader's stdout|writer's stdout ("" = not checked)
PAIRS=(
    "stream|stream-reader|stream-writer|Hello from Client: TCP/UDS [Stream]|Hello from Server: TCP/UDS [Stream]"
    "dgram|dgram-reader|dgram-writer|Hello from Sender: UDP/UDS [Datagram]|"
    "fifo|fifo-reader|fifo-writer|Hello from Sender: Named Pipe|"
    "shm|shm-reader|shm-writer|Hello from Writer: Shared Memory|"
    "shmop|shmop-reader|shmop-writer|Hello from Writer: Shared Memory|"
    "mq|mq-reader|mq-writer|Hello from Writer: Message Queue|"
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

# Runs one step in the background under timeout(1), so that a Ctrl-C interrupts `wait` at once
# (a foreground child would make bash hold the trap until it ends) and cleanup can kill it.
bounded() {
    local secs=$1 status=0
    shift
    timeout "$secs" "$@" &
    CHILD=$!
    wait "$CHILD" || status=$?
    CHILD=
    return "$status"
}

teardown() {
    [[ -n $STARTED ]] || return 0
    STARTED=
    bounded "$STEP_TIMEOUT" "${COMPOSE[@]}" down --volumes --remove-orphans --timeout 5 \
        >"$WORK/down.log" 2>&1 || {
        echo "docker-demo: teardown of project $PROJECT failed:" >&2
        cat "$WORK/down.log" >&2
        return 1
    }
}

cleanup() {
    local status=$?
    trap - EXIT INT TERM HUP
    if [[ -n $CHILD ]]; then
        kill -TERM "$CHILD" 2>/dev/null || true
        wait "$CHILD" 2>/dev/null || true
    fi
    teardown || status=1
    rm -rf "$WORK"
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

# The image always holds every binary, whichever pairs run, so it is the same image each time.
# The context is our own: a concurrent run (CI beside a developer) cannot swap it under our build.
echo "docker-demo: staging static binaries" >&2
context="$WORK/context"
bounded "$BUILD_TIMEOUT" "$ROOT/docker/stage.sh" "$context" >/dev/null ||
    no_image "staging the static binaries failed (cargo's errors above)"

echo "docker-demo: building $IPC_IMAGE from $context" >&2
old_image=$(timeout 30 docker image inspect --format '{{.Id}}' "$IPC_IMAGE" 2>/dev/null || true)
bounded "$STEP_TIMEOUT" docker build --force-rm --tag "$IPC_IMAGE" \
    --file "$ROOT/docker/Dockerfile" "$context" >"$WORK/build.log" 2>&1 || {
    cat "$WORK/build.log" >&2
    no_image "docker build failed"
}
new_image=$(timeout 30 docker image inspect --format '{{.Id}}' "$IPC_IMAGE")
# The previous build lost its tag: remove it unless something still uses it, so reruns do not
# pile up dangling images.
if [[ -n $old_image && $old_image != "$new_image" ]] &&
    [[ $(timeout 30 docker image inspect --format '{{len .RepoTags}}' "$old_image") == 0 ]]; then
    timeout "$STEP_TIMEOUT" docker image rm "$old_image" >/dev/null 2>&1 ||
        echo "docker-demo: left the previous image ${old_image#sha256:} (still in use)" >&2
fi

# Checks one container: exit code 0 and stdout exactly `expected` plus "\n". Stdout alone is the
# payload; `docker logs` keeps the container's stderr (progress lines) on its own stderr.
check_container() {
    local label=$1 id=$2 code=$3 expected=$4 ok=0
    bounded "$STEP_TIMEOUT" docker logs "$id" >"$WORK/$label.out" 2>"$WORK/$label.err" || {
        echo "  docker logs $label failed" >&2
        return 1
    }
    if [[ $code != 0 ]]; then
        echo "  $label exited with $code" >&2
        ok=1
    fi
    if [[ -n $expected ]]; then
        printf '%s\n' "$expected" >"$WORK/$label.expected"
        if ! cmp -s "$WORK/$label.expected" "$WORK/$label.out"; then
            echo "  $label stdout differs from the expected bytes:" >&2
            diff -u --label expected --label "$label stdout" \
                "$WORK/$label.expected" "$WORK/$label.out" >&2 || true
            ok=1
        fi
    fi
    if ((ok)); then
        echo "  $label stderr:" >&2
        sed 's/^/    /' "$WORK/$label.err" >&2
    fi
    return "$ok"
}

run_pair() {
    local name=$1 reader=$2 writer=$3 reader_expects=$4 writer_expects=$5
    local reader_id writer_id reader_code writer_code
    STARTED=1
    bounded "$STEP_TIMEOUT" "${COMPOSE[@]}" up --detach --no-color "$reader" "$writer" \
        >"$WORK/$name.up" 2>&1 || {
        echo "  compose up failed:" >&2
        sed 's/^/    /' "$WORK/$name.up" >&2
        return 1
    }
    # --all: a fast pair has exited already, and compose v2 lists only running containers
    # without it. Files, not $(...): a step in a command substitution would run in a subshell,
    # out of reach of the Ctrl-C trap.
    bounded "$STEP_TIMEOUT" "${COMPOSE[@]}" ps --all --quiet "$reader" >"$WORK/$name.ids"
    bounded "$STEP_TIMEOUT" "${COMPOSE[@]}" ps --all --quiet "$writer" >>"$WORK/$name.ids"
    { read -r reader_id && read -r writer_id; } <"$WORK/$name.ids" || {
        echo "  compose did not create both containers" >&2
        return 1
    }
    bounded "$STEP_TIMEOUT" docker wait "$reader_id" "$writer_id" >"$WORK/$name.codes" || {
        echo "  the containers did not finish within ${STEP_TIMEOUT}s" >&2
        return 1
    }
    { read -r reader_code && read -r writer_code; } <"$WORK/$name.codes"
    local status=0
    check_container "$reader" "$reader_id" "$reader_code" "$reader_expects" || status=1
    check_container "$writer" "$writer_id" "$writer_code" "$writer_expects" || status=1
    return "$status"
}

passed=0
failed=0
for pair in "${selected[@]}"; do
    IFS='|' read -r name reader writer reader_expects writer_expects <<<"$pair"
    echo "docker-demo: running $name ($reader + $writer)" >&2
    if run_pair "$name" "$reader" "$writer" "$reader_expects" "$writer_expects"; then
        message="pass: $name: $reader printed \"$reader_expects\""
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
)
if [[ -n $leftovers ]]; then
    echo "docker-demo: project $PROJECT left objects behind: $leftovers" >&2
    failed=$((failed + 1))
fi

echo "$passed passed, $failed failed"
((failed == 0))
