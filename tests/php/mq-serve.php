<?php
// A message-queue server in PHP, as `mq-reader --serve`: takes each request of type 1 (an array
// ['reply_type' => PID, 'message' => VALUE]), prints it as one JSON line, and sends VALUE back
// as type PID, where only that client reads. After --requests N it waits for its answers to be
// read, then removes the queue. Every wait is bounded by --timeout.
//   php mq-serve.php --key-file /tmp/ipc-message-queues [--requests 1] [--timeout 10]

require __DIR__ . '/common.php';

$opts = options([
    'key-file' => '/tmp/ipc-message-queues',
    'requests' => '1',
    'mode' => '0600',
    'timeout' => '10',
]);

$key = ftok(ensure_key_file($opts), 'T');
$shown = show_key($key);
$queue = msg_get_queue($key, octdec($opts['mode']));
say("serving requests of type 1 on queue $shown");

for ($n = 0; $n < (int) $opts['requests']; $n++) {
    $deadline = deadline($opts);
    wait_until($opts, $deadline, "a request on queue $shown", function () use ($queue, &$request, $shown) {
        if (msg_receive($queue, 1, $type, 8192, $request, true, MSG_IPC_NOWAIT, $errno)) {
            return true;
        }
        return $errno === MSG_ENOMSG ? null : fail("msg_receive from queue $shown: " . posix_strerror($errno));
    });
    echo json_encode($request), "\n";
    $to = $request['reply_type'];
    $deadline = deadline($opts);
    wait_until($opts, $deadline, "room in queue $shown for the answer of type $to", function () use ($queue, $request, $to, $shown) {
        if (msg_send($queue, $to, $request['message'], true, false, $errno)) {
            return true;
        }
        return $errno === MSG_EAGAIN ? null : fail("msg_send to queue $shown: " . posix_strerror($errno));
    });
}

// The last answers may not be read yet: removing the queue now would destroy them.
$deadline = deadline($opts);
wait_until($opts, $deadline, "the answers on queue $shown to be read", fn () => msg_stat_queue($queue)['msg_qnum'] === 0 ?: null);
msg_remove_queue($queue);
