//! The one place a [`PodEvent`] becomes a containerd task event message (task API v2's
//! `events.task` types), beside `task.rs`, the one place requests and answers are converted.

use containerd_shim::protos::events::task::{
    TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskExit, TaskIO, TaskOOM, TaskPaused,
    TaskResumed, TaskStart,
};
use containerd_shim::util::convert_to_timestamp;

use crate::shim::events::PendingEvent;
use crate::shim::pod::PodEvent;
use crate::shim::process::Exit;

fn exited_at(
    exit: Exit,
) -> containerd_shim::protos::protobuf::MessageField<
    containerd_shim::protos::protobuf::well_known_types::timestamp::Timestamp,
> {
    Some(convert_to_timestamp(Some(exit.at.into()))).into()
}

/// The message containerd expects for `event`.
pub fn message(event: PodEvent) -> PendingEvent {
    match event {
        PodEvent::Created {
            container_id,
            bundle,
            stdio,
            pid,
        } => Box::new(TaskCreate {
            container_id,
            bundle: bundle.display().to_string(),
            io: Some(TaskIO {
                stdin: stdio.stdin,
                stdout: stdio.stdout,
                stderr: stdio.stderr,
                terminal: stdio.terminal,
                ..Default::default()
            })
            .into(),
            pid: pid as u32,
            ..Default::default()
        }),
        PodEvent::ExecAdded { process } => Box::new(TaskExecAdded {
            container_id: process.container_id().to_string(),
            exec_id: process.exec_id().unwrap_or_default().to_string(),
            ..Default::default()
        }),
        PodEvent::Started { process, pid } => match process.exec_id() {
            None => Box::new(TaskStart {
                container_id: process.container_id().to_string(),
                pid: pid as u32,
                ..Default::default()
            }),
            Some(exec_id) => Box::new(TaskExecStarted {
                container_id: process.container_id().to_string(),
                exec_id: exec_id.to_string(),
                pid: pid as u32,
                ..Default::default()
            }),
        },
        PodEvent::Oom { container_id } => Box::new(TaskOOM {
            container_id,
            ..Default::default()
        }),
        PodEvent::Exited { process, pid, exit } => Box::new(TaskExit {
            container_id: process.container_id().to_string(),
            // An init's exit carries the container id as its id, an exec's its exec id.
            id: process
                .exec_id()
                .unwrap_or(process.container_id())
                .to_string(),
            pid: pid as u32,
            exit_status: exit.status,
            exited_at: exited_at(exit),
            ..Default::default()
        }),
        PodEvent::Paused { container_id } => Box::new(TaskPaused {
            container_id,
            ..Default::default()
        }),
        PodEvent::Resumed { container_id } => Box::new(TaskResumed {
            container_id,
            ..Default::default()
        }),
        PodEvent::Deleted {
            container_id,
            pid,
            exit,
        } => Box::new(TaskDelete {
            id: container_id.clone(),
            container_id,
            pid: pid as u32,
            exit_status: exit.status,
            exited_at: exited_at(exit),
            ..Default::default()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shim::process::ProcessRef;
    use std::time::SystemTime;

    #[test]
    fn each_event_has_its_topic_and_exits_name_their_process() {
        let exit = Exit {
            status: 137,
            at: SystemTime::now(),
        };
        let init = ProcessRef::init("c").unwrap();
        let exec = ProcessRef::new("c", "e").unwrap();
        let topics: Vec<String> = [
            PodEvent::Created {
                container_id: "c".into(),
                bundle: "/b".into(),
                stdio: Default::default(),
                pid: 1,
            },
            PodEvent::ExecAdded {
                process: exec.clone(),
            },
            PodEvent::Started {
                process: init.clone(),
                pid: 1,
            },
            PodEvent::Started {
                process: exec.clone(),
                pid: 2,
            },
            PodEvent::Oom {
                container_id: "c".into(),
            },
            PodEvent::Exited {
                process: exec,
                pid: 2,
                exit,
            },
            PodEvent::Paused {
                container_id: "c".into(),
            },
            PodEvent::Resumed {
                container_id: "c".into(),
            },
            PodEvent::Deleted {
                container_id: "c".into(),
                pid: 1,
                exit,
            },
        ]
        .into_iter()
        .map(|e| message(e).topic())
        .collect();
        assert_eq!(
            topics,
            [
                "/tasks/create",
                "/tasks/exec-added",
                "/tasks/start",
                "/tasks/exec-started",
                "/tasks/oom",
                "/tasks/exit",
                "/tasks/paused",
                "/tasks/resumed",
                "/tasks/delete"
            ]
        );
    }
}
