<?php
// The blog's shared-memory writer (sysvshm) for a PHP container whose reader (our shm-reader)
// runs as another user in the same group: tests/php/sysvshm-writer.php without the lock options,
// creating the segment with --mode (default 0660, owner and group) instead of 0600. SysV
// permissions ignore the umask, so the mode given to shm_attach() is exactly the segment's.
//   php sysvshm-writer.php --key-file /ipc/ipc-shm.key [--mode 0660] [--message TEXT]

require __DIR__ . '/common.php';

$opts = options([
    'key-file' => '/ipc/ipc-shm.key',
    'size' => '1024',
    'var' => '1',
    'mode' => '0660',
    'message' => 'Hello from Writer: Shared Memory',
    'message-file' => null,
    'int' => null,
    'float' => null,
    'bool' => null,
    'null' => false,
    'timeout' => '10',
]);
$value = value($opts);

$key = ftok(ensure_key_file($opts), 'T');
$shm = shm_attach($key, (int) $opts['size'], octdec($opts['mode']));
shm_put_var($shm, (int) $opts['var'], $value)
    or fail('shm_put_var into segment ' . show_key($key) . ': ' . error_get_last()['message']);
shm_detach($shm);
