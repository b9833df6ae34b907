<?php
// Captures, from the real PHP running this script, the bytes our ipc_common::php module must
// reproduce, as JSON fixtures for crates/ipc-common/tests/php_vectors.rs, which checks them
// where PHP is not installed:
//   php tests/php/capture-vectors.php crates/ipc-common/tests/php_vectors
// - values.json: serialize(), echo and json_encode() of every kind of value;
// - unserialize.json: what unserialize() makes of inputs serialize() never writes;
// - sysvshm.json: the whole segment, byte for byte, after each shm_put_var()/shm_remove_var();
// - mq.json: the mtext msg_send() puts on a queue (read back raw with msg_receive).
// Each value is described exactly, for the Rust test to rebuild: ["null"], ["bool", b],
// ["int", n], ["float", "<IEEE 754 bits, hex>"], ["string", "<hex>"],
// ["array", [[key, value], ...]] with keys ["int", n] or ["string", "<hex>"].

declare(strict_types=1);

if ($argc !== 2 || !is_dir($argv[1])) {
    fwrite(STDERR, "usage: php capture-vectors.php OUTPUT_DIR\n");
    exit(2);
}
$out = $argv[1];
// PHP's defaults, set explicitly so a local php.ini cannot change the vectors.
ini_set('precision', '14');
ini_set('serialize_precision', '-1');

function describe(mixed $value): array
{
    return match (true) {
        $value === null => ['null'],
        is_bool($value) => ['bool', $value],
        is_int($value) => ['int', $value],
        is_float($value) => ['float', bin2hex(pack('E', $value))],
        is_string($value) => ['string', bin2hex($value)],
        is_array($value) => ['array', array_map(
            fn ($key, $item) => [is_int($key) ? ['int', $key] : ['string', bin2hex($key)], describe($item)],
            array_keys($value),
            array_values($value),
        )],
    };
}

/** What `echo $value;` prints (for an array, "Array" and a warning we do not need). */
function echoed(mixed $value): string
{
    set_error_handler(fn () => true);
    ob_start();
    echo $value;
    restore_error_handler();
    return ob_get_clean();
}

function write_json(string $path, array $data): void
{
    $json = json_encode($data, JSON_PRETTY_PRINT | JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE);
    file_put_contents($path, $json . "\n") or exit("cannot write $path\n");
    fwrite(STDERR, "wrote $path\n");
}

// Every value kind; each entry is PHP source, evaluated here so the fixture shows what it was.
$sources = [
    "''",
    "'Hello from Writer: Shared Memory'",
    "'Hello from Writer: Message Queue'",
    "'Grüße aus Köln, 東京, Привет 🦀'",
    '"\0\x01\x02\xff\xfe binary \0 with NULs \0"',
    "'quotes \" and \\' and ; and }'",
    "'s:3:\"abc\";'",
    "\"line\\nbreak\\ttab\\r\"",
    "'/slash'",
    '0', '1', '-1', '42', '-42', '1234567890123', 'PHP_INT_MAX', 'PHP_INT_MIN',
    '0.1', '1/3', '1e17', '1e-5', '-0.0', 'INF', '-INF', 'NAN', '1e16', '123456789012345678.0',
    '0.0001', '5e-324', '1.7976931348623157e308', '0.0', '1.0', '-1.0', '2.5', '0.1 + 0.2',
    '1e14', '1e15', '12345678901234.0', '100.0', '-1.5e-7', '3.14', '1e21', '0.001',
    'true', 'false', 'null',
    '[]',
    "[1, 2, 3]",
    "['Hello', 42, 0.5, true, null]",
    "['a' => 1, 'b' => [true, null]]",
    "[5 => 'x', 'k' => 2.5, -3 => 'negative key', '7' => 'numeric string key']",
    "['nested' => ['deeper' => ['deepest' => [PHP_INT_MIN, -0.0, \"\\0\"]]], 2 => []]",
];
$values = [];
foreach ($sources as $source) {
    $value = eval("return $source;");
    $json = json_encode($value, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE);
    $values[] = [
        'php' => $source,
        'value' => describe($value),
        'serialized' => bin2hex(serialize($value)),
        'echo' => bin2hex(echoed($value)),
        // null where PHP refuses (INF, NAN, strings that are not UTF-8).
        'json' => $json === false ? null : $json,
    ];
}
write_json("$out/values.json", ['php_version' => PHP_VERSION, 'values' => $values]);

