<?php
// The blog's "UDP/IP [Datagram]" listener, one of many: "UDP ... supports multicast and
// broadcast which can make transferring a message to multiple clients at the same time more
// effective." Binds the port shared (SO_REUSEADDR, SO_REUSEPORT) so several listeners get every
// datagram, joins --join GROUP (MCAST_JOIN_GROUP) if given, receives one datagram and echoes it.
// Test peer for our dgram-writer to a group or with --broadcast.
//   php dgram-udp-group-listener.php --host 239.255.0.1 --port 9999 --join 239.255.0.1
//   php dgram-udp-group-listener.php --host 0.0.0.0 --port 9999          (broadcast)
// [--interface INDEX] (0: the routed one) [--length 1024] [--timeout 10]

require __DIR__ . '/common.php';

$opts = options([
    'host' => '0.0.0.0',
    'port' => '9999',
    'join' => null,
    'interface' => '0',
    'length' => '1024',
    'timeout' => '10',
]);
$deadline = deadline($opts);
$ipv6 = str_contains($opts['host'], ':');

$socket = socket_create($ipv6 ? AF_INET6 : AF_INET, SOCK_DGRAM, SOL_UDP)
    or fail('socket_create: ' . socket_error());
socket_set_option($socket, SOL_SOCKET, SO_REUSEADDR, 1) or fail('SO_REUSEADDR: ' . socket_error($socket));
socket_set_option($socket, SOL_SOCKET, SO_REUSEPORT, 1) or fail('SO_REUSEPORT: ' . socket_error($socket));
socket_bind($socket, $opts['host'], (int) $opts['port'])
    or fail("socket_bind {$opts['host']}:{$opts['port']}: " . socket_error($socket));
if ($opts['join'] !== null) {
    $level = $ipv6 ? IPPROTO_IPV6 : IPPROTO_IP;
    $group = ['group' => $opts['join'], 'interface' => (int) $opts['interface']];
    socket_set_option($socket, $level, MCAST_JOIN_GROUP, $group)
        or fail("MCAST_JOIN_GROUP {$opts['join']}: " . socket_error($socket));
}
socket_getsockname($socket, $host, $port);
say($ipv6 ? "listening on udp://[$host]:$port" : "listening on udp://$host:$port");

bound_socket($socket, $deadline);
$received = socket_recvfrom($socket, $message, (int) $opts['length'], 0, $fromHost, $fromPort);
if ($received === false) {
    socket_failed($opts, $socket, "socket_recvfrom on $host:$port", "a datagram on udp://$host:$port");
}
echo $message, "\n";

socket_close($socket);
