<?php
// Bookkeeping shared by the PHP test peers: options, the message, deadlines, failing loudly.
// The IPC calls themselves stay in each peer, in plain sight, as in the blog.
//
// Conventions every peer follows, so the Rust tests can drive them like our own binaries:
// - stdout carries only the received payload and one "\n"; everything else goes to stderr;
// - every wait is bounded by --timeout SECS (0 = forever); giving up exits 124 naming what we
//   waited for; any other failure exits 1 with one line "error: ...";
// - a reader says "listening on URL" or "waiting for ..." on stderr once it is ready.

declare(strict_types=1);

const EXIT_FAILURE = 1;
const EXIT_USAGE = 2;
const EXIT_TIMED_OUT = 124;

/** Prints one error line on stderr and exits. */
function fail(string $why, int $code = EXIT_FAILURE): never
{
    fwrite(STDERR, "error: $why\n");
    exit($code);
}

/** A progress line on stderr (stdout is for the payload only). */
function say(string $line): void
{
    fwrite(STDERR, "$line\n");
}

/**
 * Parses `--name value` and `--flag` arguments. `$defaults` lists every option the peer takes:
 * a `false` default makes a flag, anything else an option with a value. Unknown options fail.
 */
function options(array $defaults): array
{
    global $argv;
    $opts = $defaults;
    for ($i = 1; $i < count($argv); $i++) {
        $name = substr($argv[$i], 2);
        if (!str_starts_with($argv[$i], '--') || !array_key_exists($name, $defaults)) {
            fail("unknown argument {$argv[$i]}; options: --" . implode(' --', array_keys($defaults)), EXIT_USAGE);
        }
        if ($defaults[$name] === false) {
            $opts[$name] = true;
        } elseif ($i + 1 < count($argv)) {
            $opts[$name] = $argv[++$i];
        } else {
            fail("{$argv[$i]} needs a value", EXIT_USAGE);
        }
    }
    return $opts;
}

/** The bytes to send: --message-file (binary-safe, `-` = stdin) if given, else --message. */
function message(array $opts): string
{
    $file = $opts['message-file'] ?? null;
    if ($file === null) {
        return $opts['message'];
    }
    $bytes = file_get_contents($file === '-' ? 'php://stdin' : $file);
    return $bytes === false ? fail("cannot read the message from $file") : $bytes;
}

/**
 * The value a SysV writer stores: --int, --float, --bool or --null if given (as our writers take
 * them), else the message string.
 */
function value(array $opts): mixed
{
    if ($opts['null']) {
        return null;
    }
    if ($opts['int'] !== null) {
        $int = filter_var($opts['int'], FILTER_VALIDATE_INT);
        return $int === false ? fail("--int {$opts['int']} is not an integer", EXIT_USAGE) : $int;
    }
    if ($opts['float'] !== null) {
        return match (strtoupper($opts['float'])) {
            'INF' => INF,
            '-INF' => -INF,
            'NAN' => NAN,
            default => is_numeric($opts['float'])
                ? (float) $opts['float']
                : fail("--float {$opts['float']} is not a number", EXIT_USAGE),
        };
    }
    if ($opts['bool'] !== null) {
        $bool = filter_var($opts['bool'], FILTER_VALIDATE_BOOL, FILTER_NULL_ON_FAILURE);
        return $bool ?? fail("--bool {$opts['bool']} is not true or false", EXIT_USAGE);
    }
    return message($opts);
}

/** The moment --timeout runs out (INF for --timeout 0). */
function deadline(array $opts): float
{
    $seconds = (float) $opts['timeout'];
    return $seconds > 0 ? microtime(true) + $seconds : INF;
}

/** Seconds left before `$deadline`, never negative. */
function remaining(float $deadline): float
{
    return max(0.0, $deadline - microtime(true));
}

/** Exits 124 saying what we waited for, as our binaries do. */
function timed_out(array $opts, string $what): never
{
    fail("timed out after {$opts['timeout']}s waiting for $what", EXIT_TIMED_OUT);
}

/**
 * Calls `$ready` until it returns something other than null, backing off from 1 ms to 25 ms
 * between tries (PHP has no way to block on a SysV object with a timeout).
 */
function wait_until(array $opts, float $deadline, string $what, callable $ready): mixed
{
    $pause = 1000;
    while (($result = $ready()) === null) {
        if (remaining($deadline) === 0.0) {
            timed_out($opts, $what);
        }
        usleep((int) min($pause, remaining($deadline) * 1e6));
        $pause = min($pause * 2, 25000);
    }
    return $result;
}

