<?php
// The blog's message-queue reader: once the SysV queue keyed on ftok(key file, 'T') exists,
// receives one message of type --type with msg_receive(), unserialized as PHP does by default
// (--raw: the bytes as they are), echoes it and removes the queue. Test peer for our mq-writer.
//   php mq-reader.php --key-file /tmp/ipc-message-queues [--type 1] [--max-size 1024] [--raw]
// A message longer than --max-size (the blog's 1024) fails with E2BIG and stays queued.

require __DIR__ . '/common.php';

$opts = options([
    'key-file' => '/tmp/ipc-message-queues',
    'type' => '1',
    'max-size' => '1024',
    'raw' => false,
    'timeout' => '10',
]);
$deadline = deadline($opts);

$key = ftok(wait_for_key_file($opts, $deadline), 'T');
$shown = show_key($key);
say("waiting for a message on queue $shown");
// msg_get_queue() would create a missing queue; wait for the writer's instead.
wait_until($opts, $deadline, "queue $shown", fn () => msg_queue_exists($key) ?: null);
$queue = msg_get_queue($key);

// A blocking msg_receive() cannot time out: poll with MSG_IPC_NOWAIT until the deadline.
wait_until($opts, $deadline, "a message on queue $shown", function () use ($queue, $opts, &$message, $shown) {
    if (msg_receive($queue, (int) $opts['type'], $type, (int) $opts['max-size'], $message, !$opts['raw'], MSG_IPC_NOWAIT, $errno)) {
        return true;
    }
    return $errno === MSG_ENOMSG ? null : fail("msg_receive from queue $shown: " . posix_strerror($errno));
});
echo $message, "\n";

msg_remove_queue($queue);
