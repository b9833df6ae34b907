<?php
// The blog's "UDP/UDS [Datagram]" listener: binds a Unix datagram socket, receives one datagram
// and echoes it. Test peer for our dgram-writer.
//   php dgram-uds-listener.php --socket /tmp/ipc-socket.sock [--length 1024] [--timeout 10]
// socket_recvfrom() silently truncates a datagram longer than --length: pass a bigger one to
// receive bigger messages.
// --reply TEXT answers the sender at the path socket_recvfrom() reported (empty: the sender never
// bound its socket, and cannot be answered).

require __DIR__ . '/common.php';

$opts = options(['socket' => '/tmp/ipc-socket.sock', 'length' => '1024', 'timeout' => '10', 'reply' => null]);
$deadline = deadline($opts);
$socketPath = $opts['socket'];

// A socket file left by an earlier run makes bind fail with EADDRINUSE.
if (file_exists($socketPath)) {
    unlink($socketPath);
}
$socket = socket_create(AF_UNIX, SOCK_DGRAM, 0) or fail('socket_create: ' . socket_error());
socket_bind($socket, $socketPath) or fail("socket_bind $socketPath: " . socket_error($socket));
// Unlike the blog, remove the socket file when done, whichever way the run ends.
register_shutdown_function(fn () => unlink($socketPath));
say("listening on udg://$socketPath");

bound_socket($socket, $deadline);
$received = socket_recvfrom($socket, $message, (int) $opts['length'], 0, $from);
if ($received === false) {
    socket_failed($opts, $socket, "socket_recvfrom on $socketPath", "a datagram on udg://$socketPath");
}
echo $message, "\n";
if ($opts['reply'] !== null) {
    if ($from === '') {
        fail('the sender has no address (it never bound its socket): it cannot be answered');
    }
    $sent = socket_sendto($socket, $opts['reply'], strlen($opts['reply']), 0, $from);
    if ($sent !== strlen($opts['reply'])) {
        fail("socket_sendto (the reply) $from: " . ($sent === false ? socket_error($socket) : "sent $sent bytes"));
    }
}

socket_close($socket);
