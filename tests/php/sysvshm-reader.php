<?php
// The blog's shared-memory reader (sysvshm): attaches the segment keyed on ftok(key file, 'T'),
// waits until variable --var is there, echoes it (shm_get_var() unserializes it) and removes the
// segment. Test peer for our shm-writer.
//   php sysvshm-reader.php --key-file /tmp/ipc-shared-memory [--size 1024] [--var 1]

require __DIR__ . '/common.php';

$opts = options(['key-file' => '/tmp/ipc-shared-memory', 'size' => '1024', 'var' => '1', 'mode' => '0600', 'timeout' => '10']);
$deadline = deadline($opts);
$var = (int) $opts['var'];

$key = ftok(wait_for_key_file($opts, $deadline), 'T');
// Like the blog, attaching creates the segment when the writer has not yet: whoever comes first
// lays out PHP's header in it.
$shm = shm_attach($key, (int) $opts['size'], octdec($opts['mode']));
// The reader removes the segment, as in the blog; also when it gives up waiting.
register_shutdown_function(fn () => shm_remove($shm));
say('waiting for variable ' . $var . ' in segment ' . show_key($key));
// The writer may not have written yet, and there is no lock to wait on: look until it has.
wait_until($opts, $deadline, "variable $var in segment " . show_key($key), fn () => shm_has_var($shm, $var) ?: null);
$value = shm_get_var($shm, $var);
echo $value, "\n";
