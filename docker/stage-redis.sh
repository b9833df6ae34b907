#!/usr/bin/env bash
# Lays out the build context of a FROM-scratch image holding this machine's redis-server
# (Debian's redis-server package) and nothing else: no registry, no pull, as docker/stage-php.sh
# does for PHP. Prints the context directory on stdout.
#
#   docker build -t php-ipc-redis:local "$(docker/stage-redis.sh)"   # the context holds its Dockerfile
#   docker/stage-redis.sh DIR    # lay out in DIR (default target/docker-redis-context)
#
# redis-server is dynamically linked (jemalloc, OpenSSL for TLS, libsystemd...), so the context
# holds what the dynamic loader needs to start it: the binary, every shared library `ldd` lists,
# the loader itself at the path compiled into the binary. Layout:
#   rootfs/usr/bin/redis-server, rootfs/<library paths>
#   rootfs/etc/passwd, rootfs/etc/group   root and redis (10002)
#   rootfs/data/                          mode 0700, owned by redis in the Dockerfile (its --dir)
#   Dockerfile                            docker/Dockerfile.redis
# File times are set to SOURCE_DATE_EPOCH (default: the last commit's), as in docker/stage.sh.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CONTEXT=${1:-$ROOT/target/docker-redis-context}
redis_bin=$(command -v redis-server) ||
    { echo "stage-redis: no redis-server command (Debian: apt-get install redis-server)" >&2; exit 1; }
version=$(redis-server --version | sed -n 's/.* v=\([^ ]*\).*/\1/p')
# Debian's redis-server is a link to redis-check-rdb, which acts on the name it is started by: it
# is installed under the name redis-server.
redis_bin=$(readlink -f "$redis_bin")

umask 022
rm -rf "$CONTEXT/rootfs" "$CONTEXT/Dockerfile"
mkdir -p "$CONTEXT/rootfs/usr/bin" "$CONTEXT/rootfs/etc" "$CONTEXT/rootfs/data"
chmod 0700 "$CONTEXT/rootfs/data"
install -m 0755 "$redis_bin" "$CONTEXT/rootfs/usr/bin/redis-server"
# `ldd` prints "name => /path (addr)" for a library and "/path (addr)" for the loader; both are
# copied to the path the loader will look at, links resolved.
ldd "$redis_bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } NF == 2 && $1 ~ /^\// { print $1 }' | sort -u |
    while read -r lib; do
        mkdir -p "$CONTEXT/rootfs/$(dirname "$lib")"
        install -m 0755 "$(readlink -f "$lib")" "$CONTEXT/rootfs/$lib"
    done
printf '%s\n' 'root:x:0:0:root:/root:/usr/sbin/nologin' 'redis:x:10002:10002:redis:/data:/usr/sbin/nologin' \
    >"$CONTEXT/rootfs/etc/passwd"
printf '%s\n' 'root:x:0:' 'redis:x:10002:' >"$CONTEXT/rootfs/etc/group"
install -m 0644 "$ROOT/docker/Dockerfile.redis" "$CONTEXT/Dockerfile"

epoch=${SOURCE_DATE_EPOCH:-$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || echo 0)}
find "$CONTEXT/rootfs" "$CONTEXT/Dockerfile" -exec touch -h -d "@$epoch" {} +

echo "stage-redis: Redis $version in $CONTEXT ($(du -sh "$CONTEXT" | cut -f1))" >&2
echo "$CONTEXT"
