//! The lab's Ethernet: the harness is the switch. Guests' NICs connect to unix sockets the
//! harness serves; every frame is classified, recorded to pcapng, matched against the fault
//! rules, and forwarded, delayed, duplicated or dropped.

mod bytes;
pub mod classify;
pub mod frame;
pub mod learning;
pub mod pcapng;
pub mod rpc;
pub mod rules;
pub mod switch;
#[cfg(test)]
pub(crate) mod test_frames;
pub mod tracker;
