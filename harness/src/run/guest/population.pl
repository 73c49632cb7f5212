#!/usr/bin/perl
# faultline client population: many simulated mail users on one guest, each behaving like a
# mail client (connect, log in, its commands, log out), with a client-side attempt timeout and
# retries after a back-off. Only perl-base modules.
#
#   population.pl imap|pop3 HOST PORT READY_FILE [OPTIONS] -- [COMMAND...]
#     --user U --password P        "%i" becomes the user's number, 1..N
#     --users N                    how many users
#     --workers W                  processes sharing the users (user i goes to worker (i-1) % W)
#     --arrivals-ms T              first attempts spread evenly over T ms (0: all at once)
#     --attempt-timeout-ms T       an attempt not done after T ms is given up
#     --close fin|rst              how a client that gives up disconnects
#     --retry none|fixed|exponential --delay-ms D --max-delay-ms M --jitter 0|1
#     --duration-ms T              no new attempt starts after T ms; open ones run to their end
#     --repeat-after-ms T          a user that succeeded comes back T ms after it logged out
#     --hold-ms T                  after the last answer, stay logged in T ms before logging out
#
# Event-driven: each worker multiplexes its users' non-blocking sockets with select(), so a
# thousand connections cost a few processes, not a thousand. Every line starts with the guest's
# uptime (CLOCK_BOOTTIME, as /proc/uptime):
#   <up> population start users=N workers=W            first line: the client's t = 0
#   <up> attempt USER TRY OUTCOME MS PHASE [REASON]      one per finished attempt
#   <up> open WORKER N CPU_S                             each worker, each second: sockets open, its CPU so far
#   <up> population end attempts=A ok=.. timeout=.. refused=.. error=.. users=N never_ok=U peak_open=P cpu_pct=C wall_s=S
# OUTCOME: ok | timeout | refused (connection refused or closed before the greeting, or the
# server turning the login away for a limit: BYE, NO/-ERR [UNAVAILABLE] etc.) | error.
# PHASE: connect | greeting | login | commandN, where the attempt ended. TRY counts attempts
# since the user's last success (1: a first try). MS: connect start to the last answer, or to
# giving up. cpu_pct: every client process's user+system time over the wall time, in % of one
# CPU. Exit 0 when the population ran to its end, however many attempts failed.
use strict;
use warnings;
use Socket qw(PF_INET SOCK_STREAM IPPROTO_TCP SOL_SOCKET SO_ERROR SO_LINGER inet_aton pack_sockaddr_in);
use IO::Select;
use POSIX qw(floor);
use Fcntl qw(F_GETFL F_SETFL O_NONBLOCK);
use Errno qw(EINPROGRESS EAGAIN EWOULDBLOCK EINTR ECONNREFUSED ECONNRESET);

$| = 1;
$SIG{PIPE} = 'IGNORE';    # a write to a socket the server closed is an error, not our death

my ($proto, $host, $port, $ready, @rest) = @ARGV;
die "usage: population.pl imap|pop3 HOST PORT READY_FILE [OPTIONS] -- [COMMAND...]\n"
    unless defined $ready && ($proto eq 'imap' || $proto eq 'pop3');
my %o = (
    user => 'user%i', password => 'pw%i', users => 1, workers => 4, 'arrivals-ms' => 0,
    'attempt-timeout-ms' => 20000, close => 'fin', retry => 'none', 'delay-ms' => 2000,
    'max-delay-ms' => 30000, jitter => 0, 'duration-ms' => 60000, 'repeat-after-ms' => -1,
    'hold-ms' => 0,
);
while (@rest) {
    my $k = shift @rest;
    last if $k eq '--';
    $k =~ s/^--// && exists $o{$k} or die "unknown option --$k\n";
    $o{$k} = shift @rest;
    defined $o{$k} or die "--$k needs a value\n";
}
my @commands = @rest;
my $users = $o{users};
my $workers = $o{workers} < 1 ? 1 : $o{workers} > $users ? $users : $o{workers};
my $timeout = $o{'attempt-timeout-ms'} / 1000;
my $hold = $o{'hold-ms'} / 1000;
my $repeat = $o{'repeat-after-ms'} < 0 ? undef : $o{'repeat-after-ms'} / 1000;

# The guest's uptime in seconds, finer than /proc/uptime's 10 ms: clock_gettime(BOOTTIME)
# through syscall(2) (x86_64 number 228), since Time::HiRes is not in perl-base.
my $fine = eval { my $ts = "\0" x 16; syscall(228, 7, $ts) == 0 };
sub now {
    if ($fine) {
        my $ts = "\0" x 16;
        syscall(228, 7, $ts);
        my ($s, $ns) = unpack('q q', $ts);
        return $s + $ns / 1e9;
    }
    open(my $u, '<', '/proc/uptime') or return 0;
    return (split ' ', scalar <$u>)[0];
}

