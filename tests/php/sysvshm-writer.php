<?php
// The blog's shared-memory writer (sysvshm): attaches the segment keyed on ftok(key file, 'T')
// (creating it if missing) and stores the message as PHP variable --var with shm_put_var(),
// which serializes it. The segment stays for the reader. Test peer for our shm-reader.
//   php sysvshm-writer.php --key-file /tmp/ipc-shared-memory [--size 1024] [--var 1]
//       [--message TEXT | --message-file F | --int N | --float X | --bool B | --null]

require __DIR__ . '/common.php';

$opts = options([
    'key-file' => '/tmp/ipc-shared-memory',
    'size' => '1024',
    'var' => '1',
    'message' => 'Hello from Writer: Shared Memory',
    'message-file' => null,
    'int' => null,
    'float' => null,
    'bool' => null,
    'null' => false,
]);
$value = value($opts);

$key = ftok(ensure_key_file($opts), 'T');
// 0600 rather than the blog's 0666: only our own user (the test's) needs the segment.
$shm = shm_attach($key, (int) $opts['size'], 0600);
shm_put_var($shm, (int) $opts['var'], $value)
    or fail('shm_put_var into segment ' . show_key($key) . ': ' . error_get_last()['message']);

shm_detach($shm);
