<?php
// The blog's shared-memory writer (shmop): opens or creates the raw segment keyed on
// ftok(key file, 'T') and writes the message's bytes at offset 0. No header, no length: a
// reader sees the message followed by whatever the segment held (zeros when new). The segment
// stays for the reader. Test peer for our `shm-reader --api shmop`.
//   php shmop-writer.php --key-file /tmp/ipc-shared-memory [--size 1024]
//       [--message TEXT | --message-file F]

require __DIR__ . '/common.php';

$opts = options([
    'key-file' => '/tmp/ipc-shared-memory',
    'size' => '1024',
    'message' => 'Hello from Writer: Shared Memory',
    'message-file' => null,
]);
$message = message($opts);

$key = ftok(ensure_key_file($opts), 'T');
// "c": create, or open if it exists; 0600 rather than the blog's 0644.
$shm = shmop_open($key, 'c', 0600, (int) $opts['size'])
    or fail('shmop_open segment ' . show_key($key) . ': ' . error_get_last()['message']);
// shmop_write() silently stops at the end of the segment: say so instead.
$written = shmop_write($shm, $message, 0);
if ($written !== strlen($message)) {
    fail("shmop_write: only $written of " . strlen($message) . ' bytes fit in segment ' . show_key($key));
}
