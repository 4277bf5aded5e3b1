//! containerd's CRI v1 over its unix socket, every call bounded by a timeout.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{
    AttachRequest, ContainerStatsFilter, ContainerStatsRequest, ContainerStatus,
    ContainerStatusRequest, ContainerStatusResponse, CreateContainerRequest, ExecRequest,
    ExecSyncRequest, ExecSyncResponse, ImageSpec, ImageStatusRequest, ListContainerStatsRequest,
    ListPodSandboxRequest, PodSandbox, PodSandboxConfig, PodSandboxFilter, PodSandboxStatusRequest,
    PodSandboxStatusResponse, RemoveContainerRequest, RemovePodSandboxRequest,
    RunPodSandboxRequest, StartContainerRequest, StopContainerRequest, StopPodSandboxRequest,
    UpdateContainerResourcesRequest, VersionRequest, VersionResponse,
};
use tonic::transport::{Channel, Endpoint, Uri};
use tower::service_fn;

/// A CRI connection. Cheap to clone: clones share the channel.
#[derive(Clone)]
pub struct Cri {
    runtime: RuntimeServiceClient<Channel>,
    images: ImageServiceClient<Channel>,
    /// Multiplies every timeout (software emulation is slow).
    pub scale: f64,
}

/// Waits for one CRI answer, naming the call in every error.
async fn answer<T>(
    what: &str,
    limit: Duration,
    call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T> {
    match tokio::time::timeout(limit, call).await {
        Err(_) => bail!("{what}: no answer within {:.0} s", limit.as_secs_f64()),
        Ok(Err(status)) => Err(anyhow!(
            "{what}: {} (code {:?})",
            status.message(),
            status.code()
        )),
        Ok(Ok(r)) => Ok(r.into_inner()),
    }
}

impl Cri {
    pub async fn connect(socket: PathBuf, scale: f64) -> Result<Self> {
        let endpoint = Endpoint::try_from("http://[::]")?.connect_timeout(Duration::from_secs(10));
        let channel = endpoint
            .connect_with_connector(service_fn(move |_: Uri| {
                let socket = socket.clone();
                async move {
                    Ok::<_, std::io::Error>(TokioIo::new(
                        tokio::net::UnixStream::connect(socket).await?,
                    ))
                }
            }))
            .await
            .context("connecting to the CRI socket")?;
        Ok(Cri {
            runtime: RuntimeServiceClient::new(channel.clone()),
            images: ImageServiceClient::new(channel),
            scale,
        })
    }

    pub fn limit(&self, secs: u64) -> Duration {
        Duration::from_secs_f64(secs as f64 * self.scale.max(0.1))
    }

    pub async fn version(&mut self) -> Result<VersionResponse> {
        let limit = self.limit(15);
        answer(
            "Version",
            limit,
            self.runtime.version(VersionRequest {
                version: "v1".into(),
            }),
        )
        .await
    }

    /// Whether containerd has `image` (the suite imports images; nothing is pulled).
    pub async fn image_present(&mut self, image: &str) -> Result<bool> {
        let limit = self.limit(30);
        let r = answer(
            "ImageStatus",
            limit,
            self.images.image_status(ImageStatusRequest {
                image: Some(ImageSpec {
                    image: image.into(),
                    ..Default::default()
                }),
                verbose: false,
            }),
        )
        .await?;
        Ok(r.image.is_some())
    }

    pub async fn run_pod_sandbox(
        &mut self,
        config: PodSandboxConfig,
        handler: &str,
    ) -> Result<String> {
        let limit = self.limit(180);
        let r = answer(
            "RunPodSandbox",
            limit,
            self.runtime.run_pod_sandbox(RunPodSandboxRequest {
                config: Some(config),
                runtime_handler: handler.into(),
            }),
        )
        .await?;
        Ok(r.pod_sandbox_id)
    }

    pub async fn pod_sandbox_status(&mut self, id: &str) -> Result<PodSandboxStatusResponse> {
        let limit = self.limit(30);
        answer(
            "PodSandboxStatus",
            limit,
            self.runtime.pod_sandbox_status(PodSandboxStatusRequest {
                pod_sandbox_id: id.into(),
                verbose: true,
            }),
        )
        .await
    }

    /// Sandboxes carrying label `key=value`.
    pub async fn list_pod_sandboxes(&mut self, key: &str, value: &str) -> Result<Vec<PodSandbox>> {
        let limit = self.limit(30);
        let r = answer(
            "ListPodSandbox",
            limit,
            self.runtime.list_pod_sandbox(ListPodSandboxRequest {
                filter: Some(PodSandboxFilter {
                    label_selector: [(key.to_string(), value.to_string())].into(),
                    ..Default::default()
                }),
            }),
        )
        .await?;
        Ok(r.items)
    }

    pub async fn create_container(
        &mut self,
        sandbox_id: &str,
        config: k8s_cri::v1::ContainerConfig,
        sandbox_config: PodSandboxConfig,
    ) -> Result<String> {
        let limit = self.limit(120);
        let r = answer(
            "CreateContainer",
            limit,
            self.runtime.create_container(CreateContainerRequest {
                pod_sandbox_id: sandbox_id.into(),
                config: Some(config),
                sandbox_config: Some(sandbox_config),
            }),
        )
        .await?;
        Ok(r.container_id)
    }

    /// StartContainer with a caller-chosen limit: giving up on it cancels the RPC, and containerd
    /// then kills the task, so callers that watch the container meanwhile pass a long one.
    pub async fn start_container(&mut self, id: &str, limit: Duration) -> Result<()> {
        answer(
            "StartContainer",
            limit,
            self.runtime.start_container(StartContainerRequest {
                container_id: id.into(),
            }),
        )
        .await
        .map(|_| ())
    }

    pub async fn container_status(
        &mut self,
        id: &str,
        verbose: bool,
    ) -> Result<ContainerStatusResponse> {
        let limit = self.limit(30);
        answer(
            "ContainerStatus",
            limit,
            self.runtime.container_status(ContainerStatusRequest {
                container_id: id.into(),
                verbose,
            }),
        )
        .await
    }

    pub async fn container_state(&mut self, id: &str) -> Result<ContainerStatus> {
        self.container_status(id, false)
            .await?
            .status
            .ok_or_else(|| anyhow!("ContainerStatus for {id}: answer without a status"))
    }

    pub async fn container_stats(&mut self, id: &str) -> Result<k8s_cri::v1::ContainerStats> {
        let limit = self.limit(30);
        let r = answer(
            "ContainerStats",
            limit,
            self.runtime.container_stats(ContainerStatsRequest {
                container_id: id.into(),
            }),
        )
        .await?;
        r.stats
            .ok_or_else(|| anyhow!("ContainerStats for {id}: answer without stats"))
    }

    /// ListContainerStats of one pod's containers.
    pub async fn list_container_stats(
        &mut self,
        sandbox_id: &str,
    ) -> Result<Vec<k8s_cri::v1::ContainerStats>> {
        let limit = self.limit(30);
        let r = answer(
            "ListContainerStats",
            limit,
            self.runtime
                .list_container_stats(ListContainerStatsRequest {
                    filter: Some(ContainerStatsFilter {
                        pod_sandbox_id: sandbox_id.into(),
                        ..Default::default()
                    }),
                }),
        )
        .await?;
        Ok(r.stats)
    }

    pub async fn exec_sync(
        &mut self,
        id: &str,
        cmd: &[String],
        secs: u64,
    ) -> Result<ExecSyncResponse> {
        let limit = self.limit(secs + 15);
        answer(
            "ExecSync",
            limit,
            self.runtime.exec_sync(ExecSyncRequest {
                container_id: id.into(),
                cmd: cmd.to_vec(),
                timeout: i64::try_from(secs).unwrap_or(i64::MAX),
            }),
        )
        .await
    }

    /// UpdateContainerResources, as kubelet sends it for an in-place resize.
    pub async fn update_container_resources(
        &mut self,
        id: &str,
        resources: k8s_cri::v1::LinuxContainerResources,
    ) -> Result<()> {
        let limit = self.limit(60);
        answer(
            "UpdateContainerResources",
            limit,
            self.runtime
                .update_container_resources(UpdateContainerResourcesRequest {
                    container_id: id.into(),
                    linux: Some(resources),
                    ..Default::default()
                }),
        )
        .await
        .map(|_| ())
    }

    /// Exec for the streaming server: the URL to connect to.
    pub async fn exec(&mut self, req: ExecRequest) -> Result<String> {
        let limit = self.limit(30);
        let r = answer("Exec", limit, self.runtime.exec(req)).await?;
        Ok(r.url)
    }

    /// Attach to a running container's stdio: the streaming URL.
    pub async fn attach(&mut self, req: AttachRequest) -> Result<String> {
        let limit = self.limit(30);
        let r = answer("Attach", limit, self.runtime.attach(req)).await?;
        Ok(r.url)
    }

    pub async fn stop_pod_sandbox(&mut self, id: &str) -> Result<()> {
        let limit = self.limit(60);
        answer(
            "StopPodSandbox",
            limit,
            self.runtime.stop_pod_sandbox(StopPodSandboxRequest {
                pod_sandbox_id: id.into(),
            }),
        )
        .await
        .map(|_| ())
    }

    pub async fn remove_pod_sandbox(&mut self, id: &str) -> Result<()> {
        let limit = self.limit(60);
        answer(
            "RemovePodSandbox",
            limit,
            self.runtime.remove_pod_sandbox(RemovePodSandboxRequest {
                pod_sandbox_id: id.into(),
            }),
        )
        .await
        .map(|_| ())
    }

    /// StopContainer with `grace` seconds before the runtime kills it.
    pub async fn stop_container(&mut self, id: &str, grace: i64) -> Result<()> {
        let limit = self.limit(60 + grace.unsigned_abs());
        answer(
            "StopContainer",
            limit,
            self.runtime.stop_container(StopContainerRequest {
                container_id: id.into(),
                timeout: grace,
            }),
        )
        .await
        .map(|_| ())
    }

    pub async fn remove_container(&mut self, id: &str) -> Result<()> {
        let limit = self.limit(60);
        answer(
            "RemoveContainer",
            limit,
            self.runtime.remove_container(RemoveContainerRequest {
                container_id: id.into(),
            }),
        )
        .await
        .map(|_| ())
    }
}
