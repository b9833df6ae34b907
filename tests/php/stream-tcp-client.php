<?php
// The blog's "TCP/IP [Stream]" client: connects over TCP, sends its message, reads the answer
// with ONE socket_read() of at most --length bytes and echoes it. Test peer for our
// stream-reader (the server), which must already be listening.
//   php stream-tcp-client.php --host 127.0.0.1 --port 9999 [--message TEXT | --message-file F]

require __DIR__ . '/common.php';

$opts = options([
    'host' => '127.0.0.1',
    'port' => '9999',
    'message' => 'Hello from Client: TCP/IP [Stream]',
    'message-file' => null,
    'length' => '1024',
    'timeout' => '10',
]);
$deadline = deadline($opts);
$address = "{$opts['host']}:{$opts['port']}";
$message = message($opts);

$socket = socket_create(AF_INET, SOCK_STREAM, SOL_TCP) or fail('socket_create: ' . socket_error());
bound_socket($socket, $deadline);
socket_connect($socket, $opts['host'], (int) $opts['port'])
    or fail("socket_connect $address: " . socket_error($socket));

socket_write_all($opts, $socket, $message, "the server on $address");
$response = socket_read($socket, (int) $opts['length']);
if ($response === false) {
    socket_failed($opts, $socket, "socket_read on $address", "the server's answer on tcp://$address");
}
echo $response, "\n";

socket_close($socket);
