<?php
// The blog's named-pipe writer: creates the FIFO if it is missing, opens it for writing once a
// reader has it open, writes the message and closes it. Test peer for our fifo-reader.
//   php fifo-writer.php --path /tmp/ipc-named-pipe [--message TEXT | --message-file F]

require __DIR__ . '/common.php';

$opts = options([
    'path' => '/tmp/ipc-named-pipe',
    'message' => 'Hello from Sender: Named Pipe',
    'message-file' => null,
    'timeout' => '10',
]);
$deadline = deadline($opts);
$pipePath = $opts['path'];
$message = message($opts);

if (!file_exists($pipePath)) {
    posix_mkfifo($pipePath, 0600) or fail("posix_mkfifo $pipePath: " . posix_strerror(posix_get_last_error()));
    register_shutdown_function(fn () => unlink($pipePath));
} elseif (filetype($pipePath) !== 'fifo') {
    fail("$pipePath is a " . filetype($pipePath) . ', not a FIFO');
}

say("waiting for a reader on $pipePath");
// The blog's fopen($pipePath, 'w') blocks until a reader opens the FIFO, with no way to time
// out; with 'n' (O_NONBLOCK) it fails with ENXIO instead while there is no reader, so we retry.
$pipe = wait_until($opts, $deadline, "a reader on $pipePath", function () use ($pipePath) {
    $pipe = @fopen($pipePath, 'wn');
    $why = error_get_last()['message'] ?? '';
    if ($pipe === false && !str_contains($why, 'No such device or address')) {
        fail("fopen $pipePath: $why");
    }
    return $pipe ?: null;
});
stream_write_all($opts, $deadline, $pipe, $message, $pipePath);

fclose($pipe);
