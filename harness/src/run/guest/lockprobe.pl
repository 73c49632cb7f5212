#!/usr/bin/perl
# faultline lock probe: a POSIX (fcntl) write lock on a whole file -- on an NFSv3 mount the
# kernel carries it to the server with NLM. Only perl-base modules: images need nothing extra.
#   lockprobe.pl PATH hold|wait SECONDS READY_FILE
# hold: take the lock (waiting up to 60 s), keep it SECONDS, release it.
# wait: ask for the lock, waiting at most SECONDS; release it as soon as it is granted.
# READY_FILE is created once the lock is held (hold) or asked for (wait). Times are from
# /proc/uptime, so they are the guest's own and monotonic. The last line is
# "faultline-duration SECONDS" (asking to having) when the lock was granted.
use strict;
use warnings;
use Fcntl qw(F_SETLK F_SETLKW F_WRLCK F_UNLCK SEEK_SET O_RDWR O_CREAT);

$| = 1;
my ($path, $mode, $secs, $ready) = @ARGV;
die "usage: lockprobe.pl PATH hold|wait SECONDS READY_FILE\n"
    unless defined $ready && ($mode eq 'hold' || $mode eq 'wait');

sub uptime {
    open(my $u, '<', '/proc/uptime') or return 0;
    my $l = <$u>;
    return (split ' ', $l)[0];
}

sub touch {
    open(my $f, '>', $ready) or die "creating $ready: $!\n";
    close $f;
}

# struct flock on x86_64: short l_type, short l_whence, (pad), off_t l_start, off_t l_len,
# pid_t l_pid, (pad).
sub flock_struct { return pack('s s x4 q q i x4', $_[0], SEEK_SET, 0, 0, 0) }

sysopen(my $fh, $path, O_RDWR | O_CREAT, 0666) or die "open $path: $!\n";
my $limit = $mode eq 'hold' ? 60 : $secs;
my $t0 = uptime();
print "asking for a write lock on $path (pid $$, waiting at most $limit s)\n";
touch() if $mode eq 'wait';
my $ok = eval {
    local $SIG{ALRM} = sub { die "timeout\n" };
    alarm $limit;
    my $r = fcntl($fh, F_SETLKW, flock_struct(F_WRLCK));
    my $err = $!;
    alarm 0;
    die "fcntl: $err\n" unless $r;
    1;
};
my $t1 = uptime();
my $took = sprintf('%.2f', $t1 - $t0);
unless ($ok) {
    my $why = $@ || 'unknown';
    chomp $why;
    print "not granted after $took s: $why\n";
    exit 1;
}
print "granted after $took s\n";
if ($mode eq 'hold') {
    touch();
    select(undef, undef, undef, $secs);
}
fcntl($fh, F_SETLK, flock_struct(F_UNLCK)) or print "unlock failed: $!\n";
close $fh;
printf "released after %.2f s\n", uptime() - $t0;
print "faultline-duration $took\n";
exit 0;
