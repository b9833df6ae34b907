<?php
// The blog's shared-memory writer (sysvshm): attaches the segment keyed on ftok(key file, 'T')
// (creating it if missing) and stores the message as PHP variable --var with shm_put_var(),
// which serializes it. The segment stays for the reader. Test peer for our shm-reader.
//   php sysvshm-writer.php --key-file /tmp/ipc-shared-memory [--size 1024] [--var 1]
//       [--message TEXT | --message-file F | --int N | --float X | --bool B | --null]
//       [--lock [--hold-until FILE]] [--timeout 10]
// --lock takes PHP's sysvsem lock (sem_get on the same key) around the put, as our shm binaries
// do; --hold-until keeps holding it until FILE exists, so a test can watch our side wait.

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
    'lock' => false,
    'hold-until' => null,
    'mode' => '0600',
    'timeout' => '10',
]);
$deadline = deadline($opts);
$value = value($opts);

$key = ftok(ensure_key_file($opts), 'T');
if ($opts['lock']) {
    // One holder at a time (max_acquire 1); auto_release lets go if we die holding it.
    $sem = sem_get($key, 1, 0600, true) or fail('sem_get ' . show_key($key));
    // A blocking sem_acquire() cannot time out: try without blocking until the deadline. A busy
    // lock fails quietly; a warning means the set was removed under us (its last user let go
    // between our sem_get's semget and its semop), so get the set again, as our binaries do.
    wait_until($opts, $deadline, 'the lock of ' . show_key($key), function () use (&$sem, $key) {
        error_clear_last();
        if (@sem_acquire($sem, true)) {
            return true;
        }
        if (error_get_last() !== null) {
            $sem = @sem_get($key, 1, 0600, true) ?: $sem;
        }
        return null;
    });
}
// --mode 0600 rather than the blog's 0666: only our own user (the test's) needs the segment;
// the docker demo's PHP container gives 0660 to share it with its group. SysV permissions
// ignore the umask, so this is exactly the segment's mode.
$shm = shm_attach($key, (int) $opts['size'], octdec($opts['mode']));
if ($opts['hold-until'] !== null) {
    say('holding the lock of ' . show_key($key));
    $file = $opts['hold-until'];
    wait_until($opts, $deadline, "$file to exist", fn () => file_exists($file) ?: null);
}
shm_put_var($shm, (int) $opts['var'], $value)
    or fail('shm_put_var into segment ' . show_key($key) . ': ' . error_get_last()['message']);
if ($opts['lock']) {
    sem_release($sem);
}

shm_detach($shm);
