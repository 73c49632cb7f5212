//! The lab's Ethernet: the harness is the switch. Guests' NICs connect to unix sockets the
//! harness serves; every frame is classified, recorded to pcapng, matched against the fault
//! rules, and forwarded, delayed, duplicated or dropped.

pub mod classify;
pub mod frame;
pub mod pcapng;
pub mod rules;
pub mod switch;
