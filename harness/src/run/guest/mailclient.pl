#!/usr/bin/perl
# faultline mail client: one IMAP or POP3 session, every line it sends and receives printed
# ("C: ..." / "S: ..." with guest uptime), for checks to read. Only perl-base modules.
#   mailclient.pl imap|pop3 HOST PORT USER PASSWORD HANGUP(0|1) READY_FILE TIMEOUT [COMMAND...]
# Exit 0 when the login and every command were answered OK / +OK; 1 when some were not;
# 2 when the session could not run (connect, timeout, protocol).
use strict;
use warnings;
use IO::Socket::INET;

$| = 1;
my ($proto, $host, $port, $user, $pass, $hangup, $ready, $timeout, @commands) = @ARGV;
die "usage: mailclient.pl imap|pop3 HOST PORT USER PASSWORD HANGUP READY_FILE TIMEOUT [COMMAND...]\n"
    unless defined $timeout && ($proto eq 'imap' || $proto eq 'pop3');

sub uptime {
    open(my $u, '<', '/proc/uptime') or return 0;
    my $l = <$u>;
    return (split ' ', $l)[0];
}

local $SIG{ALRM} = sub { print "session timed out after $timeout s\n"; exit 2 };
alarm $timeout;

my $s = IO::Socket::INET->new(PeerAddr => $host, PeerPort => $port, Proto => 'tcp')
    or do { print "connect $host:$port: $@\n"; exit 2 };
binmode $s;
my $all_ok = 1;

sub send_line {
    my ($line, $shown) = @_;
    printf "%s C: %s\n", uptime(), defined $shown ? $shown : $line;
    print $s "$line\r\n";
}

sub read_line {
    my $l = <$s>;
    unless (defined $l) { print "connection closed by server\n"; exit 2 }
    $l =~ s/\r?\n\z//;
    printf "%s S: %s\n", uptime(), $l;
    return $l;
}

# IMAP: read until the tagged response, following {N} literals byte-exactly.
sub imap_response {
    my ($tag) = @_;
    while (1) {
        my $l = read_line();
        while ($l =~ /\{(\d+)\}\z/) {
            my $n = $1;
            my $buf = '';
            while (length($buf) < $n) {
                my $got = read($s, $buf, $n - length($buf), length($buf));
                unless ($got) { print "connection closed in a literal\n"; exit 2 }
            }
            print map { "  | $_\n" } split /\r?\n/, $buf;
            $l = read_line();
        }
        return $l if index($l, "$tag ") == 0;
    }
}

# POP3: one status line, then for multi-line answers everything up to ".".
sub pop3_response {
    my ($multi) = @_;
    my $l = read_line();
    return $l unless $multi && $l =~ /^\+OK/;
    while (1) {
        my $m = <$s>;
        unless (defined $m) { print "connection closed in a multi-line answer\n"; exit 2 }
        $m =~ s/\r?\n\z//;
        last if $m eq '.';
        print "  | $m\n";
    }
    return $l;
}

sub ready { open(my $f, '>', $ready) or die "creating $ready: $!\n"; close $f }

if ($proto eq 'imap') {
    my $g = read_line();
    unless ($g =~ /^\* OK/) { print "no IMAP greeting\n"; exit 2 }
    send_line("a1 LOGIN \"$user\" \"$pass\"", "a1 LOGIN \"$user\" ***");
    my $r = imap_response('a1');
    unless ($r =~ /^a1 OK/) { print "login refused\n"; exit 1 }
    ready();
    my $n = 1;
    for my $c (@commands) {
        $n++;
        send_line("a$n $c");
        my $resp = imap_response("a$n");
        $all_ok = 0 unless $resp =~ /^a$n OK/;
    }
    if ($hangup) { print "hanging up without LOGOUT\n" }
    else {
        $n++;
        send_line("a$n LOGOUT");
        imap_response("a$n");
    }
} else {
    my $g = read_line();
    unless ($g =~ /^\+OK/) { print "no POP3 greeting\n"; exit 2 }
    send_line("USER $user");
    my $r = pop3_response(0);
    if ($r =~ /^\+OK/) {
        send_line("PASS $pass", "PASS ***");
        $r = pop3_response(0);
    }
    unless ($r =~ /^\+OK/) { print "login refused\n"; exit 1 }
    ready();
    for my $c (@commands) {
        my ($verb, @args) = split ' ', $c;
        $verb = uc $verb;
        my $multi = $verb eq 'RETR' || $verb eq 'TOP' || $verb eq 'CAPA'
            || (($verb eq 'LIST' || $verb eq 'UIDL') && !@args);
        send_line($c);
        my $resp = pop3_response($multi);
        $all_ok = 0 unless $resp =~ /^\+OK/;
    }
    if ($hangup) { print "hanging up without QUIT\n" }
    else {
        send_line("QUIT");
        pop3_response(0);
    }
}
close $s;
exit($all_ok ? 0 : 1);
