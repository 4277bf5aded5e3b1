//! runsc-guard: a drop-in `containerd-shim-runsc-v1` that keeps every gVisor sandbox bounded by
//! its pod.
//!
//! The module map, and how one Create flows through the modules, is in docs/CONTRIBUTING.md
//! ("Architecture"); each module's own documentation says what it answers.

#![warn(clippy::too_many_lines)]

pub mod annotations;
pub mod bundle;
pub mod cgroup;
pub mod cli;
pub mod doctor;
pub mod error;
pub mod fsread;
pub mod guard;
pub mod options;
pub mod proto;
pub mod runsc;
pub mod shim;
pub mod timing;

pub use error::{Error, Result};
