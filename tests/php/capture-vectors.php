<?php
// Captures, from the real PHP running this script, the bytes our ipc_common::php module must
// reproduce, as JSON fixtures for crates/ipc-common/tests/php_vectors.rs, which checks them
// where PHP is not installed:
//   php tests/php/capture-vectors.php crates/ipc-common/tests/php_vectors
// - values.json: serialize(), echo and json_encode() (default flags, and
//   JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE) of every kind of value: scalars, arrays,
//   objects, enums, shared objects and references; and how deep unserialize() and
//   json_encode() nest;
// - unserialize.json: what unserialize() makes of inputs serialize() never writes;
// - sysvshm.json: the whole segment, byte for byte, after each shm_put_var()/shm_remove_var();
// - mq.json: the mtext msg_send() puts on a queue (read back raw with msg_receive).
// Each value is described exactly, for the Rust test to rebuild: ["null"], ["bool", b],
// ["int", n], ["float", "<IEEE 754 bits, hex>"], ["string", "<hex>"],
// ["array", [[key, value], ...]] with keys ["int", n] or ["string", "<hex>"],
// ["object", "<class hex>", [[key, value], ...]] (property names as PHP mangles them; for a
// class with __serialize, the keys of what it returns), ["custom", "<class hex>", "<payload hex>"]
// (Serializable), ["enum", "<class hex>", "<case hex>"], and ["recursion", up] where a value
// refers back to the array or object `up` levels above it.

declare(strict_types=1);

if ($argc !== 2 || !is_dir($argv[1])) {
    fwrite(STDERR, "usage: php capture-vectors.php OUTPUT_DIR\n");
    exit(2);
}
$out = $argv[1];
// PHP's defaults, set explicitly so a local php.ini cannot change the vectors.
ini_set('precision', '14');
ini_set('serialize_precision', '-1');
ini_set('unserialize_max_depth', '4096');

// Classes for the object vectors: every visibility, __serialize, Serializable, enums.
class Point
{
    public int $x = 1;
    protected string $label = 'p';
    private ?Point $next = null;
    public $extra;
    public function link(Point $next): void
    {
        $this->next = $next;
    }
}
class Tagged
{
    public string $name = 'n';
    public function __serialize(): array
    {
        return ['name' => $this->name, 7 => 'seven'];
    }
    public function __unserialize(array $data): void
    {
        $this->name = $data['name'];
    }
}
class Legacy implements Serializable
{
    public array $data = [1, 'two'];
    public function serialize(): string
    {
        return serialize($this->data);
    }
    public function unserialize(string $data): void
    {
        $this->data = unserialize($data);
    }
}
enum Suit: string
{
    case Hearts = 'H';
    case Spades = 'S';
}
enum Level: int
{
    case Low = 1;
}
enum Pure
{
    case A;
    case B;
}

/**
 * @param list<array{?int, ?int}> $open identities of the arrays (by PHP reference) and objects
 *                                      we are inside, to spot a value that contains itself.
 */
function describe(mixed $value, array $open = [], ?int $refId = null): array
{
    if (is_object($value)) {
        $id = spl_object_id($value);
        foreach ($open as $depth => [$openRef, $openObj]) {
            if ($openObj === $id || ($refId !== null && $openRef === $refId)) {
                return ['recursion', count($open) - $depth];
            }
        }
    } elseif ($refId !== null) {
        foreach ($open as $depth => [$openRef]) {
            if ($openRef === $refId) {
                return ['recursion', count($open) - $depth];
            }
        }
    }
    // Keys as serialize() writes them: an object's property names always as strings (the
    // (array) cast makes "7" an int), an array's or __serialize()'s keys as they are.
    $entries = function (array $items, bool $stringKeys) use ($open, $value, $refId): array {
        $open[] = [$refId, is_object($value) ? spl_object_id($value) : null];
        $described = [];
        foreach ($items as $key => $_) {
            $ref = is_array($value) ? ReflectionReference::fromArrayElement($value, $key) : null;
            $name = is_int($key) && !$stringKeys ? ['int', $key] : ['string', bin2hex((string) $key)];
            $described[] = [$name, describe($items[$key], $open, $ref ? crc32($ref->getId()) : null)];
        }
        return $described;
    };
    return match (true) {
        $value === null => ['null'],
        is_bool($value) => ['bool', $value],
        is_int($value) => ['int', $value],
        is_float($value) => ['float', bin2hex(pack('E', $value))],
        is_string($value) => ['string', bin2hex($value)],
        is_array($value) => ['array', $entries($value, false)],
        $value instanceof UnitEnum => ['enum', bin2hex(get_class($value)), bin2hex($value->name)],
        $value instanceof Serializable => ['custom', bin2hex(get_class($value)), bin2hex($value->serialize())],
        $value instanceof __PHP_Incomplete_Class => (function () use ($value, $entries) {
            $props = (array) $value;
            $class = $props['__PHP_Incomplete_Class_Name'];
            unset($props['__PHP_Incomplete_Class_Name']);
            return ['object', bin2hex($class), $entries($props, true)];
        })(),
        method_exists($value, '__serialize') => ['object', bin2hex(get_class($value)), $entries($value->__serialize(), false)],
        default => ['object', bin2hex(get_class($value)), $entries((array) $value, true)],
    };
}

