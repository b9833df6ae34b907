<?php
// The blog's "UDP/UDS [Datagram]" sender: sends one datagram to a Unix datagram socket.
// Test peer for our dgram-reader, which must already be listening.
//   php dgram-uds-sender.php --socket /tmp/ipc-socket.sock [--message TEXT | --message-file F]

require __DIR__ . '/common.php';

$opts = options([
    'socket' => '/tmp/ipc-socket.sock',
    'message' => 'Hello from Sender: UDP/UDS [Datagram]',
    'message-file' => null,
    'timeout' => '10',
]);
$deadline = deadline($opts);
$socketPath = $opts['socket'];
$message = message($opts);

$socket = socket_create(AF_UNIX, SOCK_DGRAM, 0) or fail('socket_create: ' . socket_error());
bound_socket($socket, $deadline);
// The blog passes mb_strlen($message), the character count: a UTF-8 message would lose its
// tail. The length socket_sendto() wants is in bytes.
$sent = socket_sendto($socket, $message, strlen($message), 0, $socketPath);
if ($sent !== strlen($message)) {
    fail("socket_sendto $socketPath: " . ($sent === false ? socket_error($socket) : "sent $sent bytes"));
}
socket_close($socket);
