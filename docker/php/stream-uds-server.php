<?php
// The blog's "TCP/UDS [Stream]" server for a PHP container whose client (our stream-writer)
// runs as another user: tests/php/stream-uds-server.php, except that the socket file is made
// group-writable (umask 0007), since connect(2) needs write permission on it and the Rust
// container shares only our group (docker/compose.php.yaml).
//   php stream-uds-server.php --socket /ipc/ipc-socket.sock [--message TEXT] [--timeout 10]

require __DIR__ . '/common.php';

$opts = options([
    'socket' => '/ipc/ipc-socket.sock',
    'message' => 'Hello from Server: TCP/UDS [Stream]',
    'message-file' => null,
    'length' => '1024',
    'timeout' => '10',
]);
$deadline = deadline($opts);
$socketPath = $opts['socket'];
$response = message($opts);

if (file_exists($socketPath)) {
    unlink($socketPath);
}
// bind(2) creates the socket file with 0777 minus the umask: rw for us and our group, nothing for
// others. PHP has no fchmod for a socket, and a chmod() after bind would leave a window.
umask(0007);
$server = socket_create(AF_UNIX, SOCK_STREAM, 0) or fail('socket_create: ' . socket_error());
socket_bind($server, $socketPath) or fail("socket_bind $socketPath: " . socket_error($server));
register_shutdown_function(fn () => unlink($socketPath));
socket_listen($server) or fail("socket_listen $socketPath: " . socket_error($server));
say("listening on unix://$socketPath");

wait_for_client($opts, $server, $deadline, "unix://$socketPath");
$client = socket_accept($server) or fail("socket_accept on $socketPath: " . socket_error($server));

bound_socket($client, $deadline);
$input = socket_read($client, (int) $opts['length']);
if ($input === false) {
    socket_failed($opts, $client, "socket_read on $socketPath", "the client's message on unix://$socketPath");
}
echo $input, "\n";

socket_write_all($opts, $client, $response, "the client on $socketPath");
socket_close($client);
socket_close($server);
