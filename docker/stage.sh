#!/usr/bin/env bash
# Builds the writer/reader binaries fully static and lays out the docker build context that
# docker/Dockerfile copies into a FROM-scratch image. Prints the context directory on stdout (its
# only output there); progress goes to stderr.
#
#   docker build -f docker/Dockerfile -t php-ipc-rs:local "$(docker/stage.sh)"
#   docker/stage.sh DIR    # lay out the context in DIR (default target/docker-context), e.g.
#                          # a private one per run, so concurrent runs do not share it
#
# Why static: the image has no base, so no libc.so and no loader. glibc's static libc.a links
# everything in; `-C target-feature=+crt-static` asks rustc for it, and the explicit `--target`
# keeps that flag off build scripts and proc macros (which must stay dynamic, they run on the
# host). A separate target directory keeps this build from invalidating the workspace's usual
# `target/debug` artifacts or waiting on its build lock.
#
# Layout of the context (the only thing sent to the docker daemon, ~26 MB, not the repo):
#   rootfs/usr/local/bin/<mech>-{reader,writer}   the binaries, mode 0755
#   rootfs/tmp/                                   mode 1777, as every /tmp
#   ipc/                                          empty, mode 0700; the Dockerfile copies it
#                                                 to /ipc owned by 10001:10001
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=x86_64-unknown-linux-gnu
TARGET_DIR="$ROOT/target/static"
CONTEXT=${1:-$ROOT/target/docker-context}
# Every mechanism crate ships exactly `<mech>-writer` and `<mech>-reader`.
MECHANISMS=(dgram stream fifo shm mq)

packages=()
for mech in "${MECHANISMS[@]}"; do
    packages+=(-p "$mech")
done

echo "stage: building ${MECHANISMS[*]} static for $TARGET (release, $TARGET_DIR)" >&2
# Debug info stripped (symbols kept for backtraces): a static binary is 2.5 MB instead of 10.
# No timeout(1) here: it would move cargo out of the terminal's process group, out of reach of
# Ctrl-C. scripts/docker-demo.sh bounds this whole script instead.
RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-C target-feature=+crt-static" \
    cargo build --manifest-path "$ROOT/Cargo.toml" --release --config 'profile.release.strip="debuginfo"' \
    --target "$TARGET" --target-dir "$TARGET_DIR" --bins "${packages[@]}" >&2

umask 022
# Only what this script lays out is replaced; anything else in the directory is left alone.
rm -rf "$CONTEXT/rootfs" "$CONTEXT/ipc"
mkdir -p "$CONTEXT/rootfs/usr/local/bin" "$CONTEXT/rootfs/tmp" "$CONTEXT/ipc"
chmod 1777 "$CONTEXT/rootfs/tmp"
chmod 0700 "$CONTEXT/ipc"

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

echo "stage: $(find "$CONTEXT/rootfs/usr/local/bin" -type f | wc -l) static binaries in $CONTEXT ($(du -sh "$CONTEXT" | cut -f1))" >&2
echo "$CONTEXT"
