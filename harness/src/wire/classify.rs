//! The switch's view of a frame: the classifier's full description ([`frame::classify`] plus
//! the segment's [`RpcTracker`]) reduced to the [`Facts`] rules match on.

use crate::wire::frame;
use crate::wire::rules::{Facts, PayloadHead, RpcFacts};
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
        // Headers only: the tracker finds the frame's RPC messages itself.
        let mut info = frame::classify_headers(frame);
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
        if let Some(p) = info.payload().and_then(|r| frame.get(r)) {
            f.payload = PayloadHead::new(p);
        }
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

    #[test]
    fn a_frame_s_payload_head_is_its_first_bytes_and_no_more() {
        use crate::wire::rules::PAYLOAD_HEAD;
        use crate::wire::test_frames::tcp4;
        let mut c = Classifier::default();
        let (f, _) = c.facts(&tcp4(
            [192, 0, 2, 50],
            40000,
            [192, 0, 2, 11],
            143,
            1,
            1,
            0x18,
            b"a4 LOGOUT\r\n",
        ));
        assert_eq!(f.payload.as_bytes(), b"a4 LOGOUT\r\n");
        assert!(f.payload.contains(b"LOGOUT"));
        let long: Vec<u8> = std::iter::repeat_n(b'x', PAYLOAD_HEAD)
            .chain(*b"LOGOUT")
            .collect();
        let (f, _) = c.facts(&tcp4(
            [192, 0, 2, 50],
            40000,
            [192, 0, 2, 11],
            143,
            20,
            1,
            0x18,
            &long,
        ));
        assert_eq!(f.payload.as_bytes().len(), PAYLOAD_HEAD);
        assert!(!f.payload.contains(b"LOGOUT"));
        // A bare ACK has no payload.
        let (f, _) = c.facts(&tcp4(
            [192, 0, 2, 50],
            40000,
            [192, 0, 2, 11],
            143,
            60,
            1,
            0x10,
            b"",
        ));
        assert!(f.payload.as_bytes().is_empty() && !f.payload.contains(b"L"));
    }
}
