//! The containerd shim v2: the lifecycle (`service`), the ttrpc adapter (`task`), the task
//! logic (`pod`) and what it needs. docs/CONTRIBUTING.md ("Architecture") maps every module.

pub mod bootstrap;
pub mod confine;
pub mod console;
pub mod container;
pub mod entrypoint;
pub mod events;
pub mod exec;
pub mod exits;
pub mod grouping;
pub mod ids;
pub mod info;
pub mod io;
pub mod logging;
pub mod mount;
pub mod pod;
pub mod process;
pub mod rollback;
pub mod service;
pub mod startup;
pub mod state;
pub mod stats;
pub mod task;
pub mod task_events;
pub mod volumes;

/// The runtime type containerd knows this shim by.
pub const RUNTIME_ID: &str = "io.containerd.runsc.v1";
