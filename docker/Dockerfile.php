# A PHP peer for our containers, built with no registry: the host's PHP CLI (Debian's php8.2),
# its libraries and the example extensions, laid out by docker/stage-php.sh, in an empty image.
#
#   docker build -t php-ipc-php:local "$(docker/stage-php.sh)"
#
# It stands in for a team's own PHP image (php:8.2-cli, php-fpm, ...): what matters to the
# recipe in docker/compose.php.yaml is only the user it runs as, www-data (33), and the group it
# shares with our containers, php-ipc (10001).
FROM scratch

COPY rootfs/ /
# /ipc exactly as in our image (docker/Dockerfile): 10001:10001, mode 0770. A fresh volume takes
# the owner and mode of the first image mounted over it, so both images must agree.
COPY --chown=10001:10001 ipcroot/ /

USER www-data:php-ipc
WORKDIR /ipc
ENTRYPOINT ["php"]

LABEL org.opencontainers.image.title="php-ipc-php" \
      org.opencontainers.image.description="Debian's PHP CLI with the sockets and SysV extensions and the php-ipc-rs PHP peers, FROM scratch" \
      org.opencontainers.image.source="https://example.invalid/php-ipc-rs" \
      org.opencontainers.image.licenses="MIT AND PHP-3.01"

CMD ["-m"]
