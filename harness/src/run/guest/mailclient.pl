#!/usr/bin/perl
# faultline mail client: one IMAP or POP3 session, every line it sends and receives printed
# ("C: ..." / "S: ..." after the guest's uptime), for checks to read. Only perl-base modules.
#
#   mailclient.pl imap|pop3 HOST PORT USER PASSWORD READY_FILE TIMEOUT_S [OPTIONS] -- [COMMAND...]
#     --close quit|fin|rst|silent   how the session ends (default quit: LOGOUT / QUIT)
#     --stop-lines N                stop reading after the N-th line answering the last command
#     --stop-ms T                   stop T ms after sending the last command
#     --stop-file PATH              stop once PATH exists (the harness creates it)
#     --hold-ms T                   after the last answer, keep the connection open T ms (less if the server closes it first)
#     --connections N               run N copies of the session at once (one process each)
#
# READY_FILE is created after the login; READY_FILE.N after the N-th command is answered.
# With N connections, connection i prefixes its lines with "#i" (after the uptime on C:/S:
# lines), "%i" in USER and PASSWORD becomes i, and READY_FILE / READY_FILE.N appear once every
# connection has got there or ended; a hold then starts for all of them at once, so all N are
# open together. The last lines sum them up.
# fin: shut the socket down for writing (FIN), read what the server still sends until it closes
# (at most 5 s), then close. rst: SO_LINGER 0, then close (RST). silent: drop every packet
# this socket would still send (nft, by source port), then close: the server hears nothing more.
# The last lines are "faultline-duration S" (the last command: sent to answered or stopped),
# "faultline-session S" (connect to the last answer: the session's whole time at the server) and
# "faultline-local-port P". Exit 0 when the login and every command answered OK / +OK (a
# stopped command counts as answered); 1 when some did not; 2 when the session could not run.
use strict;
use warnings;
use IO::Socket::INET;
use IO::Select;
use Socket qw(SOL_SOCKET SO_LINGER);

$| = 1;
my ($proto, $host, $port, $user, $pass, $ready, $timeout, @rest) = @ARGV;
die "usage: mailclient.pl imap|pop3 HOST PORT USER PASSWORD READY_FILE TIMEOUT_S [OPTIONS] -- [COMMAND...]\n"
    unless defined $timeout && ($proto eq 'imap' || $proto eq 'pop3');
my ($close, $stop_lines, $stop_ms, $stop_file, $hold_ms, $connections) = ('quit', undef, undef, undef, 0, 1);
while (@rest) {
    my $o = shift @rest;
    last if $o eq '--';
    if    ($o eq '--close')      { $close = shift @rest }
    elsif ($o eq '--stop-lines') { $stop_lines = shift @rest }
    elsif ($o eq '--stop-ms')    { $stop_ms = shift @rest }
    elsif ($o eq '--stop-file')  { $stop_file = shift @rest }
    elsif ($o eq '--hold-ms')    { $hold_ms = shift @rest }
    elsif ($o eq '--connections') { $connections = shift @rest }
    else { die "unknown option $o\n" }
}
my @commands = @rest;

sub uptime {
    open(my $u, '<', '/proc/uptime') or return 0;
    my $l = <$u>;
    return (split ' ', $l)[0];
}

my $deadline = uptime() + $timeout + $hold_ms / 1000;
# Set per connection when there are several: "#i " on every line this process prints.
my $tag = '';

# Print lines, each as one write (several connections share stdout).
sub out { print join('', map { "$tag$_\n" } @_) }

sub mark_ready { my $f = shift; open(my $h, '>', $f) or die "creating $f: $!\n"; close $h }

