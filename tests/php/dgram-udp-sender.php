<?php
// The blog's "UDP/IP [Datagram]" sender: sends one UDP datagram. Test peer for our
// dgram-reader, which must already be listening (a UDP datagram nobody receives is lost).
//   php dgram-udp-sender.php --host 127.0.0.1 --port 9999 [--message TEXT | --message-file F]

require __DIR__ . '/common.php';

$opts = options([
    'host' => '127.0.0.1',
    'port' => '9999',
    'message' => 'Hello from Sender: UDP/IP [Datagram]',
    'message-file' => null,
    'timeout' => '10',
]);
$deadline = deadline($opts);
$message = message($opts);

$socket = socket_create(AF_INET, SOCK_DGRAM, SOL_UDP) or fail('socket_create: ' . socket_error());
bound_socket($socket, $deadline);
// strlen, not the blog's mb_strlen: socket_sendto() counts bytes, not characters.
$sent = socket_sendto($socket, $message, strlen($message), 0, $opts['host'], (int) $opts['port']);
if ($sent !== strlen($message)) {
    fail("socket_sendto {$opts['host']}:{$opts['port']}: " . ($sent === false ? socket_error($socket) : "sent $sent bytes"));
}
socket_close($socket);