my $addr = inet_aton($host) or die "cannot resolve $host\n";
my $peer = pack_sockaddr_in($port, $addr);
my $t_start = now();
my $t_end = $t_start + $o{'duration-ms'} / 1000;
printf "%.3f population start users=%d workers=%d\n", $t_start, $users, $workers;

# ---- the parent: start the workers, pass their lines on, sum up ---------------------------

pipe(my $lines_r, my $lines_w) or die "pipe: $!\n";
my %pid;
for my $w (0 .. $workers - 1) {
    my $p = fork();
    die "fork: $!\n" unless defined $p;
    if ($p == 0) {
        close $lines_r;
        worker($w);
        exit 0;
    }
    $pid{$p} = $w;
}
close $lines_w;
if (open(my $h, '>', $ready)) { close $h }

my (%n, %ok_user, %open_at);
my $sel = IO::Select->new($lines_r);
my $give_up = $t_end + $timeout + 30 + $hold;
my $pending = '';
my $killed = 0;
while (1) {
    if ($sel->can_read(1)) {
        my $got = sysread($lines_r, $pending, 65536, length $pending);
        last unless $got;
        while ($pending =~ s/^([^\n]*)\n//) {
            my $l = $1;
            print "$l\n";
            if ($l =~ /^\S+ attempt (\d+) \d+ (\w+) /) {
                $n{$2}++;
                $ok_user{$1} = 1 if $2 eq 'ok';
            } elsif ($l =~ /^(\d+)\S* open (\d+) (\d+) /) {
                $open_at{$1}{$2} = $3;
            }
        }
    }
    if (!$killed && now() > $give_up) {
        kill 'KILL', keys %pid;
        print sprintf("%.3f population workers still running past the end: killed\n", now());
        $killed = 1;
    }
}
my $failed = $killed;
for (keys %pid) { waitpid($_, 0); $failed = 1 if $? }
# Peak: per second, each worker's last count (carried over seconds it did not report).
my (%cur, $peak);
$peak = 0;
for my $s (sort { $a <=> $b } keys %open_at) {
    $cur{$_} = $open_at{$s}{$_} for keys %{ $open_at{$s} };
    my $sum = 0;
    $sum += $_ for values %cur;
    $peak = $sum if $sum > $peak;
}
my $t_done = now();
my ($u, $s, $cu, $cs) = times;
my $wall = $t_done - $t_start;
my $attempts = 0;
$attempts += $_ for values %n;
printf "%.3f population end attempts=%d ok=%d timeout=%d refused=%d error=%d users=%d never_ok=%d peak_open=%d cpu_pct=%.1f wall_s=%.1f\n",
    $t_done, $attempts, $n{ok} || 0, $n{timeout} || 0, $n{refused} || 0, $n{error} || 0,
    $users, $users - scalar(keys %ok_user), $peak, $wall > 0 ? 100 * ($u + $s + $cu + $cs) / $wall : 0, $wall;
exit($failed ? 1 : 0);

# ---- a worker: its users' connections, multiplexed ----------------------------------------

