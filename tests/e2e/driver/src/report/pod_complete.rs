//! The evidence of the pod-complete scenarios: what a process said through ExecSync, a streaming
//! Exec or an Attach, and how many shim processes served a pod.

use serde::Serialize;

/// One exchange with a process through CRI, with what it must show.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ExchangeRecord {
    pub name: String,
    /// `ExecSync`, `Exec` (the streaming endpoint) or `Attach`.
    pub via: String,
    pub command: Vec<String>,
    pub tty: bool,
    /// What was written to the process's stdin.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stdin: Option<String>,
    /// The terminal size sent (columns, rows).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resize: Option<(u16, u16)>,
    /// None where the process goes on (an attach).
    pub want_exit_code: Option<i32>,
    pub want_stdout: Vec<String>,
    pub want_stderr: Vec<String>,
    /// The streaming subprotocol the server chose.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    pub exit_code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub error: Option<String>,
}

/// The shim processes that served one pod while all its containers ran.
#[derive(Clone, Debug, Default, Serialize)]
pub struct GroupingRecord {
    pub handler: String,
    /// What the handler's runsc.toml says (`grouping`).
    pub grouping: bool,
    /// The sandbox's id first, then the containers'.
    pub ids: Vec<String>,
    pub running: usize,
    pub want_shims: usize,
    /// Each shim daemon: its pid and the `-id` it was started with.
    pub shims: Vec<(u32, String)>,
    /// What was left of the pod after it was stopped and removed; None when nothing was.
    pub left_behind: Option<String>,
    pub error: Option<String>,
}
