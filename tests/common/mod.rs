//! The harness of the shim's integration tests, in two tiers:
//! - the in-process tier (tests/pod_*.rs) builds the shim's `Pod` in the test ([`pod`]) and needs
//!   no root: the task logic, the roles, the guard and the error paths;
//! - the daemon tier (tests/shim_*.rs) runs the real `containerd-shim-runsc-v1` through `start`
//!   and ttrpc like containerd runs it ([`client`]). It needs root (it mounts the rootfs and the
//!   shim listens under /run/containerd/s): as any other user each of its tests prints
//!   "skipped: needs root" and returns, see [`skip_unless_root`].
//!
//! By concern:
//! - [`env`]: one test's temp directory, namespace and runsc root ([`TestDir`]), the containerd
//!   stand-in a shim daemon talks to ([`TestEnv`]), and what a test must not leave;
//! - [`bundle`]: bundles as containerd lays them out, and their stdout fifos;
//! - [`containerd`]: the mock containerd's events service and the log of what was published;
//! - [`runsc`]: fake-runsc (tests/fake-runsc), its knobs and the command lines it recorded;
//! - [`node`]: the fixture cgroup tree and /proc the guard reads, and the incident's pod;
//! - [`host`]: root, mounts and processes on the host, and bounded short-lived commands;
//! - [`assert`]: the checks both tiers make of the same outcome.
//!
//! A test file takes all of it as `use common::prelude::*;`.
//!
//! Both tiers run fake-runsc as runsc. Every wait is bounded by [`TIMEOUT`]; the sync points are
//! events and recorded runsc calls, never bare sleeps.

// Each test binary uses a different part of the harness.
#![allow(dead_code)]

pub mod assert;
pub mod bundle;
pub mod client;
pub mod containerd;
pub mod env;
pub mod exec;
pub mod host;
pub mod node;
pub mod pod;
pub mod runsc;

use std::time::Duration;

/// What a test file takes as one `use common::prelude::*;`: every part of the harness and its
/// constants. Each test binary uses only part of it, so the re-exports it leaves unused are not
/// warned about.
#[allow(unused_imports)]
pub mod prelude {
    pub use super::assert::*;
    pub use super::bundle::*;
    pub use super::client::*;
    pub use super::containerd::*;
    pub use super::env::*;
    pub use super::exec::*;
    pub use super::host::*;
    pub use super::node::*;
    pub use super::pod::*;
    pub use super::runsc::*;
    pub use super::{
        CONTAINER_TYPE, DEFAULT_RUNSC_ROOT, RUNSC_OPTIONS_TYPE_URL, RUNTIME_ID, SANDBOX_ID,
        SANDBOX_LOG_DIRECTORY, TIMEOUT, TOPIC_CREATE, TOPIC_DELETE, TOPIC_EXIT, TOPIC_PAUSED,
        TOPIC_RESUMED, TOPIC_START,
    };
}

/// The bound on every wait: generous, the CI machine has 2 cores and runs tests in parallel.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// The runtime type containerd knows the shim by.
pub const RUNTIME_ID: &str = "io.containerd.runsc.v1";
/// The TypeUrl runsc.toml options carry.
pub const RUNSC_OPTIONS_TYPE_URL: &str = "io.containerd.runsc.v1.options";
/// runsc's default root; the shim appends the namespace.
pub const DEFAULT_RUNSC_ROOT: &str = "/run/containerd/runsc";

pub const CONTAINER_TYPE: &str = "io.kubernetes.cri.container-type";
pub const SANDBOX_ID: &str = "io.kubernetes.cri.sandbox-id";
pub const SANDBOX_LOG_DIRECTORY: &str = "io.kubernetes.cri.sandbox-log-directory";

pub const TOPIC_CREATE: &str = "/tasks/create";
pub const TOPIC_START: &str = "/tasks/start";
pub const TOPIC_EXIT: &str = "/tasks/exit";
pub const TOPIC_DELETE: &str = "/tasks/delete";
pub const TOPIC_PAUSED: &str = "/tasks/paused";
pub const TOPIC_RESUMED: &str = "/tasks/resumed";
