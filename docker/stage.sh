#!/usr/bin/env bash
# Builds the writer/reader binaries fully static and lays out the docker build context that
# docker/Dockerfile copies into a FROM-scratch image. Prints the context directory on stdout (its
# only output there); progress goes to stderr.
#
#   docker build -t php-ipc-rs:local "$(docker/stage.sh)"    # the context holds its Dockerfile
#   docker/stage.sh DIR    # lay out the context in DIR (default target/docker-context), e.g.
#                          # a private one per run, so concurrent runs do not share it
#
# Why static: the image has no base, so no libc.so and no loader. glibc's static libc.a links
# everything in; `-C target-feature=+crt-static` asks rustc for it, and the explicit `--target`
# (the host's own, from `rustc -vV`, so the same script builds on x86_64 and arm64) keeps that
# flag off build scripts and proc macros (which must stay dynamic, they run on the host). A
# separate target directory keeps this build from invalidating the workspace's usual
# `target/debug` artifacts or waiting on its build lock.
#
# Reproducible: two runs on the same commit lay out byte-identical contexts, so two `docker
# build --no-cache` give identical layers (scripts/docker-demo.sh checks it). What used to differ:
# - paths of the build machine compiled into the binaries (panic locations of our crates and of
#   the registry's): `--remap-path-prefix` rewrites the checkout to /src and cargo's home to
#   /cargo, so another checkout, user or machine gives the same bytes;
# - file times, which docker copies into the layer: every file and directory of the context gets
#   the time of SOURCE_DATE_EPOCH (default: the last commit's time, or 0 outside git);
# - symbols: the binaries are stripped (27.9 -> 22.8 MB for the ten); a panic message still says
#   where (file:line), only a backtrace loses function names, and none of these binaries panics
#   by design.
#
# Layout of the context (the only thing sent to the docker daemon, ~23 MB, not the repo):
#   rootfs/usr/local/bin/<mech>-{reader,writer}   the binaries, mode 0755
#   rootfs/tmp/                                   mode 1777, as every /tmp
#   ipcroot/ipc/                                  empty, mode 0770; the Dockerfile copies
#                                                 ipcroot/ to / (so the directory itself, mode
#                                                 included) owned by 10001:10001
#   Dockerfile                                    docker/Dockerfile with the defaults of its
#                                                 VERSION and REVISION arguments (the OCI
#                                                 labels) filled in from the sources
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# The host's target triple: the image runs where it was built (multi-arch builds run this script
# in a builder of each platform, see docker/Dockerfile.multistage).
TARGET=$(rustc -vV | sed -n 's/^host: //p')
[[ -n $TARGET ]] || { echo "stage: rustc -vV names no host target" >&2; exit 1; }
TARGET_DIR="$ROOT/target/static"
CONTEXT=${1:-$ROOT/target/docker-context}
# Every mechanism crate ships exactly `<mech>-writer` and `<mech>-reader`.
MECHANISMS=(dgram stream fifo shm mq broker)

packages=()
for mech in "${MECHANISMS[@]}"; do
    packages+=(-p "$mech")
done

echo "stage: building ${MECHANISMS[*]} static for $TARGET (release, $TARGET_DIR)" >&2
CARGO_HOME_DIR=${CARGO_HOME:-$HOME/.cargo}
# No timeout(1) here: it would move cargo out of the terminal's process group, out of reach of
# Ctrl-C. scripts/docker-demo.sh bounds this whole script instead.
RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-C target-feature=+crt-static --remap-path-prefix=$ROOT=/src --remap-path-prefix=$CARGO_HOME_DIR=/cargo" \
    cargo build --manifest-path "$ROOT/Cargo.toml" --release \
    --config 'profile.release.strip="symbols"' --config 'profile.release.debug=false' \
    --target "$TARGET" --target-dir "$TARGET_DIR" --bins "${packages[@]}" >&2

umask 022
# Only what this script lays out is replaced; anything else in the directory is left alone.
rm -rf "$CONTEXT/rootfs" "$CONTEXT/ipcroot" "$CONTEXT/Dockerfile"
mkdir -p "$CONTEXT/rootfs/usr/local/bin" "$CONTEXT/rootfs/tmp" "$CONTEXT/ipcroot/ipc"
chmod 1777 "$CONTEXT/rootfs/tmp"
# 0770: our user and group 10001, which a PHP container shares (docker/compose.php.yaml); no one
# else.
chmod 0770 "$CONTEXT/ipcroot/ipc"

for mech in "${MECHANISMS[@]}"; do
    for side in writer reader; do
        bin="$TARGET_DIR/$TARGET/release/$mech-$side"
        # A dynamic binary would fail in the image with a bare "no such file or directory"
        # (the missing loader), so refuse it here with a clear message.
        if ldd "$bin" >/dev/null 2>&1 && ! ldd "$bin" 2>&1 | grep -q 'statically linked'; then
            echo "stage: $bin is dynamically linked:" >&2
            ldd "$bin" >&2
            exit 1
        fi
        if command -v file >/dev/null; then
            case "$(file -b "$bin")" in
                *"static-pie linked"* | *"statically linked"*) ;;
                *)
                    echo "stage: $bin is not static: $(file -b "$bin")" >&2
                    exit 1
                    ;;
            esac
        fi
        install -m 0755 "$bin" "$CONTEXT/rootfs/usr/local/bin/"
    done
done

# The labels' values (docker/Dockerfile's VERSION and REVISION), from the sources.
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$ROOT/crates/stream/Cargo.toml" | head -n 1)
revision=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)
if [[ $revision != unknown ]] && [[ -n $(git -C "$ROOT" status --porcelain -- crates Cargo.toml Cargo.lock docker 2>/dev/null) ]]; then
    revision+=-dirty
fi
sed -e "s|^ARG VERSION=.*|ARG VERSION=${version:-unknown}|" -e "s|^ARG REVISION=.*|ARG REVISION=$revision|" \
    "$ROOT/docker/Dockerfile" >"$CONTEXT/Dockerfile"

# Every time in the context is the same, so the layers are too.
epoch=${SOURCE_DATE_EPOCH:-$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || echo 0)}
find "$CONTEXT/rootfs" "$CONTEXT/ipcroot" "$CONTEXT/Dockerfile" -exec touch -h -d "@$epoch" {} +

echo "stage: $(find "$CONTEXT/rootfs/usr/local/bin" -type f | wc -l) static binaries in $CONTEXT ($(du -sh "$CONTEXT" | cut -f1))" >&2
echo "$CONTEXT"
