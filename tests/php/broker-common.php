<?php
// The Redis connection of the broker peers (phpredis, Debian's php-redis): --url as our binaries
// take it (redis://HOST:PORT or unix:///path/to/redis.sock), the password from
// IPC_BROKER_PASSWORD (never an option), every call bounded by what is left of --timeout.

require_once __DIR__ . '/common.php';

/** Connects to --url, retrying while Redis is not there yet, until the deadline. */
function broker_connect(array $opts, float $deadline): Redis
{
    $url = $opts['url'];
    // parse_url() does not take unix:///path.
    $parts = str_starts_with($url, 'unix://')
        ? ['scheme' => 'unix', 'path' => substr($url, strlen('unix://'))]
        : parse_url($url);
    if ($parts === false || !in_array($parts['scheme'] ?? '', ['redis', 'unix'], true)) {
        fail("--url $url: give redis://HOST:PORT or unix:///path/to/redis.sock", EXIT_USAGE);
    }
    $redis = new Redis();
    $left = fn () => remaining($deadline) === INF ? 0.0 : max(0.001, remaining($deadline));
    wait_until($opts, $deadline, "Redis at $url", function () use ($redis, $parts, $left) {
        try {
            $ok = $parts['scheme'] === 'unix'
                ? $redis->connect($parts['path'])
                : $redis->connect($parts['host'], $parts['port'] ?? 6379, $left());
            return $ok ?: null;
        } catch (RedisException $e) {
            return null;
        }
    });
    $password = getenv('IPC_BROKER_PASSWORD');
    if ($password !== false && $password !== '' && !$redis->auth($password)) {
        fail("AUTH at $url: " . $redis->getLastError());
    }
    return $redis;
}