/** What `echo $value;` prints (for an array, "Array" and a warning we do not need), or the
 * message of the Error it throws. */
function echoed(mixed $value): array
{
    set_error_handler(fn () => true);
    ob_start();
    try {
        echo $value;
        return ['echo' => bin2hex(ob_get_clean())];
    } catch (Throwable $e) {
        ob_end_clean();
        return ['echo' => null, 'echo_error' => $e->getMessage()];
    } finally {
        restore_error_handler();
    }
}

/** json_encode() with default flags and with the unescaped pair: the JSON, or null and why. */
function encoded(mixed $value): array
{
    $json = json_encode($value);
    $result = ['json' => $json === false ? null : $json];
    if ($json === false) {
        $result['json_error'] = json_last_error_msg();
    }
    $unescaped = json_encode($value, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE);
    return $result + ['json_unescaped' => $unescaped === false ? null : $unescaped];
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
    "'a/b/c </script>'",
    "\"\\u{2028} and \\u{2029} end lines in JavaScript\"",
    "\"\\x7f DEL, \\x1f US, \\x08 BS, \\x0c FF, < > & ' \\\\ \\\"\"",
    "\"\\u{1F980} \\u{10FFFF} \\u{FFFF} \\u{E9}\"",
    "\"\\xc3\\x28 invalid UTF-8\"",
    "\"\\xed\\xa0\\x80 a surrogate in UTF-8\"",
    "\"\\xf0\\x9f\\xa6 truncated\"",
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
    "['/' => 'é', \"\\u{2028}\" => [1 => 'not a list']]",
    "['bad' => [1, NAN]]",
    "[\"\\xff\" => 1]",
    // Objects.
    'new stdClass',
    "(object) ['a' => 1, 'b' => [1, 2], 'c' => (object) []]",
    "(object) ['0' => 'zero', '' => 'empty name', 'é/' => 'x']",
    'new Point',
    '(function () { $p = new Point; $p->extra = [1, new Point]; return $p; })()',
    'new Tagged',
    'new Legacy',
    '[new Legacy, new Legacy]',
    'Suit::Hearts',
    'Level::Low',
    'Pure::A',
    "['suit' => Suit::Spades]",
    "['pure' => Pure::B]",
    "[Suit::Hearts, Suit::Hearts, Pure::A, Pure::A]",
    // The same object in several places (r:), PHP references (R:), values that contain themselves.
    '(function () { $o = new stdClass; $o->n = 1; return [$o, $o, [$o]]; })()',
    '(function () { $o = new stdClass; $l = new Legacy; return [$l, $o, $o, $l]; })()',
    '(function () { $a = [1, 2]; $a[2] = &$a[0]; return $a; })()',
    '(function () { $x = "shared"; return ["a" => &$x, "b" => &$x, "c" => $x]; })()',
    // $b = [1]; $b[] = &$b; as serialize($b) writes it (a copy returned from a function would
    // lose the reference, and serialize() would write N; for it).
    "unserialize('a:2:{i:0;i:1;i:1;a:2:{i:0;i:1;i:1;R:3;}}')",
    '(function () { $o = new stdClass; $o->self = $o; return $o; })()',
    '(function () { $t = new stdClass; $t->kids = [new stdClass]; $t->kids[0]->parent = $t; return $t; })()',
    '(function () { $p = new Point; $q = new Point; $p->link($q); $q->link($p); return [$p, $q]; })()',
];
// PHP writes a shared object once and then r:n; we write it again in each place (PHP reads
// both back as equal values).
$shared = [
    '(function () { $o = new stdClass; $o->n = 1; return [$o, $o, [$o]]; })()',
    '(function () { $o = new stdClass; $l = new Legacy; return [$l, $o, $o, $l]; })()',
    '(function () { $a = [1, 2]; $a[2] = &$a[0]; return $a; })()',
    '(function () { $x = "shared"; return ["a" => &$x, "b" => &$x, "c" => $x]; })()',
    '(function () { $p = new Point; $q = new Point; $p->link($q); $q->link($p); return [$p, $q]; })()',
    "[Suit::Hearts, Suit::Hearts, Pure::A, Pure::A]",
];
$values = [];
foreach ($sources as $source) {
    $value = eval("return $source;");
    $serialized = serialize($value);
    $vector = [
        'php' => $source,
        'value' => describe($value),
        'serialized' => bin2hex($serialized),
        'shared' => in_array($source, $shared, true),
    ];
    $values[] = $vector + echoed($value) + encoded($value);
}

