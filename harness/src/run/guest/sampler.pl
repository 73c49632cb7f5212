#!/usr/bin/perl
# faultline sampler: the guest's own figures once a second, written as lines to a file, with
# no agent round trip per sample. Only perl-base modules: images need nothing extra.
#   sampler.pl OUT STOP_FILE INTERVAL MAX_SECONDS MAX_BYTES
# Runs until STOP_FILE exists or MAX_SECONDS have passed; stops writing samples past MAX_BYTES.
#
# Output (parsed by the harness, metrics::sampler):
#   faultline-sampler 1 clk_tck=100 ncpu=1 interval=1
#   limit procs.imap-login 100                     (Dovecot's process limits, whenever read)
#   s WALL key=value key+=value ...                 (one sample; `+=` marks a cumulative counter)
#   end WALL ticks=N age=S                          (the sampler's own CPU ticks over its age)
# WALL is wall-clock seconds, to the hundredth: time() at a second boundary, carried on by
# /proc/uptime (perl-base has no sub-second clock). A figure that cannot be read is left out
# of the line, never written as 0.
# Startup is kept small (no POSIX, no warnings: compiling modules costs CPU under TCG).
use strict;

$| = 1;
my ($out, $stop, $interval, $max_secs, $max_bytes) = @ARGV;
die "usage: sampler.pl OUT STOP_FILE INTERVAL MAX_SECONDS MAX_BYTES\n" unless defined $max_bytes;

# A whole (small) file with plain system calls: no PerlIO layers, since every sample reads
# many /proc files and each call is dear under TCG.
sub slurp {
    sysopen(my $f, $_[0], 0) or return undef;
    my $t = '';
    while (sysread($f, $t, 65536, length $t)) { }
    close $f;
    return $t;
}

sub uptime {
    my $u = slurp('/proc/uptime');
    return defined $u ? (split ' ', $u)[0] : undef;
}

