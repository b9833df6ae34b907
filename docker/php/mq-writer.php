<?php
// The blog's message-queue writer for a PHP container whose reader (our mq-reader) runs as
// another user in the same group: tests/php/mq-writer.php, except that the queue it creates gets
// --mode (default 0660, owner and group) instead of 0600.
//   php mq-writer.php --key-file /ipc/ipc-mq.key [--mode 0660] [--message TEXT] [--timeout 10]

require __DIR__ . '/common.php';

$opts = options([
    'key-file' => '/ipc/ipc-mq.key',
    'type' => '1',
    'mode' => '0660',
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

$key = ftok(ensure_key_file($opts), 'T');
$queue = msg_get_queue($key, octdec($opts['mode']));
// Not blocking on a full queue: retry on EAGAIN until the deadline.
wait_until($opts, $deadline, 'room in queue ' . show_key($key), function () use ($queue, $opts, $value, $key) {
    if (msg_send($queue, (int) $opts['type'], $value, !$opts['raw'], false, $errno)) {
        return true;
    }
    return $errno === MSG_EAGAIN ? null : fail('msg_send to queue ' . show_key($key) . ': ' . posix_strerror($errno));
});
