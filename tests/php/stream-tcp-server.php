<?php
// The blog's "TCP/IP [Stream]" server: accepts one TCP client, reads its message with ONE
// socket_read() of at most --length bytes, echoes it, answers with its own message and closes.
// Test peer for our stream-writer (the client).
//   php stream-tcp-server.php --host 127.0.0.1 --port 9999 [--message TEXT | --message-file F]
// --port 0 lets the kernel choose; the "listening on" line says which port it chose.

require __DIR__ . '/common.php';

$opts = options([
    'host' => '127.0.0.1',
    'port' => '9999',
    'message' => 'Hello from Server: TCP/IP [Stream]',
    'message-file' => null,
    'length' => '1024',
    'timeout' => '10',
]);
$deadline = deadline($opts);
$response = message($opts);

$server = socket_create(AF_INET, SOCK_STREAM, SOL_TCP) or fail('socket_create: ' . socket_error());
socket_set_option($server, SOL_SOCKET, SO_REUSEADDR, 1);
socket_bind($server, $opts['host'], (int) $opts['port'])
    or fail("socket_bind {$opts['host']}:{$opts['port']}: " . socket_error($server));
socket_listen($server) or fail('socket_listen: ' . socket_error($server));
socket_getsockname($server, $host, $port);
say("listening on tcp://$host:$port");

wait_for_client($opts, $server, $deadline, "tcp://$host:$port");
$client = socket_accept($server) or fail("socket_accept on $host:$port: " . socket_error($server));

bound_socket($client, $deadline);
$input = socket_read($client, (int) $opts['length']);
if ($input === false) {
    socket_failed($opts, $client, "socket_read on $host:$port", "the client's message on tcp://$host:$port");
}
echo $input, "\n";

socket_write_all($opts, $client, $response, "the client on $host:$port");
socket_close($client);
socket_close($server);
