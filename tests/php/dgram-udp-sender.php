<?php
// The blog's "UDP/IP [Datagram]" sender: sends one UDP datagram. Test peer for our
// dgram-reader, which must already be listening (a UDP datagram nobody receives is lost).
//   php dgram-udp-sender.php --host 127.0.0.1 --port 9999 [--message TEXT | --message-file F]
//     [--broadcast] (SO_BROADCAST: --host may be a broadcast address; a group address needs
//     nothing: TTL 1 and loopback are PHP's defaults) [--expect-reply] (wait for the
//     listener's answer on this same socket and print it: no second socket needed)

require __DIR__ . '/common.php';

$opts = options([
    'host' => '127.0.0.1',
    'port' => '9999',
    'message' => 'Hello from Sender: UDP/IP [Datagram]',
    'message-file' => null,
    'timeout' => '10',
    'broadcast' => false,
    'expect-reply' => false,
]);
$deadline = deadline($opts);
$message = message($opts);

$socket = socket_create(str_contains($opts['host'], ':') ? AF_INET6 : AF_INET, SOCK_DGRAM, SOL_UDP)
    or fail('socket_create: ' . socket_error());
if ($opts['broadcast']) {
    socket_set_option($socket, SOL_SOCKET, SO_BROADCAST, 1) or fail('SO_BROADCAST: ' . socket_error($socket));
}
bound_socket($socket, $deadline);
// strlen, not the blog's mb_strlen: socket_sendto() counts bytes, not characters.
$sent = socket_sendto($socket, $message, strlen($message), 0, $opts['host'], (int) $opts['port']);
if ($sent !== strlen($message)) {
    fail("socket_sendto {$opts['host']}:{$opts['port']}: " . ($sent === false ? socket_error($socket) : "sent $sent bytes"));
}
if ($opts['expect-reply']) {
    // socket_sendto bound us to an ephemeral port: the listener answers there.
    $received = socket_recvfrom($socket, $reply, 65536, 0, $fromHost, $fromPort);
    if ($received === false) {
        socket_failed($opts, $socket, 'socket_recvfrom (the reply)', "a reply from {$opts['host']}:{$opts['port']}");
    }
    echo $reply, "\n";
}
socket_close($socket);
