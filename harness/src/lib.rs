//! faultline: a fault-injection harness that runs stock Debian kernels, nfs-utils and Dovecot
//! in QEMU guests. See ARCHITECTURE.md for the map.

pub mod accel;
pub mod bench;
pub mod cache_entries;
pub mod case;
pub mod command_error;
pub mod commands;
pub mod console;
pub mod disks;
pub mod exit;
pub mod hosttools;
pub mod images;
pub mod lab;
pub mod metrics;
pub mod procs;
pub mod prune;
pub mod qemu;
pub mod recipe;
pub mod results;
pub mod run;
pub mod shell;
pub mod shquote;
pub mod sockets;
pub mod span;
pub mod store;
pub mod suite;
pub mod vendor;
pub mod wire;