# With several connections, the parent learns of each child's marks through one pipe (a line
# "i suffix" is shorter than PIPE_BUF, so writes never interleave) instead of polling files:
# under TCG 200 processes stat-ing files every few ms would eat the guest's only CPU.
my ($marks_w, $go, $conn) = (undef, 0, 0);
if ($connections > 1) {
    # N processes, one session each; this one waits, merges their marks, sums up.
    my $t0 = uptime();
    pipe(my $marks_r, $marks_w) or die "pipe: $!\n";
    my (%pid, $child);
    for my $i (1 .. $connections) {
        my $p = fork();
        die "fork: $!\n" unless defined $p;
        if ($p == 0) {
            ($tag, $child, $conn) = ("#$i ", 1, $i);
            $SIG{USR1} = sub { $go = 1 };
            close $marks_r;
            $marks_w->autoflush(1);
            s/%i/$i/g for $user, $pass;
            last;
        }
        $pid{$p} = $i;
    }
    unless ($child) {
        close $marks_w;
        my $killed = 0;
        my (%code, %seen, %merged);
        my @names = ('', map { ".$_" } 1 .. scalar @commands);
        my $rsel = IO::Select->new($marks_r);
        my $pending = '';
        while (%pid) {
            if (!$rsel->count) {
                select(undef, undef, undef, 0.2);
            } elsif ($rsel->can_read(0.2)) {
                my $got = sysread($marks_r, $pending, 4096, length $pending);
                $rsel->remove($marks_r) unless $got;
                while ($pending =~ s/^(\d+) (\S*)\n//) { $seen{$2}{$1} = 1 }
            }
            while ((my $p = waitpid(-1, 1)) > 0) { $code{ delete $pid{$p} } = $? >> 8 }
            for my $m (@names) {
                next if $merged{$m};
                next if grep { !exists $code{$_} && !$seen{$m}{$_} } 1 .. $connections;
                mark_ready("$ready$m");
                $merged{$m} = 1;
                # The last answer is in everywhere: release the children's hold together.
                kill 'USR1', keys %pid if $m eq $names[-1];
            }
            if (!$killed && uptime() > $deadline + 20) { kill 'KILL', keys %pid; out "connections timed out"; $killed = 1 }
        }
        my %n;
        $n{$_}++ for values %code;
        out sprintf("faultline-connections %d: %d ok, %d refused or failed, %d could not run",
            $connections, $n{0} || 0, $n{1} || 0, $connections - ($n{0} || 0) - ($n{1} || 0));
        out sprintf("faultline-duration %.3f", uptime() - $t0);
        exit((grep { $_ != 0 } values %code) ? ((grep { $_ > 1 } values %code) ? 2 : 1) : 0);
    }
}

unless ($conn) { s/%i/1/g for $user, $pass }

# This session reached a point: after the login ('') or the N-th answer ('.N').
sub mark {
    my ($m) = @_;
    if ($marks_w) { print $marks_w "$conn $m\n" } else { mark_ready("$ready$m") }
}

my $connect_at = uptime();
my $s = IO::Socket::INET->new(PeerAddr => $host, PeerPort => $port, Proto => 'tcp', Timeout => $timeout)
    or do { out "connect $host:$port: $@"; exit 2 };
binmode $s;
my $local_port = $s->sockport;
my $sel = IO::Select->new($s);
my $buf = '';
my $all_ok = 1;
my ($last_sent, $last_done) = (0, 0);

sub finish {
    my ($code) = @_;
    out sprintf("faultline-duration %.3f", ($last_done || uptime()) - $last_sent) if $last_sent;
    out sprintf("faultline-session %.3f", $last_done - $connect_at) if $last_done;
    out "faultline-local-port $local_port";
    exit $code;
}

# A transcript line: "<uptime> [#i ]C: ..." / "S: ...".
sub said { my ($dir, $line) = @_; print sprintf("%s %s%s: %s\n", uptime(), $tag, $dir, $line) }

sub send_line {
    my ($line, $shown) = @_;
    said('C', defined $shown ? $shown : $line);
    print $s "$line\r\n";
}

# The next line (without CRLF); undef when a stop condition of the last command is met.
# `stopping` is on only while the last command's answer is read.
my ($stopping, $lines_seen) = (0, 0);
sub stop_now {
    return 0 unless $stopping;
    return 1 if defined $stop_lines && $lines_seen >= $stop_lines;
    return 1 if defined $stop_ms && (uptime() - $last_sent) * 1000 >= $stop_ms;
    return 1 if defined $stop_file && -e $stop_file;
    return 0;
}

sub fill {
    while (1) {
        return 0 if stop_now();
        if (uptime() > $deadline) { out "session timed out after $timeout s"; finish(2) }
        # Poll finely only while a time or file may stop the answer; otherwise the socket
        # wakes us, and hundreds of idle connections cost the guest nothing.
        next unless $sel->can_read($stopping && ($stop_ms || $stop_file) ? 0.05 : 0.5);
        my $got = sysread($s, $buf, 65536, length $buf);
        unless ($got) { out "connection closed by server"; finish(2) }
        return 1;
    }
}

sub read_line {
    while ($buf !~ /\n/) { return undef unless fill() }
    return undef if stop_now();
    $buf =~ s/^(.*?)\r?\n//;
    my $l = $1;
    $lines_seen++;
    said('S', $l);
    return $l;
}

sub read_bytes {
    my ($n) = @_;
    while (length $buf < $n) { return undef unless fill() }
    my $b = substr($buf, 0, $n, '');
    out map { "  | $_" } split /\r?\n/, $b;
    $lines_seen += () = $b =~ /\n/g;
    return $b;
}

# IMAP: lines until the tagged response, following {N} literals byte-exactly.
sub imap_response {
    my ($tag) = @_;
    while (1) {
        my $l = read_line();
        return undef unless defined $l;
        while ($l =~ /\{(\d+)\}\z/) {
            return undef unless defined read_bytes($1);
            $l = read_line();
            return undef unless defined $l;
        }
        return $l if index($l, "$tag ") == 0;
    }
}

# POP3: one status line, then for multi-line answers everything up to ".".
sub pop3_response {
    my ($multi) = @_;
    my $l = read_line();
    return undef unless defined $l;
    return $l unless $multi && $l =~ /^\+OK/;
    while (1) {
        my $m = read_line();
        return undef unless defined $m;
        return $l if $m eq '.';
    }
}

# Send one command and read its answer; the last one may be stopped partway.
sub command {
    my ($n, $line, $reader, $ok) = @_;
    my $last = $n == @commands;
    $last_sent = uptime();
    $last_done = 0;
    send_line($line);
    ($stopping, $lines_seen) = ($last && ($stop_lines || $stop_ms || $stop_file) ? 1 : 0, 0);
    my $resp = $reader->();
    $stopping = 0;
    $last_done = uptime();
    if (!defined $resp) {
        out "stopped after $lines_seen line(s) of the answer";
        mark(".$n");
        return 'stopped';
    }
    $all_ok = 0 unless $resp =~ $ok;
    mark(".$n");
    return 'done';
}

sub end_session {
    my ($bye) = @_;
    if ($hold_ms) {
        if ($marks_w) {
            # Several connections hold together: from the moment the last one is answered.
            # A connection that never gets there (its login lost in a full listen queue) must
            # not keep the others from ending in time: at the session's own timeout the hold
            # starts anyway, and the straggler times out alone.
            out "waiting for every connection's last answer";
            select(undef, undef, undef, 1) until $go || uptime() > $deadline - $hold_ms / 1000;
            out "not every connection was answered: holding anyway" unless $go;
        }
        out "holding the connection for $hold_ms ms";
        # The hold ends early when the server closes: a hold is "leave the server time to end
        # this session itself" (a killed process), and once it has, waiting on proves nothing.
        # Anything the server says meanwhile is kept for the goodbye's reader.
        my $hsel = IO::Select->new($s);
        my $until = uptime() + $hold_ms / 1000;
        while ((my $left = $until - uptime()) > 0) {
            next unless $hsel->can_read($left);
            my $got = sysread($s, $buf, 65536, length $buf);
            unless ($got) { out "the server closed the connection during the hold"; last }
        }
    }
    # The goodbye gets time of its own, whenever the hold ended.
    $deadline = uptime() + 10 if $deadline < uptime() + 10;
    if ($close eq 'quit') { $bye->(); close $s; return }
    if ($close eq 'rst') {
        setsockopt($s, SOL_SOCKET, SO_LINGER, pack('ii', 1, 0)) or out "SO_LINGER: $!";
        out "resetting the connection (RST)";
    } elsif ($close eq 'silent') {
        my $p = $local_port;
        system("nft add table inet faultline_silent 2>/dev/null; "
            . "nft add chain inet faultline_silent out '{ type filter hook output priority 0; }' 2>/dev/null; "
            . "nft add rule inet faultline_silent out tcp sport $p counter drop") == 0
            or out "could not silence port $p";
        out "going silent: every packet from port $p dropped from now on";
    } else {
        # A close with unread bytes in the receive queue is an RST, not a FIN (Linux, as RFC
        # 2525 asks), and mid-answer there usually are some: under load the rest of a FETCH
        # piles up before the client stops. shutdown() sends the FIN whatever is queued; the
        # answer's rest is then read and thrown away until the server closes too (at most
        # 5 s), so the ending stays a FIN and nothing more.
        out "closing the connection (FIN) without a goodbye";
        shutdown($s, 1) or out "shutdown: $!";
        my $sel = IO::Select->new($s);
        my $until = uptime() + 5;
        while (uptime() < $until && $sel->can_read($until - uptime())) {
            my $n = sysread($s, my $junk, 65536);
            last unless $n;
        }
    }
    close $s;
}

if ($proto eq 'imap') {
    my $g = read_line();
    unless (defined $g && $g =~ /^\* OK/) { out "no IMAP greeting"; finish(2) }
    send_line("a1 LOGIN \"$user\" \"$pass\"", "a1 LOGIN \"$user\" ***");
    my $r = imap_response('a1');
    unless (defined $r && $r =~ /^a1 OK/) { out "login refused"; finish(1) }
    mark('');
    my $n = 0;
    for my $c (@commands) {
        $n++;
        my $tag = 'a' . ($n + 1);
        last if command($n, "$tag $c", sub { imap_response($tag) }, qr/^$tag OK/) eq 'stopped';
    }
    end_session(sub {
        my $tag = 'a' . ($n + 2);
        send_line("$tag LOGOUT");
        imap_response($tag);
    });
} else {
    my $g = read_line();
    unless (defined $g && $g =~ /^\+OK/) { out "no POP3 greeting"; finish(2) }
    send_line("USER $user");
    my $r = pop3_response(0);
    if (defined $r && $r =~ /^\+OK/) {
        send_line("PASS $pass", "PASS ***");
        $r = pop3_response(0);
    }
    unless (defined $r && $r =~ /^\+OK/) { out "login refused"; finish(1) }
    mark('');
    my $n = 0;
    for my $c (@commands) {
        $n++;
        my ($verb, @args) = split ' ', $c;
        $verb = uc $verb;
        my $multi = $verb eq 'RETR' || $verb eq 'TOP' || $verb eq 'CAPA'
            || (($verb eq 'LIST' || $verb eq 'UIDL') && !@args);
        last if command($n, $c, sub { pop3_response($multi) }, qr/^\+OK/) eq 'stopped';
    }
    end_session(sub {
        send_line("QUIT");
        pop3_response(0);
    });
}
finish($all_ok ? 0 : 1);