/** Bounds every blocking call on an ext/sockets socket by what is left of the deadline. */
function bound_socket(Socket $socket, float $deadline): void
{
    $left = remaining($deadline);
    if ($left === INF) {
        return;
    }
    // A zero timeval would mean "block forever": keep at least one microsecond.
    $time = ['sec' => (int) $left, 'usec' => max(1, (int) (fmod($left, 1.0) * 1e6))];
    socket_set_option($socket, SOL_SOCKET, SO_RCVTIMEO, $time);
    socket_set_option($socket, SOL_SOCKET, SO_SNDTIMEO, $time);
}

/** Waits until `$server` has a client to accept: socket_accept() cannot time out by itself. */
function wait_for_client(array $opts, Socket $server, float $deadline, string $url): void
{
    $ready = [$server];
    $none = null;
    $left = remaining($deadline);
    $seconds = $left === INF ? null : (int) $left;
    if (socket_select($ready, $none, $none, $seconds, (int) (fmod($left, 1.0) * 1e6)) < 1) {
        timed_out($opts, "a client on $url");
    }
}

/** The last error of `$socket` (or of the last socket call), as text. */
function socket_error(?Socket $socket = null): string
{
    $code = $socket === null ? socket_last_error() : socket_last_error($socket);
    return socket_strerror($code);
}

/**
 * Ends the run after a failed blocking socket call: a receive or send timeout (EAGAIN, from
 * SO_RCVTIMEO/SO_SNDTIMEO) exits 124 naming `$what`, anything else exits 1 naming `$call`.
 */
function socket_failed(array $opts, Socket $socket, string $call, string $what): never
{
    $errno = socket_last_error($socket);
    if ($errno === SOCKET_EAGAIN) {
        timed_out($opts, $what);
    }
    fail("$call: " . socket_strerror($errno));
}

/**
 * socket_write() in a loop: one call may write less than asked. The socket must already be
 * bounded (bound_socket), so a stuck peer ends in a send timeout (exit 124), not a hang.
 */
function socket_write_all(array $opts, Socket $socket, string $bytes, string $peer): void
{
    for ($sent = 0; $sent < strlen($bytes); $sent += $wrote) {
        $wrote = socket_write($socket, substr($bytes, $sent));
        if ($wrote === false) {
            $call = "socket_write to $peer after $sent of " . strlen($bytes) . ' bytes';
            socket_failed($opts, $socket, $call, "$peer to take our message");
        }
    }
}

/** Waits with stream_select() until `$stream` is readable (or, with `$write`, writable). */
function wait_stream(array $opts, float $deadline, $stream, bool $write, string $what): void
{
    $read = $write ? null : [$stream];
    $written = $write ? [$stream] : null;
    $none = null;
    $left = remaining($deadline);
    $seconds = $left === INF ? null : (int) $left;
    if (stream_select($read, $written, $none, $seconds, (int) (fmod($left, 1.0) * 1e6)) < 1) {
        timed_out($opts, $what);
    }
}

/** fwrite() to a non-blocking stream until every byte is out (a FIFO holds only 64 KiB). */
function stream_write_all(array $opts, float $deadline, $stream, string $bytes, string $where): void
{
    for ($sent = 0; $sent < strlen($bytes); $sent += $wrote) {
        wait_stream($opts, $deadline, $stream, true, "room to write to $where");
        $wrote = fwrite($stream, substr($bytes, $sent));
        if ($wrote === false) {
            fail("fwrite to $where after $sent of " . strlen($bytes) . ' bytes: ' . (error_get_last()['message'] ?? 'failed'));
        }
    }
}

/** Waits until a key file exists, since ftok() of a missing file is -1, a key all share. */
function wait_for_key_file(array $opts, float $deadline): string
{
    $file = $opts['key-file'];
    wait_until($opts, $deadline, "key file $file", fn () => file_exists($file) ? true : null);
    return $file;
}

/** Creates the key file if missing (as our writers do) and returns it. */
function ensure_key_file(array $opts): string
{
    $file = $opts['key-file'];
    if (!file_exists($file) && !touch($file)) {
        fail("cannot create key file $file");
    }
    return $file;
}

/** A SysV key as ipcs(1) shows it. */
function show_key(int $key): string
{
    return sprintf('0x%08x', $key & 0xffffffff);
}
