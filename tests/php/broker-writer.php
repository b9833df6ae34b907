<?php
// The message-queue writer on Redis Streams with phpredis: XADD the message as the entry's
// `body`, serialized as msg_send() does by default (--raw: the bytes as they are), its type as
// `type`. Test peer for our broker-reader.
//   php broker-writer.php --url unix:///path/redis.sock [--stream ipc-message-queues] [--type 1]
//       [--raw] [--message TEXT | --message-file F | --int N | --float X | --bool B | --null]

require __DIR__ . '/broker-common.php';

$opts = options([
    'url' => 'redis://127.0.0.1:6379',
    'stream' => 'ipc-message-queues',
    'type' => '1',
    'raw' => false,
    'message' => 'Hello from Writer: Message Queue',
    'message-file' => null,
    'int' => null,
    'float' => null,
    'bool' => null,
    'null' => false,
    'timeout' => '10',
]);
$deadline = deadline($opts);
$value = value($opts);
$redis = broker_connect($opts, $deadline);
$body = $opts['raw'] ? (string) $value : serialize($value);

$id = $redis->xAdd($opts['stream'], '*', ['type' => $opts['type'], 'body' => $body]);
if ($id === false) {
    fail("XADD to stream {$opts['stream']}: " . $redis->getLastError());
}
say("added " . strlen($body) . " bytes to stream {$opts['stream']}: entry $id");