# Clock ticks a second: the kernel's AT_CLKTCK (17) in the auxiliary vector, else Linux's 100.
my $clk = 100;
{
    my %aux = unpack('Q*', slurp('/proc/self/auxv') // '');
    $clk = $aux{17} if $aux{17};
}

# Wall time pinned to uptime (below): wall = base + (uptime - up0).
my ($base, $up0) = (time(), uptime() // 0);
sub wall { my $u = uptime(); return defined $u ? $base + ($u - $up0) : time() }

open(my $fh, '>', $out) or die "open $out: $!\n";
my $fh_old = select($fh);
$| = 1;
select($fh_old);
my $written = 0;
sub put {
    my ($line) = @_;
    return if $written > $max_bytes;
    $written += length($line) + 1;
    print $fh ($written > $max_bytes ? "capped at $max_bytes bytes\n" : "$line\n");
}

my $stat = slurp('/proc/stat') // '';
my $ncpu = () = $stat =~ /^cpu\d+ /mg;
put("faultline-sampler 1 clk_tck=$clk ncpu=" . ($ncpu || 1) . " interval=$interval");

# Whole disks: /sys/block lists them (partitions are below them), less the pseudo ones.
my %disk;
if (opendir(my $d, '/sys/block')) {
    $disk{$_} = 1 for grep { !/^(\.|loop|ram|zram|sr|fd)/ } readdir($d);
    closedir $d;
}

my @dovecot = qw(imap imap-login pop3 pop3-login auth);
my %dovecot = map { $_ => 1 } @dovecot;
my $doveconf = (grep { -x $_ } map { "$_/doveconf" } qw(/usr/bin /usr/sbin /usr/local/bin /usr/local/sbin))[0];
my $master_seen = '';
my $limits_due = 0;
my %name_of;

# Dovecot's process limits, from its whole configuration (one process start): a service's
# own process_limit, or default_process_limit when it has none (0).
sub read_limits {
    open(my $p, '-|', "$doveconf 2>/dev/null") or return;
    my ($default, $service, %limit) = (100, undef);
    while (my $l = <$p>) {
        if ($l =~ /^default_process_limit\s*=\s*(\d+)/) { $default = $1 }
        elsif ($l =~ /^service\s+(\S+)\s*\{/) { $service = $1 }
        elsif ($l =~ /^\}/) { $service = undef }
        elsif (defined $service && $l =~ /^\s+process_limit\s*=\s*(\d+)/) { $limit{$service} = $1 }
    }
    close $p;
    for my $s (@dovecot) {
        next unless exists $limit{$s};
        put("limit procs.$s " . ($limit{$s} || $default));
    }
}

sub comm {
    my $c = slurp("/proc/$_[0]/comm");
    return undef unless defined $c;
    chomp $c;
    return $c;
}

# Kernel threads are children of kthreadd (pid 2); a full /proc scan where the kernel does
# not list children.
sub children {
    my ($pid) = @_;
    my $c = slurp("/proc/$pid/task/$pid/children");
    return split(' ', $c) if defined $c;
    opendir(my $d, '/proc') or return ();
    my @all = grep { /^\d+$/ } readdir($d);
    closedir $d;
    return @all;
}

my $lockd;
my $lockd_looked = -1e9;
sub find_lockd {
    return $lockd if defined $lockd && (comm($lockd) // '') eq 'lockd';
    $lockd = undef;
    my $now = uptime() // 0;
    return undef if $now - $lockd_looked < 10;
    $lockd_looked = $now;
    for my $p (children(2)) {
        if ((comm($p) // '') eq 'lockd') { $lockd = $p; last }
    }
    return $lockd;
}

# A process's stat fields after its command: state is [0], so field N of proc(5) is [N - 3].
sub stat_fields {
    my $s = slurp("/proc/$_[0]/stat") // return ();
    $s =~ s/^.*\) //s;
    return split ' ', $s;
}

# utime + stime (+ the children's, with `$kids`) of a process, in clock ticks.
sub ticks {
    my ($pid, $kids) = @_;
    my @f = stat_fields($pid);
    return undef unless @f > 20;
    my $t = $f[11] + $f[12];
    $t += $f[13] + $f[14] if $kids;
    return $t;
}

sub sample {
    my @kv;
    if (defined(my $l = slurp('/proc/loadavg'))) {
        my @f = split ' ', $l;
        push @kv, "load1=$f[0]";
        push @kv, "tasks=$1" if $f[3] =~ m{/(\d+)};
    }
    if (defined(my $s = slurp('/proc/stat'))) {
        if ($s =~ /^cpu\s+(.*)$/m) {
            my @c = split ' ', $1;
            my $total = 0;
            $total += $c[$_] // 0 for 0 .. 7;
            push @kv, 'cpu.busy+=' . ($total - $c[3]), "cpu.iowait+=$c[4]", "cpu.total+=$total";
        }
        push @kv, "running=$1" if $s =~ /^procs_running (\d+)/m;
        push @kv, "blocked=$1" if $s =~ /^procs_blocked (\d+)/m;
    }
    if (defined(my $m = slurp('/proc/meminfo'))) {
        push @kv, sprintf('mem.available=%.1f', $1 / 1024) if $m =~ /^MemAvailable:\s+(\d+)/m;
    }
    if ($doveconf) {
        my $master = slurp('/run/dovecot/master.pid');
        if (defined $master && $master =~ /(\d+)/ && -d "/proc/$1") {
            my $m = $1;
            if ($m ne $master_seen) {
                # Dovecot (re)started: its limits may have changed with it.
                $master_seen = $m;
                $limits_due = 1;
            }
            my %n = map { $_ => 0 } @dovecot;
            my %now;
            for my $p (children($m)) {
                # A child's name is read once: after its exec it does not change (a child
                # still named dovecot has not exec'd yet and is read again).
                my $c = $name_of{$p} // comm($p) // next;
                $now{$p} = $c if $c ne 'dovecot';
                $n{$c}++ if $dovecot{$c};
            }
            %name_of = %now;
            push @kv, "procs.$_=$n{$_}" for @dovecot;
        }
    }
    if (defined(my $r = slurp('/proc/net/rpc/nfs'))) {
        push @kv, "nfs.calls+=$1", "nfs.retrans+=$2" if $r =~ /^rpc (\d+) (\d+)/m;
    }
    if (defined(my $r = slurp('/proc/net/rpc/nfsd'))) {
        push @kv, "nfsd.calls+=$1", "nfsd.badcalls+=$2" if $r =~ /^rpc (\d+) (\d+)/m;
    }
    if (defined(my $l = slurp('/proc/locks'))) {
        push @kv, 'locks=' . ($l =~ tr/\n//);
    }
    if (defined(my $g = slurp('/proc/fs/lockd/nlm_end_grace'))) {
        # lockd answers N while its grace period still runs.
        push @kv, 'lockd.grace=' . ($g =~ /^N/ ? 1 : 0);
    }
    if (defined(my $p = find_lockd())) {
        my $t = ticks($p, 0);
        push @kv, "lockd.ticks+=$t" if defined $t;
    }
    if (defined(my $d = slurp('/proc/diskstats'))) {
        for (split /\n/, $d) {
            my @f = split ' ';
            next unless @f >= 12 && $disk{$f[2]};
            push @kv, "disk.$f[2].reads+=$f[3]", "disk.$f[2].writes+=$f[7]", "disk.$f[2].inflight=$f[11]";
        }
    }
    my $self = ticks($$, 1);
    push @kv, "sampler.ticks+=$self" if defined $self;
    return (uptime(), @kv);
}

# A sample's line: its time from the uptime it was taken at; then the limits, when Dovecot
# (re)started (one process start, after the sample rather than delaying it).
sub line {
    my ($up, @kv) = @_;
    my $wall = defined $up ? $base + ($up - $up0) : time();
    put(sprintf('s %.2f %s', $wall, join(' ', @kv)));
    if ($limits_due) {
        $limits_due = 0;
        read_limits();
    }
}

# The first sample is taken at once; its line waits until the clock is pinned: poll time()
# until it ticks over (at most about a second; perl-base has no sub-second clock), and take
# uptime then.
my $start = uptime() // 0;
my @first = sample();
{
    my $t = time();
    for (1 .. 120) {
        select(undef, undef, undef, 0.01);
        last if time() != $t;
    }
    ($base, $up0) = (time(), uptime() // 0);
}
line(@first);
my $k = 0;
while (1) {
    last if -e $stop;
    my $now = uptime() // last;
    last if $now - $start >= $max_secs;
    $k++;
    my $next = $start + $k * $interval;
    # Behind (a stalled guest): skip to the next slot rather than sampling in a burst.
    if ($next <= $now) {
        $k = int(($now - $start) / $interval) + 1;
        $next = $start + $k * $interval;
    }
    select(undef, undef, undef, $next - $now);
    last if -e $stop;
    line(sample());
}
# Age: uptime less the start time (field 22, ticks after boot).
my $age = (uptime() // 0) - ((stat_fields($$))[19] // 0) / $clk;
put(sprintf('end %.2f ticks=%d age=%.2f', wall(), ticks($$, 1) // 0, $age));
close $fh;
