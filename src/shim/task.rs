//! The task API v2 adapter: converts ttrpc requests into [`Pod`] calls and domain errors into
//! ttrpc statuses. This file is the only one that knows the protocol version; RPCs it does not
//! implement answer with the generated NOT_FOUND "... is not supported".

use std::sync::Arc;

use async_trait::async_trait;
use containerd_shim::api::Empty;
use containerd_shim::asynchronous::ExitSignal;
use containerd_shim::protos::api::{
    CheckpointTaskRequest, ConnectRequest, ConnectResponse, CreateTaskRequest, CreateTaskResponse,
    DeleteRequest, DeleteResponse, KillRequest, PauseRequest, PidsRequest, PidsResponse,
    ResumeRequest, ShutdownRequest, StartRequest, StartResponse, StateRequest, StateResponse,
    StatsRequest, StatsResponse, UpdateTaskRequest, WaitRequest, WaitResponse,
};
use containerd_shim::protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim::protos::shim::shim::{CloseIORequest, ExecProcessRequest, ResizePtyRequest};
use containerd_shim::protos::shim_async::Task;
use containerd_shim::protos::ttrpc::{self, r#async::TtrpcContext, Code, Status as RpcStatus};
use containerd_shim::protos::types::task::{ProcessInfo, Status as TaskStatus};
use containerd_shim::util::convert_to_timestamp;
use log::{info, warn};

use crate::error::Error;
use crate::shim::exec::ExecRequest;
use crate::shim::io::StdioPaths;
use crate::shim::mount::RootfsMount;
use crate::shim::pod::{CreateTask, Pod};
use crate::shim::process::{Exit, ProcessRef, Status};
use crate::timing;

pub struct TaskService {
    pod: Arc<Pod>,
    exit: Arc<ExitSignal>,
}

impl TaskService {
    pub fn new(pod: Arc<Pod>, exit: Arc<ExitSignal>) -> Self {
        TaskService { pod, exit }
    }
}

/// The one place domain errors become ttrpc statuses.
fn to_rpc(e: Error) -> ttrpc::Error {
    let code = match &e {
        Error::InvalidArgument { .. } | Error::Options(_) => Code::INVALID_ARGUMENT,
        Error::NotFound(_) => Code::NOT_FOUND,
        Error::AlreadyExists(_) => Code::ALREADY_EXISTS,
        Error::FailedPrecondition(_) | Error::GuardRefused { .. } => Code::FAILED_PRECONDITION,
        Error::Unimplemented(_) => Code::UNIMPLEMENTED,
        Error::Io { .. }
        | Error::Os { .. }
        | Error::TaskFailed { .. }
        | Error::Cgroup(_)
        | Error::Runsc { .. }
        | Error::Other(_) => Code::UNKNOWN,
    };
    ttrpc::Error::RpcStatus(RpcStatus {
        code: code.into(),
        message: e.to_string(),
        ..Default::default()
    })
}

/// An RPC's answer with nothing to return: a failure is logged with the RPC and the id.
fn logged(rpc: &str, id: &str, result: crate::error::Result<()>) -> ttrpc::Result<Empty> {
    result.map(|()| Empty::new()).map_err(|e| {
        warn!("{rpc} {id} failed: {e}");
        to_rpc(e)
    })
}

/// The process a request names (`exec_id` empty for a container's init), its ids checked.
fn process_ref(id: &str, exec_id: &str) -> ttrpc::Result<ProcessRef> {
    ProcessRef::new(id, exec_id).map_err(to_rpc)
}

fn task_status(status: Status) -> TaskStatus {
    match status {
        Status::Created => TaskStatus::CREATED,
        Status::Running => TaskStatus::RUNNING,
        Status::Paused => TaskStatus::PAUSED,
        Status::Stopped => TaskStatus::STOPPED,
    }
}

fn timestamp(exit: Option<Exit>) -> Timestamp {
    convert_to_timestamp(exit.map(|e| e.at.into()))
}

#[async_trait]
impl Task for TaskService {
    async fn create(
        &self,
        _ctx: &TtrpcContext,
        req: CreateTaskRequest,
    ) -> ttrpc::Result<CreateTaskResponse> {
        crate::shim::startup::first_create(&req.id);
        if !req.checkpoint.is_empty() {
            return Err(to_rpc(Error::Unimplemented("restoring from a checkpoint")));
        }
        let task = CreateTask {
            id: req.id.clone(),
            bundle: req.bundle.clone().into(),
            rootfs: req
                .rootfs
                .iter()
                .map(|m| RootfsMount {
                    kind: m.type_.clone(),
                    source: m.source.clone(),
                    options: m.options.clone(),
                })
                .collect(),
            stdio: StdioPaths {
                stdin: req.stdin.clone(),
                stdout: req.stdout.clone(),
                stderr: req.stderr.clone(),
                terminal: req.terminal,
            },
            options: req.options.into_option(),
        };
        match timing::rpc("create", &req.id, self.pod.create(task)).await {
            Ok(pid) => Ok(CreateTaskResponse {
                pid: pid as u32,
                ..Default::default()
            }),
            Err(e) => {
                warn!("create {} failed: {e}", req.id);
                Err(to_rpc(e))
            }
        }
    }

    async fn start(&self, _ctx: &TtrpcContext, req: StartRequest) -> ttrpc::Result<StartResponse> {
        let process = process_ref(&req.id, &req.exec_id)?;
        let pid = timing::rpc("start", &req.id, self.pod.start(&process))
            .await
            .map_err(to_rpc)?;
        Ok(StartResponse {
            pid: pid as u32,
            ..Default::default()
        })
    }

    async fn state(&self, _ctx: &TtrpcContext, req: StateRequest) -> ttrpc::Result<StateResponse> {
        let process = process_ref(&req.id, &req.exec_id)?;
        let s = self.pod.state(&process).await.map_err(to_rpc)?;
        Ok(StateResponse {
            id: s.process.container_id().to_string(),
            exec_id: s.process.exec_id().unwrap_or_default().to_string(),
            bundle: s
                .bundle
                .map(|b| b.display().to_string())
                .unwrap_or_default(),
            pid: s.pid as u32,
            status: task_status(s.status).into(),
            stdin: s.stdio.stdin,
            stdout: s.stdio.stdout,
            stderr: s.stdio.stderr,
            terminal: s.stdio.terminal,
            exit_status: s.exit.map_or(0, |e| e.status),
            exited_at: s.exit.map(|e| timestamp(Some(e))).into(),
            ..Default::default()
        })
    }

    async fn kill(&self, _ctx: &TtrpcContext, req: KillRequest) -> ttrpc::Result<Empty> {
        let process = process_ref(&req.id, &req.exec_id)?;
        self.pod
            .kill(&process, req.signal, req.all)
            .await
            .map_err(to_rpc)?;
        Ok(Empty::new())
    }

    async fn wait(&self, _ctx: &TtrpcContext, req: WaitRequest) -> ttrpc::Result<WaitResponse> {
        let process = process_ref(&req.id, &req.exec_id)?;
        let exit = self.pod.wait(&process).await.map_err(to_rpc)?;
        Ok(WaitResponse {
            exit_status: exit.status,
            exited_at: Some(timestamp(Some(exit))).into(),
            ..Default::default()
        })
    }

    async fn delete(
        &self,
        _ctx: &TtrpcContext,
        req: DeleteRequest,
    ) -> ttrpc::Result<DeleteResponse> {
        let process = process_ref(&req.id, &req.exec_id)?;
        let (pid, exit) = self.pod.delete(&process).await.map_err(to_rpc)?;
        Ok(DeleteResponse {
            pid: pid as u32,
            exit_status: exit.status,
            exited_at: Some(timestamp(Some(exit))).into(),
            ..Default::default()
        })
    }

    async fn pids(&self, _ctx: &TtrpcContext, req: PidsRequest) -> ttrpc::Result<PidsResponse> {
        let pids = self.pod.pids(&req.id).await.map_err(to_rpc)?;
        Ok(PidsResponse {
            processes: pids
                .into_iter()
                .map(|pid| ProcessInfo {
                    pid: pid as u32,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
    }

    async fn stats(&self, _ctx: &TtrpcContext, req: StatsRequest) -> ttrpc::Result<StatsResponse> {
        let stats = self.pod.stats(&req.id).await.map_err(to_rpc)?;
        Ok(StatsResponse {
            stats: Some(stats).into(),
            ..Default::default()
        })
    }

    async fn pause(&self, _ctx: &TtrpcContext, req: PauseRequest) -> ttrpc::Result<Empty> {
        logged("pause", &req.id, self.pod.pause(&req.id).await)
    }

    async fn resume(&self, _ctx: &TtrpcContext, req: ResumeRequest) -> ttrpc::Result<Empty> {
        logged("resume", &req.id, self.pod.resume(&req.id).await)
    }

    async fn update(&self, _ctx: &TtrpcContext, req: UpdateTaskRequest) -> ttrpc::Result<Empty> {
        let Some(resources) = req.resources.as_ref() else {
            return Err(to_rpc(Error::invalid(
                "resources",
                "is missing: Update needs the container's new LinuxResources",
            )));
        };
        logged(
            "update",
            &req.id,
            self.pod.update(&req.id, &resources.value).await,
        )
    }

    async fn close_io(&self, _ctx: &TtrpcContext, req: CloseIORequest) -> ttrpc::Result<Empty> {
        let process = process_ref(&req.id, &req.exec_id)?;
        if !req.stdin {
            return Ok(Empty::new());
        }
        self.pod.close_stdin(&process).await.map_err(to_rpc)?;
        Ok(Empty::new())
    }

    async fn exec(&self, _ctx: &TtrpcContext, req: ExecProcessRequest) -> ttrpc::Result<Empty> {
        let process = process_ref(&req.id, &req.exec_id)?;
        let exec = ExecRequest {
            stdio: StdioPaths {
                stdin: req.stdin.clone(),
                stdout: req.stdout.clone(),
                stderr: req.stderr.clone(),
                terminal: req.terminal,
            },
            spec: req
                .spec
                .as_ref()
                .map(|any| any.value.clone())
                .unwrap_or_default(),
        };
        if let Err(e) = self.pod.exec(&process, exec).await {
            warn!("exec {} in {} failed: {e}", req.exec_id, req.id);
            return Err(to_rpc(e));
        }
        Ok(Empty::new())
    }

    async fn resize_pty(&self, _ctx: &TtrpcContext, req: ResizePtyRequest) -> ttrpc::Result<Empty> {
        let process = process_ref(&req.id, &req.exec_id)?;
        self.pod
            .resize(&process, req.width, req.height)
            .await
            .map_err(to_rpc)?;
        Ok(Empty::new())
    }

    async fn connect(
        &self,
        _ctx: &TtrpcContext,
        req: ConnectRequest,
    ) -> ttrpc::Result<ConnectResponse> {
        Ok(ConnectResponse {
            shim_pid: std::process::id(),
            task_pid: self.pod.task_pid(&req.id).await.unwrap_or(0) as u32,
            ..Default::default()
        })
    }

    async fn checkpoint(
        &self,
        _ctx: &TtrpcContext,
        req: CheckpointTaskRequest,
    ) -> ttrpc::Result<Empty> {
        // runsc 20221219 checkpoints a whole sandbox only, and containerd's task checkpoint
        // would need the restore side too: refused clearly, as gVisor's shim does.
        warn!("checkpoint {} refused: not supported", req.id);
        Err(to_rpc(Error::Unimplemented("checkpoint of a task")))
    }

    async fn shutdown(&self, _ctx: &TtrpcContext, _req: ShutdownRequest) -> ttrpc::Result<Empty> {
        // containerd asks every shim to shut down after deleting its task; a shim still serving
        // containers (several per pod, containerd 2.x) stays.
        if self.pod.is_empty().await {
            info!("shutdown: no containers left, exiting");
            self.exit.signal();
        } else {
            info!("shutdown: containers remain, staying up");
        }
        Ok(Empty::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_codes() {
        let code = |e: Error| match to_rpc(e) {
            ttrpc::Error::RpcStatus(s) => s.code(),
            other => panic!("{other:?}"),
        };
        assert_eq!(code(Error::NotFound("x".into())), Code::NOT_FOUND);
        assert_eq!(code(Error::invalid("f", "r")), Code::INVALID_ARGUMENT);
        assert_eq!(code(Error::Options("o".into())), Code::INVALID_ARGUMENT);
        assert_eq!(
            code(Error::GuardRefused {
                container_id: "c".into(),
                reason: "r".into()
            }),
            Code::FAILED_PRECONDITION
        );
        assert_eq!(code(Error::Unimplemented("x")), Code::UNIMPLEMENTED);
        assert_eq!(
            code(Error::io(
                "reading",
                "/x",
                std::io::ErrorKind::NotFound.into()
            )),
            Code::UNKNOWN
        );
        assert_eq!(
            code(Error::os("creating a pipe", nix::errno::Errno::EMFILE)),
            Code::UNKNOWN
        );
        assert_eq!(
            code(Error::Cgroup(crate::cgroup::CgroupError::Symlink {
                path: "/sys/fs/cgroup/x".into()
            })),
            Code::UNKNOWN
        );
        assert_eq!(code(Error::Other("o".into())), Code::UNKNOWN);
    }

    #[tokio::test]
    async fn a_failed_task_maps_to_unknown() {
        let code = |e: Error| match to_rpc(e) {
            ttrpc::Error::RpcStatus(s) => s.code(),
            other => panic!("{other:?}"),
        };
        let join = tokio::spawn(std::future::pending::<()>());
        join.abort();
        let err = Error::task_failed("rootfs mount task", join.await.unwrap_err());
        assert_eq!(code(err), Code::UNKNOWN);
    }
}
