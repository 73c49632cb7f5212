//! The switch's view of a frame: the classifier's full description ([`frame::classify`] plus
//! the segment's [`RpcTracker`]) reduced to the [`Facts`] rules match on.

use crate::wire::frame;
use crate::wire::rules::{Facts, RpcFacts};
use crate::wire::tracker::RpcTracker;

/// Per-segment classification state: the RPC tracker pairs replies with calls and follows
/// TCP record boundaries across the frames of every flow on the segment.
#[derive(Default)]
pub struct Classifier {
    tracker: RpcTracker,
}

impl Classifier {
    /// The facts of `frame`, and whether it was malformed (still described as far as it
    /// parsed).
    pub fn facts(&mut self, frame: &[u8]) -> (Facts, bool) {
        let mut info = frame::classify(frame);
        self.tracker.observe(frame, &mut info);
        let mut f = Facts::default();
        if let Some(eth) = &info.eth {
            f.dst_mac = eth.dst.0;
            f.src_mac = eth.src.0;
            f.ethertype = eth.ethertype;
        }
        f.src_ip = info.src_ip();
        f.dst_ip = info.dst_ip();
        f.ip_proto = info.ip_protocol();
        f.src_port = info.src_port();
        f.dst_port = info.dst_port();
        f.tcp_flags = info.tcp().map(|t| t.flags);
        f.rpc = info
            .rpc
            .iter()
            .map(|m| RpcFacts {
                xid: m.xid,
                call: m.is_call(),
                program: m.program(),
                version: m.version(),
                procedure: m.procedure(),
                reclaim: m.args().and_then(|a| a.reclaim()),
                nlm_stat: m.nlm_stat(),
            })
            .collect();
        (f, info.malformed.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn junk_is_malformed_not_a_panic() {
        let mut c = Classifier::default();
        for len in 0..80 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 131 + 7) as u8).collect();
            let _ = c.facts(&junk);
        }
        assert!(c.facts(&[1, 2, 3]).1);
    }
}
