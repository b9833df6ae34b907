#!/usr/bin/perl
# Attacker for the contract tests, run as another user (nobody) in a sticky shared directory:
# binds its own datagram socket at THEIRS, then for SECONDS puts it at TARGET and takes it away
# again (link(2), unlink(2)) as fast as it can, hoping a writer checks TARGET while it is
# missing and connects while it is there. Prints how many datagrams it caught.
#   perl swap-loop.pl THEIRS TARGET SECONDS
use strict;
use warnings;
use Socket;

my ($theirs, $target, $seconds) = @ARGV;
die "usage: swap-loop.pl THEIRS TARGET SECONDS\n" unless defined $seconds;
socket(my $s, AF_UNIX, SOCK_DGRAM, 0) or die "socket: $!\n";
bind($s, pack_sockaddr_un($theirs)) or die "bind $theirs: $!\n";
chmod 0666, $theirs;
my ($caught, $swaps) = (0, 0);
my $end = time + $seconds;
$| = 1;
print STDERR "attacking\n";
while (time < $end) {
    $swaps++ if link($theirs, $target);
    unlink $target;
    while (defined recv($s, my $buf, 65536, MSG_DONTWAIT)) {
        $caught++;
    }
}
unlink $theirs;
print "$caught caught in $swaps swaps\n";
