#!/usr/bin/env bash
# Lays out the build context of a FROM-scratch image holding this machine's PHP CLI (Debian's
# php8.2 here), the PHP peers of docker/compose.php.yaml and nothing else: no registry, no pull,
# the same way docker/stage.sh stages our binaries. Prints the context directory on stdout.
#
#   docker build -t php-ipc-php:local "$(docker/stage-php.sh)"   # the context holds its Dockerfile
#   docker/stage-php.sh DIR    # lay out in DIR (default target/docker-php-context)
#
# PHP is dynamically linked, so the context holds what the dynamic loader needs to start it:
# the php binary, every shared library `ldd` lists for it and for the extensions, the loader
# itself (at the path compiled into the binary), the extensions the examples use (sockets, posix,
# sysvshm, sysvmsg, sysvsem, shmop) and a php.ini that loads exactly those, at PHP's compiled-in
# path. Layout:
#   rootfs/usr/bin/php, rootfs/<library paths>, rootfs/<extension_dir>/*.so, rootfs/<ini dir>/php.ini
#   rootfs/usr/share/zoneinfo/UTC         the one time zone, so PHP does not warn at start
#   rootfs/etc/passwd, rootfs/etc/group   root, www-data (33) and the shared group php-ipc (10001)
#   rootfs/php/                           the PHP peers of the tests (tests/php/), which take
#                                         --mode/--umask for the modes the containers need
#   rootfs/tmp/                           mode 1777
#   ipcroot/ipc/                          mode 0770, as in our image (docker/stage.sh): whichever
#                                         image first mounts the empty volume gives it this mode
#   Dockerfile                            docker/Dockerfile.php
# File times are set to SOURCE_DATE_EPOCH (default: the last commit's), as in docker/stage.sh.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CONTEXT=${1:-$ROOT/target/docker-php-context}
PHP=${PHP:-php}
EXTENSIONS=(sockets posix sysvshm sysvmsg sysvsem shmop)
# The peers taken unchanged from tests/php: they create nothing another user must open.
TEST_PEERS=(common.php stream-uds-client.php stream-uds-server.php sysvshm-writer.php sysvshm-reader.php mq-writer.php mq-reader.php)

php_bin=$(command -v "$PHP") || { echo "stage-php: no $PHP command (Debian: apt-get install php-cli)" >&2; exit 1; }
php_bin=$(readlink -f "$php_bin")
ext_dir=$("$php_bin" -n -r 'echo ini_get("extension_dir");')
ini_dir=$("$php_bin" -n -r 'echo PHP_CONFIG_FILE_PATH;')

umask 022
rm -rf "$CONTEXT/rootfs" "$CONTEXT/ipcroot" "$CONTEXT/Dockerfile"
mkdir -p "$CONTEXT/rootfs/usr/bin" "$CONTEXT/rootfs/etc" "$CONTEXT/rootfs/php" "$CONTEXT/rootfs/tmp" \
    "$CONTEXT/rootfs/$ext_dir" "$CONTEXT/rootfs/$ini_dir" "$CONTEXT/ipcroot/ipc"
chmod 1777 "$CONTEXT/rootfs/tmp"
chmod 0770 "$CONTEXT/ipcroot/ipc"

install -m 0755 "$php_bin" "$CONTEXT/rootfs/usr/bin/php"
objects=("$php_bin")
for ext in "${EXTENSIONS[@]}"; do
    so="$ext_dir/$ext.so"
    [[ -f $so ]] || { echo "stage-php: no $so (Debian: php-cli ships them all)" >&2; exit 1; }
    install -m 0644 "$so" "$CONTEXT/rootfs/$so"
    objects+=("$so")
done
# `ldd` prints "name => /path (addr)" for a library and "/path (addr)" for the loader; both
# are copied to the path the loader will look at, links resolved.
ldd "${objects[@]}" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } NF == 2 && $1 ~ /^\// { print $1 }' | sort -u |
    while read -r lib; do
        mkdir -p "$CONTEXT/rootfs/$(dirname "$lib")"
        install -m 0755 "$(readlink -f "$lib")" "$CONTEXT/rootfs/$lib"
    done

# Debian's PHP reads time zones from the system's tzdata: without one it warns at every start.
mkdir -p "$CONTEXT/rootfs/usr/share/zoneinfo"
install -m 0644 "$(readlink -f /usr/share/zoneinfo/UTC)" "$CONTEXT/rootfs/usr/share/zoneinfo/UTC"

{
    echo "; The php.ini of the php-ipc PHP image (docker/stage-php.sh): only what the examples use."
    for ext in "${EXTENSIONS[@]}"; do
        echo "extension=$ext"
    done
    # Warnings on stderr: stdout carries only the payload.
    echo "date.timezone=UTC"
    echo "display_errors=stderr"
    echo "log_errors=Off"
} >"$CONTEXT/rootfs/$ini_dir/php.ini"

printf '%s\n' 'root:x:0:0:root:/root:/usr/sbin/nologin' 'www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin' \
    'php-ipc:x:10001:10001:php-ipc:/ipc:/usr/sbin/nologin' >"$CONTEXT/rootfs/etc/passwd"
printf '%s\n' 'root:x:0:' 'www-data:x:33:' 'php-ipc:x:10001:www-data' >"$CONTEXT/rootfs/etc/group"

for peer in "${TEST_PEERS[@]}"; do
    install -m 0644 "$ROOT/tests/php/$peer" "$CONTEXT/rootfs/php/"
done
install -m 0644 "$ROOT/docker/Dockerfile.php" "$CONTEXT/Dockerfile"

epoch=${SOURCE_DATE_EPOCH:-$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || echo 0)}
find "$CONTEXT/rootfs" "$CONTEXT/ipcroot" "$CONTEXT/Dockerfile" -exec touch -h -d "@$epoch" {} +

echo "stage-php: $("$php_bin" -n -r 'echo PHP_VERSION;') with ${EXTENSIONS[*]} in $CONTEXT ($(du -sh "$CONTEXT" | cut -f1))" >&2
echo "$CONTEXT"
