//! The evidence of the scenarios that change a running pod from outside: Update of its
//! resources through CRI, and containerd restarted under it.

use serde::Serialize;

#[derive(Clone, Debug, Default, Serialize)]
pub struct PodOpsRecord {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update: Option<UpdateRecord>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart: Option<RestartRecord>,
}

/// UpdateContainerResources within the pod's bound, then one above it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct UpdateRecord {
    /// The sandbox's cgroup (from `/proc/<runsc-sandbox>/cgroup`).
    pub sandbox_cgroup: Option<String>,
    /// Its `memory.max` before any update.
    pub memory_max_before: Option<String>,
    pub requested_bytes: u64,
    pub update_error: Option<String>,
    pub memory_max_after: Option<String>,
    /// The limit above the pod's bound, and what CRI answered.
    pub above_bytes: u64,
    pub above_error: Option<String>,
    pub memory_max_after_above: Option<String>,
}

/// `systemctl restart containerd` while the pod runs.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RestartRecord {
    pub shim_pids_before: Vec<u32>,
    pub shim_pids_after: Vec<u32>,
    pub sandbox_pid_before: Option<u32>,
    pub sandbox_pid_after: Option<u32>,
    pub restart_error: Option<String>,
    /// From `systemctl restart` returning to the first CRI answer.
    pub cri_back_ms: Option<u64>,
    pub container_state_after: Option<String>,
    pub sandbox_ready_after: Option<bool>,
    /// ExecSync of `echo alive` after the restart: exit code and stdout, or the error.
    pub exec_after: Option<(i32, String)>,
    pub exec_error: Option<String>,
    pub shim_rss_kib_before: Option<u64>,
    pub shim_rss_kib_after: Option<u64>,
}
