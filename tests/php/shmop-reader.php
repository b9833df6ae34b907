<?php
// The blog's shared-memory reader (shmop): attaches the raw segment keyed on ftok(key file,
// 'T') once it exists, reads it whole (or its first --length bytes), echoes the bytes as they
// are, trailing NULs included, and deletes the segment. Test peer for our
// `shm-writer --api shmop`. Start it after the writer: a raw segment cannot tell "not yet
// written" from "written", so the reader reads as soon as the segment exists.
//   php shmop-reader.php --key-file /tmp/ipc-shared-memory [--length N] [--timeout 10]

require __DIR__ . '/common.php';

$opts = options(['key-file' => '/tmp/ipc-shared-memory', 'length' => null, 'timeout' => '10']);
$deadline = deadline($opts);

$key = ftok(wait_for_key_file($opts, $deadline), 'T');
say('waiting for segment ' . show_key($key));
// "a": attach read-only; it fails (with a warning) until the writer has created the segment.
$shm = wait_until($opts, $deadline, 'segment ' . show_key($key), fn () => @shmop_open($key, 'a', 0, 0) ?: null);
$data = shmop_read($shm, 0, $opts['length'] === null ? shmop_size($shm) : (int) $opts['length']);
echo $data, "\n";

shmop_delete($shm);