// Inputs PHP's serialize() never writes but unserialize() meets in a segment or queue written by
// hand: what PHP makes of each (null where it refuses).
$odd = [
    'i:+5;', 'i:-0;', 'i:007;', 'i:9223372036854775808;', 'i:-9223372036854775809;', 'i:;', 'i:5',
    'i: 5;', 'd:1e5;', 'd:.5;', 'd:5.;', 'd:-.5E-3;', 'd:1E+400;', 'd:inf;', 'd:-NAN;', 'd:0x10;',
    'd:5;', 'd:+5;', 'd:1e;', 'b:2;', 'b:-1;', 'b:01;', 'N;junk', 'n;', 's:3:"abc";junk', 's:3:"ab";',
    's:3:"abcd";', 's:-1:"";', 's:+3:"abc";', 's:03:"abc";', 's:3:"abc"', "s:3:'abc';",
    'a:1:{i:0;i:1;', 'a:2:{i:0;i:1;}', 'a:1:{i:0;i:1;i:1;i:2;}', 'a:1:{d:0.5;i:1;}',
    'a:1:{b:1;i:1;}', 'a:1:{N;i:1;}', 'a:1:{s:1:"7";i:1;}', 'a:2:{i:0;i:1;i:0;i:2;}', 'a:-1:{}',
    'a:1:{i:0;i:1;};', 'R:1;', '', 'x',
];
$unserialized = [];
foreach ($odd as $input) {
    $value = @unserialize($input);
    $refused = $value === false && $input !== 'b:0;';
    $unserialized[] = ['input' => $input, 'value' => $refused ? null : describe($value)];
}
write_json("$out/unserialize.json", ['php_version' => PHP_VERSION, 'inputs' => $unserialized]);

// SysV objects keyed on a key file of our own, removed before we exit.
$keyFile = tempnam(sys_get_temp_dir(), 'php-vectors-');
$key = ftok($keyFile, 'T');

/** The whole segment as bytes, read through shmop (sysvshm cannot show its raw bytes). */
function segment_bytes(int $key): string
{
    $raw = shmop_open($key, 'a', 0, 0);
    return shmop_read($raw, 0, shmop_size($raw));
}

// Each scenario starts from a fresh 1024-byte segment; every step records the whole image.
$scenarios = [
    'blog' => [['put', 1, "'Hello from Writer: Shared Memory'"]],
    'largest string' => [['put', 1, "str_repeat('x', 943)"]],
    'puts, replaces and removes' => [
        ['put', 1, "'first'"],
        ['put', 2, '42'],
        ['put', 3, "['list', 2.5, ['k' => null]]"],
        ['put', 1, "'first, replaced by a longer value that moves to the end'"],
        ['remove', 2],
        ['put', 4, '0.1'],
        ['put', 2, 'true'],
        ['put', -7, "\"\\0binary\\xff\""],
        ['remove', 3],
        ['put', 1, "''"],
        ['put', PHP_INT_MAX, 'null'],
        ['remove', 4],
    ],
];
$shmScenarios = [];
foreach ($scenarios as $name => $ops) {
    $shm = shm_attach($key, 1024, 0600);
    $steps = [];
    foreach ($ops as $op) {
        if ($op[0] === 'put') {
            $value = eval("return {$op[2]};");
            shm_put_var($shm, $op[1], $value) or exit("shm_put_var failed in $name\n");
            $step = ['op' => 'put', 'key' => $op[1], 'php' => $op[2], 'value' => describe($value)];
        } else {
            shm_remove_var($shm, $op[1]) or exit("shm_remove_var failed in $name\n");
            $step = ['op' => 'remove', 'key' => $op[1]];
        }
        $steps[] = $step + ['segment' => bin2hex(segment_bytes($key))];
    }
    shm_remove($shm);
    shm_detach($shm);
    $shmScenarios[] = ['name' => $name, 'size' => 1024, 'steps' => $steps];
}
write_json("$out/sysvshm.json", ['php_version' => PHP_VERSION, 'scenarios' => $shmScenarios]);

// A queue message's mtext, as msg_send() writes it with serialize on (its default).
$queue = msg_get_queue($key, 0600);
$messages = [];
foreach (["'Hello from Writer: Message Queue'", '42', '2.5', 'false', 'null', "['a' => [1, 'b']]", "\"\\0\\xff\""] as $source) {
    $value = eval("return $source;");
    msg_send($queue, 1, $value, true) or exit("msg_send failed\n");
    msg_receive($queue, 1, $type, 8192, $mtext, false) or exit("msg_receive failed\n");
    $messages[] = ['php' => $source, 'value' => describe($value), 'mtext' => bin2hex($mtext)];
}
msg_remove_queue($queue);
unlink($keyFile);
write_json("$out/mq.json", ['php_version' => PHP_VERSION, 'messages' => $messages]);
