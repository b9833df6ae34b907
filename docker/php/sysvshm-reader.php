<?php
// The blog's shared-memory reader (sysvshm) for a PHP container whose writer (our shm-writer)
// runs as another user in the same group: tests/php/sysvshm-reader.php, except that a segment it
// creates (when it comes first) gets --mode (default 0660), so the writer may attach it.
//   php sysvshm-reader.php --key-file /ipc/ipc-shm.key [--mode 0660] [--timeout 10]

require __DIR__ . '/common.php';

$opts = options(['key-file' => '/ipc/ipc-shm.key', 'size' => '1024', 'var' => '1', 'mode' => '0660', 'timeout' => '10']);
$deadline = deadline($opts);
$var = (int) $opts['var'];

$key = ftok(wait_for_key_file($opts, $deadline), 'T');
$shm = shm_attach($key, (int) $opts['size'], octdec($opts['mode']));
register_shutdown_function(fn () => shm_remove($shm));
say('waiting for variable ' . $var . ' in segment ' . show_key($key));
wait_until($opts, $deadline, "variable $var in segment " . show_key($key), fn () => shm_has_var($shm, $var) ?: null);
echo shm_get_var($shm, $var), "\n";
