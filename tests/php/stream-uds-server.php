<?php
// The blog's "TCP/UDS [Stream]" server: accepts one client on a Unix stream socket, reads its
// message with ONE socket_read() of at most --length bytes, echoes it, answers with its own
// message and closes. Test peer for our stream-writer (the client).
//   php stream-uds-server.php --socket /tmp/ipc-socket.sock [--message TEXT | --message-file F]

require __DIR__ . '/common.php';

$opts = options([
    'socket' => '/tmp/ipc-socket.sock',
    'message' => 'Hello from Server: TCP/UDS [Stream]',
    'message-file' => null,
    'length' => '1024',
    'umask' => null,
    'timeout' => '10',
]);
$deadline = deadline($opts);
$socketPath = $opts['socket'];
$response = message($opts);

if (file_exists($socketPath)) {
    unlink($socketPath);
}
$server = socket_create(AF_UNIX, SOCK_STREAM, 0) or fail('socket_create: ' . socket_error());
// bind(2) creates the socket file with 0777 minus the umask; the docker demo's PHP container
// passes --umask 0007 so that our client, another user in its group, may connect (PHP has no
// fchmod for a socket, and a chmod() after bind would leave a window).
if ($opts['umask'] !== null) {
    umask(octdec($opts['umask']));
}
socket_bind($server, $socketPath) or fail("socket_bind $socketPath: " . socket_error($server));
// Unlike the blog, remove the socket file when done, whichever way the run ends.
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
