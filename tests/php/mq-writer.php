<?php
// The blog's message-queue writer: gets the SysV queue keyed on ftok(key file, 'T') (creating
// it if missing) and sends the message as type --type with msg_send(), serialized as PHP does by
// default; --raw sends the bytes as they are (msg_send's $serialize = false). The queue stays
// for the reader. Test peer for our mq-reader.
//   php mq-writer.php --key-file /tmp/ipc-message-queues [--type 1] [--raw]
//       [--message TEXT | --message-file F | --int N | --float X | --bool B | --null]

require __DIR__ . '/common.php';

$opts = options([
    'key-file' => '/tmp/ipc-message-queues',
    'type' => '1',
    'raw' => false,
    'message' => 'Hello from Writer: Message Queue',
    'message-file' => null,
    'int' => null,
    'float' => null,
    'bool' => null,
    'null' => false,
    'mode' => '0600',
    'timeout' => '10',
]);
$deadline = deadline($opts);
$value = value($opts);

$key = ftok(ensure_key_file($opts), 'T');
// --mode 0600 rather than the blog's 0666: only our own user (the test's) needs the queue; the
// docker demo's PHP container gives 0660 to share it with its group.
$queue = msg_get_queue($key, octdec($opts['mode']));
// A blocking msg_send() waits for room in a full queue with no timeout: send with
// $blocking = false and retry on EAGAIN until the deadline.
wait_until($opts, $deadline, 'room in queue ' . show_key($key), function () use ($queue, $opts, $value, $key) {
    if (msg_send($queue, (int) $opts['type'], $value, !$opts['raw'], false, $errno)) {
        return true;
    }
    return $errno === MSG_EAGAIN ? null : fail('msg_send to queue ' . show_key($key) . ': ' . posix_strerror($errno));
});
