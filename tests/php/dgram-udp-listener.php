<?php
// The blog's "UDP/IP [Datagram]" listener: binds a UDP socket, receives one datagram and echoes
// it. Test peer for our dgram-writer.
//   php dgram-udp-listener.php --host 127.0.0.1 --port 9999 [--length 1024] [--timeout 10]
// --port 0 lets the kernel choose; the "listening on" line says which port it chose.
// socket_recvfrom() silently truncates a datagram longer than --length.
// --reply TEXT answers the sender at the address socket_recvfrom() reported, on this same socket.

require __DIR__ . '/common.php';

$opts = options(['host' => '127.0.0.1', 'port' => '9999', 'length' => '1024', 'timeout' => '10', 'reply' => null]);
$deadline = deadline($opts);

$socket = socket_create(AF_INET, SOCK_DGRAM, SOL_UDP) or fail('socket_create: ' . socket_error());
socket_bind($socket, $opts['host'], (int) $opts['port'])
    or fail("socket_bind {$opts['host']}:{$opts['port']}: " . socket_error($socket));
socket_getsockname($socket, $host, $port);
say("listening on udp://$host:$port");

bound_socket($socket, $deadline);
$received = socket_recvfrom($socket, $message, (int) $opts['length'], 0, $fromHost, $fromPort);
if ($received === false) {
    socket_failed($opts, $socket, "socket_recvfrom on $host:$port", "a datagram on udp://$host:$port");
}
echo $message, "\n";
if ($opts['reply'] !== null) {
    $sent = socket_sendto($socket, $opts['reply'], strlen($opts['reply']), 0, $fromHost, $fromPort);
    if ($sent !== strlen($opts['reply'])) {
        fail("socket_sendto (the reply) $fromHost:$fromPort: " . ($sent === false ? socket_error($socket) : "sent $sent bytes"));
    }
}

socket_close($socket);
