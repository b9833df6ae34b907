<?php
// A client of a message-queue server (our `mq-reader --serve` or mq-serve.php): sends its
// message as a request, type 1, the array ['reply_type' => getmypid(), 'message' => $message]
// serialized as msg_send does by default, then takes only the answer of its own type, its pid,
// and echoes it. Who pushes and who reads which messages: requests are type 1, answers the pid.
//   php mq-request-client.php --key-file /tmp/ipc-message-queues [--message TEXT] [--timeout 10]

require __DIR__ . '/common.php';

$opts = options([
    'key-file' => '/tmp/ipc-message-queues',
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
$shown = show_key($key);
$queue = msg_get_queue($key, octdec($opts['mode']));
$pid = getmypid();

// A blocking msg_send() waits for room with no timeout: $blocking = false, retried on EAGAIN.
$request = ['reply_type' => $pid, 'message' => $value];
wait_until($opts, $deadline, "room in queue $shown", function () use ($queue, $request, $shown) {
    if (msg_send($queue, 1, $request, true, false, $errno)) {
        return true;
    }
    return $errno === MSG_EAGAIN ? null : fail("msg_send to queue $shown: " . posix_strerror($errno));
});
say("sent a request to queue $shown; waiting for the answer of type $pid");

// Only our own type: another client's answer is not ours to take.
wait_until($opts, $deadline, "the answer of type $pid on queue $shown", function () use ($queue, $pid, &$answer, $shown) {
    if (msg_receive($queue, $pid, $type, 8192, $answer, true, MSG_IPC_NOWAIT, $errno)) {
        return true;
    }
    return $errno === MSG_ENOMSG ? null : fail("msg_receive from queue $shown: " . posix_strerror($errno));
});
echo $answer, "\n";
