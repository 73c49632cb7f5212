//! The learning switch's forwarding rule: which ports a frame leaves by, given the MAC
//! addresses learnt so far. One rule for two users: the live switch, and a trace read back
//! from the pcapng, which works out where each frame went as the switch did.
//!
//! The rule: a unicast source MAC is learnt on the port the frame came in on (the latest port
//! wins). A frame whose destination is a learnt unicast MAC goes to that port, or nowhere if
//! that is the port it came from. A broadcast, multicast or not yet learnt destination is
//! flooded to every other port that is connected. Addresses are read from the frame's first 12
//! bytes as they are, so a runt frame is switched too: shorter than 12 bytes, no source is
//! learnt; shorter than 6, it is flooded.
//!
//! Connected ports are the caller's to say. The live switch floods only to ports a guest is
//! connected to. A trace does not know when guests connected (the pcapng does not record it),
//! so it counts every port as connected: for a frame flooded while a guest was away, the trace
//! lists that guest's port and the switch did not send to it. A learnt port is answered
//! whether connected or not (the rules see the frame toward it; the switch's send to a port
//! with no guest does nothing).
//!
//! Architecture invariant: pure: no I/O, no clock; the table holds one entry per unicast
//! source MAC seen.

use std::collections::HashMap;

/// MAC addresses learnt on a segment, each with the port it was last seen coming in on.
#[derive(Debug, Clone, Default)]
pub struct MacTable {
    ports: HashMap<[u8; 6], usize>,
}

impl MacTable {
    /// Learn `frame`'s source on port `from`, then answer the ports it leaves by (flooded: in
    /// port order). `ports` is how many ports the segment has; `connected(p)` (asked only for
    /// `p < ports`, never for `from`) whether a flooded frame goes to port `p`.
    pub fn forward(
        &mut self,
        from: usize,
        frame: &[u8],
        ports: usize,
        connected: impl Fn(usize) -> bool,
    ) -> Vec<usize> {
        let mut out = Vec::new();
        self.forward_into(from, frame, ports, connected, &mut out);
        out
    }

    /// [`MacTable::forward`] into `out` (cleared first), so the switch's per-frame path reuses
    /// one vector instead of allocating one per frame.
    pub fn forward_into(
        &mut self,
        from: usize,
        frame: &[u8],
        ports: usize,
        connected: impl Fn(usize) -> bool,
        out: &mut Vec<usize>,
    ) {
        out.clear();
        if let Some(src) = mac_at(frame, 6) {
            if !is_group(&src) && self.ports.get(&src) != Some(&from) {
                self.ports.insert(src, from);
            }
        }
        let learnt = mac_at(frame, 0)
            .filter(|dst| !is_group(dst))
            .and_then(|dst| self.ports.get(&dst).copied());
        match learnt {
            Some(p) if p == from => {}
            Some(p) => out.push(p),
            None => out.extend((0..ports).filter(|&p| p != from && connected(p))),
        }
    }
}

/// The six bytes at `at`, if the frame has them.
fn mac_at(frame: &[u8], at: usize) -> Option<[u8; 6]> {
    frame.get(at..at + 6)?.try_into().ok()
}

/// Group bit set: broadcast or multicast.
fn is_group(mac: &[u8; 6]) -> bool {
    mac[0] & 1 == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: [u8; 6] = [0x52, 0x54, 0, 0xfa, 0, 10];
    const B: [u8; 6] = [0x52, 0x54, 0, 0xfa, 0, 11];
    const MULTICAST: [u8; 6] = [0x01, 0x00, 0x5e, 0, 0, 1];

    fn eth(dst: [u8; 6], src: [u8; 6]) -> Vec<u8> {
        [&dst[..], &src[..], &[0x88, 0xb5], &[0u8; 46]].concat()
    }

    #[test]
    fn unicast_learns_group_floods_and_a_frame_never_goes_back() {
        let mut t = MacTable::default();
        let all = |_| true;
        assert_eq!(t.forward(0, &eth([0xff; 6], A), 3, all), vec![1, 2]);
        assert_eq!(t.forward(1, &eth(A, B), 3, all), vec![0]);
        assert_eq!(t.forward(0, &eth(B, A), 3, all), vec![1]);
        // A moved to port 2: the latest port wins.
        assert_eq!(t.forward(2, &eth(MULTICAST, A), 3, all), vec![0, 1]);
        assert_eq!(t.forward(1, &eth(A, B), 3, all), vec![2]);
        // To a MAC learnt on the port it came from: nowhere.
        assert_eq!(t.forward(1, &eth(B, B), 3, all), Vec::<usize>::new());
        // A multicast source is not learnt.
        assert_eq!(t.forward(0, &eth(B, MULTICAST), 3, all), vec![1]);
        assert_eq!(t.forward(1, &eth(MULTICAST, B), 3, all), vec![0, 2]);
    }

    #[test]
    fn runt_frames_are_read_as_far_as_they_go() {
        let mut t = MacTable::default();
        let all = |_| true;
        // 12 bytes: both addresses, so A is learnt.
        assert_eq!(t.forward(0, &eth(B, A)[..12], 3, all), vec![1, 2]);
        assert_eq!(t.forward(1, &eth(A, B)[..12], 3, all), vec![0]);
        // 8 bytes: a destination but no source to learn.
        assert_eq!(
            t.forward(2, &eth(A, [0x52, 0, 0, 0, 0, 0x0c])[..8], 3, all),
            vec![0]
        );
        // Under 6 bytes: no destination, flooded.
        assert_eq!(t.forward(2, &[0; 5], 3, all), vec![0, 1]);
    }

    /// The one rule in its two uses: the switch asks whether a guest is connected, a trace
    /// counts every port as connected. With every guest there they answer the same; with one
    /// away, the switch's answer is the trace's without that guest's port.
    #[test]
    fn the_switch_and_a_trace_answer_the_same_but_for_ports_without_a_guest() {
        let c = [0x52, 0x54, 0, 0xfa, 0, 12];
        let frames = [
            (0, eth([0xff; 6], A)),
            (1, eth(A, B)),
            (2, eth(B, c)),
            (0, eth(c, A)),
            (1, eth(MULTICAST, B)),
            (2, eth([0x52, 0x54, 0, 0xfa, 0, 13], c)),
        ];
        for away in [None, Some(3)] {
            let writers: Vec<Option<()>> = (0..4).map(|p| (Some(p) != away).then_some(())).collect();
            let (mut switch, mut trace) = (MacTable::default(), MacTable::default());
            for (from, f) in &frames {
                let by_switch = switch.forward(*from, f, 4, |p| writers[p].is_some());
                let by_trace = trace.forward(*from, f, 4, |_| true);
                match away {
                    None => assert_eq!(by_switch, by_trace),
                    Some(gone) => {
                        let without: Vec<usize> = by_trace.iter().copied().filter(|&p| p != gone).collect();
                        assert_eq!(by_switch, without);
                    }
                }
            }
        }
    }
}
