<?php
// Binds a TCP socket the way the blog's PHP server does, WITHOUT SO_REUSEADDR, and exits 0 if
// the port is free, 1 (saying why) if not: a connection's TIME_WAIT left on the port by our
// server would make it fail with "Address already in use".
//   php tcp-bind-no-reuseaddr.php --host 127.0.0.1 --port N

require __DIR__ . '/common.php';

$opts = options(['host' => '127.0.0.1', 'port' => '9999', 'timeout' => '10']);
$server = socket_create(AF_INET, SOCK_STREAM, SOL_TCP) or fail('socket_create: ' . socket_error());
if (!@socket_bind($server, $opts['host'], (int) $opts['port'])) {
    fail("socket_bind {$opts['host']}:{$opts['port']}: " . socket_error($server));
}
say("bound tcp://{$opts['host']}:{$opts['port']} without SO_REUSEADDR");
socket_close($server);
