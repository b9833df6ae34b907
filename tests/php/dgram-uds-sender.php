<?php
// The blog's "UDP/UDS [Datagram]" sender: sends one datagram to a Unix datagram socket.
// Test peer for our dgram-reader, which must already be listening.
//   php dgram-uds-sender.php --socket /tmp/ipc-socket.sock [--message TEXT | --message-file F]
//     [--reply-socket PATH] (bind there first, so the listener can answer on this same socket;
//     wait for the answer, print it, remove PATH)

require __DIR__ . '/common.php';

$opts = options([
    'socket' => '/tmp/ipc-socket.sock',
    'message' => 'Hello from Sender: UDP/UDS [Datagram]',
    'message-file' => null,
    'timeout' => '10',
    'reply-socket' => null,
]);
$deadline = deadline($opts);
$socketPath = $opts['socket'];
$message = message($opts);

$socket = socket_create(AF_UNIX, SOCK_DGRAM, 0) or fail('socket_create: ' . socket_error());
if ($opts['reply-socket'] !== null) {
    socket_bind($socket, $opts['reply-socket']) or fail("socket_bind {$opts['reply-socket']}: " . socket_error($socket));
    register_shutdown_function(fn () => unlink($opts['reply-socket']));
}
bound_socket($socket, $deadline);
// The blog passes mb_strlen($message), the character count: a UTF-8 message would lose its
// tail. The length socket_sendto() wants is in bytes.
$sent = socket_sendto($socket, $message, strlen($message), 0, $socketPath);
if ($sent !== strlen($message)) {
    fail("socket_sendto $socketPath: " . ($sent === false ? socket_error($socket) : "sent $sent bytes"));
}
if ($opts['reply-socket'] !== null) {
    $received = socket_recvfrom($socket, $reply, 65536, 0, $from);
    if ($received === false) {
        socket_failed($opts, $socket, 'socket_recvfrom (the reply)', "a reply from $socketPath");
    }
    echo $reply, "\n";
}
socket_close($socket);
