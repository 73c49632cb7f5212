//! A report a vendor can act on: one arm of an existing run as one folder and a `.tar.gz` of
//! it (`faultline report --vendor CASE::ARM`), readable without the rest of the run folder.
//!
//! - `cite.rs` — the frames and log lines an arm's record cites (pure).
//! - `cut.rs` — those frames, with context, cut out of a trace into a small pcapng (pure).
//! - `summary.rs` — `SUMMARY.md` from the records and the cuts (pure, snapshot-tested).
//! - `scrub.rs` — the host's paths and name taken out of every text (pure).

pub mod cite;
pub mod cut;
pub mod scrub;
pub mod summary;
