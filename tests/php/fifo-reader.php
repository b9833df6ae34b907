<?php
// The blog's named-pipe reader: opens the FIFO, reads until the writer closes it (or --length
// bytes, the blog's fread($pipe, 1024)) and echoes what it read. Test peer for our fifo-writer.
//   php fifo-reader.php --path /tmp/ipc-named-pipe [--length 1024] [--timeout 10]
// Creates the FIFO if it is missing, and then removes it when done.

require __DIR__ . '/common.php';

$opts = options(['path' => '/tmp/ipc-named-pipe', 'length' => '1024', 'timeout' => '10']);
$deadline = deadline($opts);
$pipePath = $opts['path'];
$length = (int) $opts['length'];

if (!file_exists($pipePath)) {
    posix_mkfifo($pipePath, 0600) or fail("posix_mkfifo $pipePath: " . posix_strerror(posix_get_last_error()));
    register_shutdown_function(fn () => unlink($pipePath));
} elseif (filetype($pipePath) !== 'fifo') {
    fail("$pipePath is a " . filetype($pipePath) . ', not a FIFO');
}

// The blog's fopen($pipePath, 'r') blocks until a writer opens the FIFO, with no way to time
// out; 'n' opens it O_NONBLOCK, and stream_select() does the waiting.
$pipe = fopen($pipePath, 'rn') or fail("fopen $pipePath: " . error_get_last()['message']);
say("waiting for a writer on $pipePath");

$message = '';
while (strlen($message) < $length && !feof($pipe)) {
    wait_stream($opts, $deadline, $pipe, false, "a writer to finish on $pipePath");
    $chunk = fread($pipe, $length - strlen($message));
    if ($chunk === false) {
        fail("fread $pipePath: " . error_get_last()['message']);
    }
    $message .= $chunk;
}
echo $message, "\n";

fclose($pipe);
