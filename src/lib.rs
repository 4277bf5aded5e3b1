//! runsc-guard: a drop-in `containerd-shim-runsc-v1` that keeps every gVisor sandbox bounded by
//! its pod.
//!
//! The layout is the architecture:
//! - [`options`]: the runtime options containerd sends and the runsc.toml they point to;
//! - [`annotations`]: what the CRI annotations say about a container's role in its pod;
//! - [`runsc`]: typed wrappers around the runsc command line;
//! - [`cgroup`]: reading a cgroup tree (v1, v2, hybrid) and the paths containerd hands out;
//! - [`guard`]: the pure decision that bounds a sandbox by its pod, and its verification;
//! - [`shim`]: the containerd shim v2 (lifecycle, task service, containers, stdio, events);
//! - [`doctor`]: the audit of a node (`runsc-guard doctor`);
//! - [`cli`]: the `runsc-guard` operator command.

pub mod annotations;
pub mod bundle;
pub mod cgroup;
pub mod cli;
pub mod doctor;
pub mod error;
pub mod guard;
pub mod options;
pub mod proto;
pub mod runsc;
pub mod shim;

pub use error::{Error, Result};
