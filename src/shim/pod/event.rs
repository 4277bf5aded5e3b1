//! What happened to the pod's processes, in the domain's terms. The pod sends these in the order
//! things happened; `shim::task_events` alone turns them into containerd's event messages.

use std::path::PathBuf;

use crate::shim::io::StdioPaths;
use crate::shim::process::{Exit, ProcessRef};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodEvent {
    /// `runsc create` made the container; `pid` is the sandbox's.
    Created {
        container_id: String,
        bundle: PathBuf,
        stdio: StdioPaths,
        pid: i32,
    },
    /// Exec recorded a process; nothing runs until its Start.
    ExecAdded {
        process: ProcessRef,
    },
    /// A process (a container's init or an exec) started.
    Started {
        process: ProcessRef,
        pid: i32,
    },
    /// The host's OOM killer took the sandbox; sent before the init's exit.
    Oom {
        container_id: String,
    },
    /// A process ended.
    Exited {
        process: ProcessRef,
        pid: i32,
        exit: Exit,
    },
    Paused {
        container_id: String,
    },
    Resumed {
        container_id: String,
    },
    /// Delete forgot the container.
    Deleted {
        container_id: String,
        pid: i32,
        exit: Exit,
    },
}
