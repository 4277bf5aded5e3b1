//! The containerd shim v2.
//!
//! - [`service`]: the shim's lifecycle (`start`, `delete`, the daemon), for containerd;
//! - [`task`]: the ttrpc task API adapter, the only protocol-aware code;
//! - [`pod`]: the task logic for the containers this shim serves;
//! - [`container`]: one container's tracked state;
//! - [`spec`], [`io`], [`mount`], [`events`], [`state`], [`logging`]: what those need.

pub mod confine;
pub mod container;
pub mod events;
pub mod info;
pub mod io;
pub mod logging;
pub mod mount;
pub mod pod;
pub mod rollback;
pub mod service;
pub mod state;
pub mod task;

/// The runtime type containerd knows this shim by.
pub const RUNTIME_ID: &str = "io.containerd.runsc.v1";
