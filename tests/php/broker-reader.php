<?php
// The message-queue reader on Redis Streams with phpredis: joins the consumer group (XGROUP
// CREATE ... MKSTREAM), takes one message with xReadGroup (BLOCK, in slices until --timeout),
// echoes its `body` unserialized as msg_receive() does (--raw: as it is), then acknowledges it
// (XACK). Test peer for our broker-writer.
//   php broker-reader.php --url unix:///path/redis.sock [--stream S] [--group G] [--raw]

require __DIR__ . '/broker-common.php';

$opts = options([
    'url' => 'redis://127.0.0.1:6379',
    'stream' => 'ipc-message-queues',
    'group' => 'ipc-readers',
    'consumer' => 'php-' . getmypid(),
    'raw' => false,
    'timeout' => '10',
]);
$deadline = deadline($opts);
$redis = broker_connect($opts, $deadline);
[$stream, $group, $consumer] = [$opts['stream'], $opts['group'], $opts['consumer']];

// Fails with BUSYGROUP when the group exists already: that is fine.
if (!$redis->xGroup('CREATE', $stream, $group, '0', true)
    && !str_starts_with((string) $redis->getLastError(), 'BUSYGROUP')) {
    fail("XGROUP CREATE $stream $group: " . $redis->getLastError());
}
$redis->clearLastError();

say("waiting for a message on stream $stream");
$redis->setOption(Redis::OPT_READ_TIMEOUT, 5);
$entry = wait_until($opts, $deadline, "a message on stream $stream", function () use ($redis, $stream, $group, $consumer) {
    $got = $redis->xReadGroup($group, $consumer, [$stream => '>'], 1, 250);
    if ($got === false && $redis->getLastError() !== null) {
        fail("XREADGROUP $stream $group: " . $redis->getLastError());
    }
    return $got ? $got[$stream] : null;
});
$id = array_key_first($entry);
$body = $entry[$id]['body'];
echo $opts['raw'] ? $body : unserialize($body), "\n";

$redis->xAck($stream, $group, [$id]);
