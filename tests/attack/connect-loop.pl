#!/usr/bin/perl
# Attacker for the contract tests, run as another user (nobody): for SECONDS, connects to the
# Unix socket at PATH as fast as it can and sends "ATTACK" (stream: after connecting), then prints
# how many attempts got in. A reader that binds with --mode 0600 must let none in, also in the
# moment between bind(2) and chmod(2) that an older version had.
#   perl connect-loop.pl dgram|stream PATH SECONDS
use strict;
use warnings;
use Socket;

my ($kind, $path, $seconds) = @ARGV;
die "usage: connect-loop.pl dgram|stream PATH SECONDS\n" unless defined $seconds;
my $type = $kind eq 'stream' ? SOCK_STREAM : SOCK_DGRAM;
my $addr = pack_sockaddr_un($path);
my ($in, $tries) = (0, 0);
my $end = time + $seconds;
$| = 1;
print STDERR "attacking\n";
while (time < $end) {
    socket(my $s, AF_UNIX, $type, 0) or die "socket: $!\n";
    $tries++;
    if (connect($s, $addr) && defined send($s, "ATTACK", 0)) {
        $in++;
    }
    close $s;
}
print "$in of $tries got in\n";
