//! Frame classification on hostile bytes: `classify` and `RpcTracker::observe` must never
//! panic, whatever a guest sends.
//!
//! The input is a sequence of frames, each a big-endian u16 length and that many bytes (the
//! last one takes what is left), fed to one tracker with small limits so eviction runs too;
//! the whole input is also classified as one frame. Seeds:
//! `FAULTLINE_FRAME_SEEDS=$PWD/corpus/classify cargo test -q --lib wire::frame::tests::write_fuzz_seeds`
//! from the workspace root, then
//! `cargo fuzz run classify -- -max_total_time=60` here (nightly, or RUSTC_BOOTSTRAP=1).
#![no_main]

use faultline::wire::frame::classify;
use faultline::wire::tracker::RpcTracker;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = classify(data);
    let mut tracker = RpcTracker::with_limits(8, 4);
    let mut rest = data;
    while let [hi, lo, tail @ ..] = rest {
        let n = (usize::from(*hi) << 8 | usize::from(*lo)).min(tail.len());
        let (frame, next) = tail.split_at(n);
        let mut info = classify(frame);
        tracker.observe(frame, &mut info);
        if let Some(p) = info.payload() {
            assert!(p.start <= p.end && p.end <= frame.len());
        }
        rest = next;
    }
});