sub worker {
    my ($w) = @_;
    srand(7919 * ($w + 1));    # jitter differs between workers, and between runs not at all
    my $out = $lines_w;
    # One line per write: the pipe keeps writes under PIPE_BUF whole, so lines never mix.
    my $say = sub { my $l = shift; syswrite($out, $l) };

    my (%user, @due);    # user number → state; [time, user] sorted by time
    for (my $i = $w + 1; $i <= $users; $i += $workers) {
        my $at = $users > 1 ? $t_start + ($i - 1) * $o{'arrivals-ms'} / 1000 / $users : $t_start;
        (my $name = $o{user}) =~ s/%i/$i/g;
        (my $pass = $o{password}) =~ s/%i/$i/g;
        $user{$i} = { name => $name, pass => $pass, try => 0, fails => 0 };
        push @due, [$at, $i];
    }
    @due = sort { $a->[0] <=> $b->[0] } @due;
    my %conn;    # fileno → connection
    my ($rin, $win) = ('', '');
    my $last_tick = -1;

    # Insert [time, …] into a list sorted by time (binary search; splice moves in C).
    my $insert = sub {
        my ($list, $item) = @_;
        my ($lo, $hi) = (0, scalar @$list);
        while ($lo < $hi) {
            my $mid = ($lo + $hi) >> 1;
            if ($list->[$mid][0] <= $item->[0]) { $lo = $mid + 1 } else { $hi = $mid }
        }
        splice(@$list, $lo, 0, $item);
    };
    my $schedule = sub { my ($at, $i) = @_; $insert->(\@due, [$at, $i]) };
    # Every connection has one deadline at a time (its attempt's timeout, the end of a hold,
    # a drain or a logout): a timer [time, connection, generation]. Entering a state makes a
    # new one; the old one, its generation passed, is dropped when it comes up. No pass over
    # every connection is ever needed, which under TCG was the client's main cost.
    my @timers;
    my $arm = sub {
        my ($c, $at) = @_;
        $c->{until} = $at;
        $insert->(\@timers, [$at, $c, ++$c->{gen}]);
    };
    my $backoff = sub {
        my ($fails) = @_;
        my $d = $o{'delay-ms'} / 1000;
        if ($o{retry} eq 'exponential') {
            $d *= 2**($fails - 1) if $fails < 40;
            my $max = $o{'max-delay-ms'} / 1000;
            $d = $max if $d > $max || $fails >= 40;
        }
        # Full jitter: uniform between none and the whole delay.
        return $o{jitter} ? rand($d) : $d;
    };
    my $forget = sub {
        my ($c) = @_;
        my $f = $c->{fd};
        vec($rin, $f, 1) = 0;
        vec($win, $f, 1) = 0;
        delete $conn{$f};
        close $c->{fh};
        # A successful user logged out: it comes back after repeat_after, if at all.
        if ($c->{ok} && defined $repeat) { $schedule->(now() + $repeat, $c->{user}) }
    };
    # The attempt's outcome, once; a failure schedules the retry at once.
    my $record = sub {
        my ($c, $outcome, $reason) = @_;
        return if $c->{recorded}++;
        my $t = now();
        my $u = $user{ $c->{user} };
        $reason = defined $reason ? ' ' . substr(join(' ', split ' ', $reason), 0, 160) : '';
        $say->(sprintf("%.3f attempt %d %d %s %d %s%s\n",
            $t, $c->{user}, $c->{try}, $outcome, 1000 * ($t - $c->{t0}), $c->{phase}, $reason));
        if ($outcome eq 'ok') {
            $c->{ok} = 1;
            ($u->{try}, $u->{fails}) = (0, 0);
        } else {
            $u->{fails}++;
            $schedule->($t + $backoff->($u->{fails}), $c->{user}) unless $o{retry} eq 'none';
        }
    };
    my $send = sub {
        my ($c, $line) = @_;
        $c->{wbuf} .= "$line\r\n";
        my $n = syswrite($c->{fh}, $c->{wbuf});
        if (defined $n) { substr($c->{wbuf}, 0, $n, '') }
        elsif (!($!{EAGAIN} || $!{EWOULDBLOCK} || $!{EINTR})) { return "write: $!" }
        vec($win, $c->{fd}, 1) = length $c->{wbuf} ? 1 : 0;
        return undef;
    };
    # Give up on an attempt: FIN (shutdown, then read and drop what still comes, at most 5 s,
    # so that unread bytes do not turn the close into an RST) or RST (SO_LINGER 0).
    my $hang_up = sub {
        my ($c) = @_;
        # Still connecting: nothing was said, nothing to drain.
        return $forget->($c) if $c->{state} eq 'connecting';
        if ($o{close} eq 'rst') {
            setsockopt($c->{fh}, SOL_SOCKET, SO_LINGER, pack('ii', 1, 0));
            $forget->($c);
            return;
        }
        shutdown($c->{fh}, 1);
        vec($win, $c->{fd}, 1) = 0;
        $c->{state} = 'draining';
        $arm->($c, now() + 5);
    };
    my $logout = sub {
        my ($c) = @_;
        $c->{buf} = '';
        my $err = $send->($c, $proto eq 'imap' ? "a$c->{tag} LOGOUT" : 'QUIT');
        return $forget->($c) if $err;
        $c->{state} = 'logout';
        $arm->($c, now() + 5);
    };
    my $limit_text = qr/\[(?:UNAVAILABLE|LIMIT|SYS\/TEMP|IN-USE)\]|Maximum number of connections|queue full|Internal login failure|try again|Too many/i;

    # The next request of the session: login, the n-th command, or done.
    my $next = sub {
        my ($c) = @_;
        my $k = $c->{step}++;    # 0: login sent next; 1..N commands
        my $err;
        if ($k == 0) {
            $c->{phase} = 'login';
            my $u = $user{ $c->{user} };
            if ($proto eq 'imap') {
                $c->{tag} = 1;
                $err = $send->($c, qq{a1 LOGIN "$u->{name}" "$u->{pass}"});
            } else {
                $c->{pop} = 'user';
                $err = $send->($c, "USER $u->{name}");
            }
        } elsif ($k <= @commands) {
            $c->{phase} = "command$k";
            my $cmd = $commands[$k - 1];
            if ($proto eq 'imap') {
                $c->{tag} = $k + 1;
                $err = $send->($c, "a$c->{tag} $cmd");
            } else {
                my ($verb, @args) = split ' ', $cmd;
                $verb = uc $verb;
                $c->{multi} = $verb eq 'RETR' || $verb eq 'TOP' || $verb eq 'CAPA'
                    || (($verb eq 'LIST' || $verb eq 'UIDL') && !@args);
                $c->{pop} = 'cmd';
                $err = $send->($c, $cmd);
            }
        } else {
            $record->($c, 'ok');
            $c->{tag} = @commands + 2;
            if ($hold > 0 && now() < $t_end) {
                $c->{state} = 'hold';
                my $until = now() + $hold;
                $arm->($c, $until > $t_end ? $t_end : $until);
            } else {
                $logout->($c);
            }
            return;
        }
        if ($err) { $record->($c, 'error', $err); $forget->($c) }
    };
    my $fail = sub {
        my ($c, $outcome, $reason) = @_;
        $record->($c, $outcome, $reason);
        $forget->($c);
    };

    # One line from the server, in an attempt still running.
    my $line = sub {
        my ($c, $l) = @_;
        if ($c->{phase} eq 'greeting') {
            if ($proto eq 'imap' ? $l =~ /^\* OK/ : $l =~ /^\+OK/) { return $next->($c) }
            return $fail->($c, ($l =~ /^(\* BYE|-ERR)/ ? 'refused' : 'error'), "greeting: $l");
        }
        if ($proto eq 'imap') {
            if ($l =~ /^\* BYE/) {
                $c->{bye} = $l;
                return $fail->($c, 'refused', $l) if $c->{phase} eq 'login';
                return;
            }
            return unless $l =~ /^a(\d+) (OK|NO|BAD)\b/ && $1 == $c->{tag};
            return $next->($c) if $2 eq 'OK';
            my $out = $c->{phase} eq 'login' && $l =~ $limit_text ? 'refused' : 'error';
            return $fail->($c, $out, $l);
        }
        # POP3: a multi-line answer runs to ".".
        if ($c->{pop} eq 'body') {
            return unless $l eq '.';
            return $next->($c);
        }
        if ($l =~ /^\+OK/) {
            if ($c->{pop} eq 'user') {
                $c->{pop} = 'pass';
                my $err = $send->($c, "PASS $user{ $c->{user} }{pass}");
                return $err ? $fail->($c, 'error', $err) : undef;
            }
            if ($c->{pop} eq 'cmd' && $c->{multi}) { $c->{pop} = 'body'; return }
            return $next->($c);
        }
        return $fail->($c, ($c->{phase} eq 'login' && $l =~ $limit_text ? 'refused' : 'error'), $l);
    };

    my $start = sub {
        my ($i) = @_;
        my $u = $user{$i};
        $u->{try}++;
        my $c = { user => $i, try => $u->{try}, t0 => now(), phase => 'connect', step => 0,
            buf => '', wbuf => '', skip => 0, state => 'connecting' };
        my $fh;
        # Out of sockets (fds, memory): the client's own failure, recorded like any other.
        return $record->($c, 'error', "socket: $!") unless socket($fh, PF_INET, SOCK_STREAM, IPPROTO_TCP);
        my $flags = fcntl($fh, F_GETFL, 0);
        fcntl($fh, F_SETFL, $flags | O_NONBLOCK);
        $c->{fh} = $fh;
        $c->{fd} = fileno $fh;
        $conn{ $c->{fd} } = $c;
        $arm->($c, $c->{t0} + $timeout);
        if (connect($fh, $peer)) {
            ($c->{state}, $c->{phase}) = ('open', 'greeting');
            vec($rin, $c->{fd}, 1) = 1;
        } elsif ($! == EINPROGRESS) {
            vec($win, $c->{fd}, 1) = 1;
        } else {
            $fail->($c, $! == ECONNREFUSED ? 'refused' : 'error', "connect: $!");
        }
    };

    # A connection's deadline came: time its attempt out, end its hold, drain or logout.
    my $due_now = sub {
        my ($c) = @_;
        if (!$c->{recorded}) {
            $record->($c, 'timeout');
            $hang_up->($c);
        } elsif ($c->{state} eq 'hold') {
            $logout->($c);
        } else {
            $forget->($c);
        }
    };

    while (1) {
        my $now = now();
        if ($now < $t_end) {
            while (@due && $due[0][0] <= $now) { $start->((shift @due)->[1]) }
        } else {
            @due = ();
        }
        while (@timers && $timers[0][0] <= $now) {
            my (undef, $c, $gen) = @{ shift @timers };
            next unless $gen == $c->{gen} && $c->{fh} && ($conn{ $c->{fd} } // 0) == $c;
            $due_now->($c);
        }
        my $soonest = @due ? $due[0][0] : $now + 1;
        $soonest = $timers[0][0] if @timers && $timers[0][0] < $soonest;
        if (floor($now) != $last_tick) {
            $last_tick = floor($now);
            my ($us, $sy) = times;
            $say->(sprintf("%.3f open %d %d %.2f\n", $now, $w, scalar(keys %conn), $us + $sy));
        }
        last if !%conn && (!@due || $now >= $t_end);
        my $wait = $soonest - $now;
        my $to_tick = $last_tick + 1 - $now;
        $wait = $to_tick if $to_tick < $wait;
        $wait = 0 if $wait < 0;
        my ($rout, $wout) = ($rin, $win);
        my $n = select($rout, $wout, undef, $wait);
        next if $n <= 0;
        # Only the descriptors select() marked: their bits found by a regex, at C speed.
        my $bits = unpack('b*', $rout | $wout);
        while ($bits =~ /1/g) {
            my $f = pos($bits) - 1;
            my $c = $conn{$f} or next;
            if (vec($wout, $f, 1)) {
                if ($c->{state} eq 'connecting') {
                    my $e = unpack('i', getsockopt($c->{fh}, SOL_SOCKET, SO_ERROR) // pack('i', 0));
                    if ($e) {
                        local $! = $e;
                        $fail->($c, $e == ECONNREFUSED ? 'refused' : 'error', "connect: $!");
                        next;
                    }
                    ($c->{state}, $c->{phase}) = ('open', 'greeting');
                    vec($win, $f, 1) = 0;
                    vec($rin, $f, 1) = 1;
                } elsif (length $c->{wbuf}) {
                    my $k = syswrite($c->{fh}, $c->{wbuf});
                    substr($c->{wbuf}, 0, $k, '') if defined $k;
                    vec($win, $f, 1) = length $c->{wbuf} ? 1 : 0;
                }
            }
            next unless vec($rout, $f, 1);
            my $got = sysread($c->{fh}, $c->{buf}, 65536, length $c->{buf});
            next if !defined $got && ($!{EAGAIN} || $!{EWOULDBLOCK} || $!{EINTR});
            if (!$got) {
                my $why = defined $got ? 'closed by the server' : "read: $!";
                $why .= " after $c->{bye}" if $c->{bye};
                # Closed or reset before the greeting: turned away (Dovecot closes queued
                # connections unanswered when its login slots stay full).
                $record->($c, $c->{phase} eq 'greeting' ? 'refused' : 'error', $why) unless $c->{recorded};
                $forget->($c);
                next;
            }
            if ($c->{recorded}) {
                # Holding, logging out or draining: only the server's goodbye matters.
                if ($c->{state} eq 'logout'
                    && ($proto eq 'imap' ? $c->{buf} =~ /^a$c->{tag} /m : $c->{buf} =~ /^[+-]/m)) {
                    $forget->($c);
                    next;
                }
                $c->{buf} = '' unless $c->{state} eq 'logout';
                $c->{buf} = substr($c->{buf}, -512) if length $c->{buf} > 4096;
                next;
            }
            # Lines; IMAP literals ({N} at a line's end) are skipped byte-exactly.
            while (!$c->{recorded}) {
                if ($c->{skip}) {
                    my $k = length $c->{buf} < $c->{skip} ? length $c->{buf} : $c->{skip};
                    substr($c->{buf}, 0, $k, '');
                    $c->{skip} -= $k;
                    last if $c->{skip};
                }
                my $nl = index($c->{buf}, "\n");
                last if $nl < 0;
                my $l = substr($c->{buf}, 0, $nl + 1, '');
                $l =~ s/\r?\n\z//;
                $c->{skip} = $1 if $proto eq 'imap' && $l =~ /\{(\d+)\}\z/;
                $line->($c, $l);
                last unless $conn{$f};
            }
            $c->{buf} = '' if $c->{recorded} && $c->{state} ne 'logout';
        }
    }
    my ($us, $sy) = times;
    $say->(sprintf("%.3f open %d 0 %.2f\n", now(), $w, $us + $sy));
}