// How deep unserialize() reads (arrays with entries and objects count, 4096 of them) and
// json_encode() writes (every array and object counts, 512 of them). Written as prefix × levels
// + leaf + suffix × levels: JSON parsers refuse such nesting in a fixture.
$nestings = [
    ['a:1:{i:0;', 4096, 'i:1;', '}'],
    ['a:1:{i:0;', 4097, 'i:1;', '}'],
    ['a:1:{i:0;', 4096, 'a:0:{}', '}'],
    ['a:1:{i:0;', 4096, 'O:8:"stdClass":0:{}', '}'],
    ['a:1:{i:0;', 4095, 'O:8:"stdClass":0:{}', '}'],
    ['O:8:"stdClass":1:{s:1:"a";', 4096, 'N;', '}'],
    ['O:8:"stdClass":1:{s:1:"a";', 4097, 'N;', '}'],
    ['a:1:{i:0;', 512, 'i:1;', '}'],
    ['a:1:{i:0;', 513, 'i:1;', '}'],
    ['a:1:{i:0;', 511, 'a:0:{}', '}'],
    ['a:1:{i:0;', 512, 'a:0:{}', '}'],
    ['O:8:"stdClass":1:{s:1:"a";', 511, 'O:8:"stdClass":0:{}', '}'],
    ['O:8:"stdClass":1:{s:1:"a";', 512, 'O:8:"stdClass":0:{}', '}'],
];
$deep = [];
foreach ($nestings as [$prefix, $levels, $leaf, $suffix]) {
    $bytes = str_repeat($prefix, $levels) . $leaf . str_repeat($suffix, $levels);
    $value = @unserialize($bytes);
    $vector = ['prefix' => $prefix, 'levels' => $levels, 'leaf' => $leaf, 'suffix' => $suffix];
    if ($value === false) {
        $deep[] = $vector + ['unserialized' => false];
        continue;
    }
    serialize($value) === $bytes or exit("serialize() does not give back nesting $levels\n");
    $deep[] = $vector + ['unserialized' => true] + echoed($value) + encoded($value);
}
write_json("$out/values.json", ['php_version' => PHP_VERSION, 'values' => $values, 'nesting' => $deep]);

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
    // Objects, enums and Serializable payloads.
    'O:8:"stdClass":0:{}', 'O:8:"stdClass":1:{i:5;i:1;}', 'O:8:"stdClass":1:{s:1:"7";i:1;}',
    'O:8:"stdClass":2:{s:1:"a";i:1;s:1:"a";i:2;}', 'O:8:"stdClass":+1:{s:1:"a";i:1;}',
    'O:8:"stdClass":-1:{}', 'O:8:"stdClass":1:{s:1:"a";i:1;', 'O:8:"stdClass":1:{N;i:1;}',
    'O:0:"":0:{}', 'O:3:"a-b":0:{}', 'O:1:"1":0:{}', 'O:4:"\\Foo":0:{}', 'O:7:"App\\Foo":0:{}',
    'O:7:"Unknown":1:{s:1:"a";i:1;}', "O:7:\"Unknown\":1:{s:4:\"\0*\0p\";i:1;}",
    'O:9:"stdClass":0:{}', 'O:8:"stdClass":0:{', 'O:8:"stdClass"', 'o:8:"stdClass":0:{}',
    'E:11:"Suit:Hearts";', 'E:6:"Pure:A";', 'E:4:"Pure";', 'E:5:"Pure:";', 'E:6:"Pure:A"',
    'E:11:"Suit:Hearts"x', 'E:7:"1Pure:A";',
    'C:6:"Legacy":18:{a:1:{i:0;s:1:"x";}}', 'C:6:"Legacy":5:{abc}', 'C:6:"Legacy":-1:{}',
    'C:6:"Legacy":1:{N;', 'C:7:"Unknown":3:{abc}',
    // References.
    'a:1:{i:0;R:1;}', 'a:1:{i:0;r:1;}', 'a:1:{i:0;R:0;}', 'a:1:{i:0;R:2;}', 'a:2:{i:0;i:1;i:1;R:2;}',
    'a:2:{i:0;i:1;i:1;r:2;}', 'a:2:{i:0;a:0:{}i:1;r:2;}', 'a:2:{i:0;O:8:"stdClass":0:{}i:1;r:2;}',
    'a:2:{i:0;O:8:"stdClass":0:{}i:1;R:2;}', 'a:3:{i:0;i:1;i:0;i:5;i:1;R:2;}', 'a:2:{i:0;i:1;i:0;R:2;}',
    'O:8:"stdClass":1:{s:1:"a";R:1;}', 'O:8:"stdClass":1:{s:1:"a";r:1;}',
    'a:2:{i:0;E:6:"Pure:A";i:1;r:2;}', 'a:2:{i:0;C:6:"Legacy":18:{a:1:{i:0;s:1:"x";}}i:1;r:4;}',
    'a:2:{i:0;C:6:"Legacy":18:{a:1:{i:0;s:1:"x";}}i:1;r:2;}', 'a:2:{i:0;i:1;i:1;R:+2;}',
    'a:2:{i:0;i:1;i:1;R:02;}', 'a:2:{i:0;i:1;i:1;R:2}',
];
$unserialized = [];
foreach ($odd as $input) {
    try {
        $value = @unserialize($input);
    } catch (Throwable $e) {
        $value = false;
    }
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
