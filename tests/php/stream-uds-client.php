<?php
// The blog's "TCP/UDS [Stream]" client: connects to a Unix stream socket, sends its message,
// reads the answer with ONE socket_read() of at most --length bytes and echoes it. Test peer for
// our stream-reader (the server), which must already be listening.
//   php stream-uds-client.php --socket /tmp/ipc-socket.sock [--message TEXT | --message-file F]

require __DIR__ . '/common.php';

$opts = options([
    'socket' => '/tmp/ipc-socket.sock',
    'message' => 'Hello from Client: TCP/UDS [Stream]',
    'message-file' => null,
    'length' => '1024',
    'timeout' => '10',
]);
$deadline = deadline($opts);
$socketPath = $opts['socket'];
$message = message($opts);

$socket = socket_create(AF_UNIX, SOCK_STREAM, 0) or fail('socket_create: ' . socket_error());
bound_socket($socket, $deadline);
socket_connect($socket, $socketPath) or fail("socket_connect $socketPath: " . socket_error($socket));

socket_write_all($opts, $socket, $message, "the server on $socketPath");
$response = socket_read($socket, (int) $opts['length']);
if ($response === false) {
    socket_failed($opts, $socket, "socket_read on $socketPath", "the server's answer on unix://$socketPath");
}
echo $response, "\n";

socket_close($socket);
