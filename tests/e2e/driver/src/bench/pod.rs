//! One bench pod, driven like kubelet drives it, every CRI call timed: its slice, RunPodSandbox,
//! CreateContainer and StartContainer of each container, the time until the container's first
//! command has run, StopPodSandbox and RemovePodSandbox.
//!
//! "Running" is when the container's shell has written a marker file into a host directory the
//! pod mounts: the same moment for every handler. containerd's CRI status is not, because
//! containerd's runc shim driving runsc (the stock path) holds StartContainer until the container
//! exits on some releases, so CRI never reports such a container RUNNING.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use k8s_cri::v1::{ContainerState, Mount, PodSandboxConfig};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use crate::cgroup;
use crate::cri::Cri;
use crate::pod::{self, PodIdentity, PodShape, PodSlice, Qos};
use crate::procs;
use crate::systemd;

/// Where the pods' marker directories live on the host.
pub const MARKER_ROOT: &str = "/run/e2e-bench";
/// Where the container sees its pod's marker directory.
const MARKER_MOUNT: &str = "/bench";

/// One pod's timings (ms); None where the call did not happen or did not return.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Sample {
    pub handler: String,
    pub round: usize,
    pub sandbox_id: String,
    pub container_ids: Vec<String>,
    pub run_pod_sandbox_ms: Option<f64>,
    pub create_container_ms: Option<f64>,
    /// None when StartContainer had not returned by the time the pod was stopped.
    pub start_container_ms: Option<f64>,
    /// RunPodSandbox sent -> the first container's command has run.
    pub to_running_ms: Option<f64>,
    /// RunPodSandbox sent -> CRI's ContainerStatus says RUNNING (if seen).
    pub cri_running_ms: Option<f64>,
    pub stop_pod_sandbox_ms: Option<f64>,
    pub remove_pod_sandbox_ms: Option<f64>,
    pub error: Option<String>,
}

impl Sample {
    /// The pod ran, but its StartContainer never returned: the stock path on containerd 1.6,
    /// where containerd's runc shim hands runsc the container's stdio the runc way. The pod can
    /// then not be stopped cleanly either; that is the path's defect, which the report shows.
    pub fn start_never_returned(&self) -> bool {
        self.to_running_ms.is_some() && self.start_container_ms.is_none()
    }

    /// Whether this sample is a failure of the bench: it has an error, unless the errors are
    /// the teardown of a pod whose StartContainer never returned (the start figures stand).
    pub fn failed(&self) -> bool {
        self.error.is_some() && !self.start_never_returned()
    }
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

/// A pod under test. `teardown` must run whatever happened before it.
pub struct BenchPod {
    cri: Cri,
    pub handler: String,
    pub slice: PodSlice,
    pub ident: PodIdentity,
    config: PodSandboxConfig,
    pub marker_dir: PathBuf,
    pub sandbox_id: Option<String>,
    pub containers: Vec<String>,
    starts: Vec<(JoinHandle<Result<()>>, Instant)>,
    sent: Option<Instant>,
    image: String,
}

impl BenchPod {
    /// The pod's slice (BestEffort, no limits: every handler and the guard accept it), its log
    /// and marker directories.
    pub async fn prepare(cri: &Cri, handler: &str, name: &str, image: &str) -> Result<BenchPod> {
        let uid = std::fs::read_to_string("/proc/sys/kernel/random/uuid")
            .context("reading /proc/sys/kernel/random/uuid for a pod uid")?
            .trim()
            .to_string();
        let slice = pod::pod_slice(Qos::BestEffort, &uid);
        systemd::start_slice(&slice.unit, None, cri.limit(60))
            .await
            .with_context(|| format!("creating the pod slice {}", slice.unit))?;
        let _ =
            cgroup::enable_controllers_down_to(&PathBuf::from(cgroup::CGROUP_ROOT), &slice.path);
        let ident = PodIdentity::new(name, &uid, &slice.unit);
        let shape = PodShape {
            qos: Qos::BestEffort,
            slice_memory_max: None,
            sandbox_memory_limit: None,
            overhead_memory: None,
            container_memory_limit: None,
        };
        let config = pod::sandbox_config(&ident, &shape);
        let marker_dir = PathBuf::from(MARKER_ROOT).join(&uid);
        std::fs::create_dir_all(&marker_dir)
            .with_context(|| format!("creating {}", marker_dir.display()))?;
        std::fs::create_dir_all(&ident.log_directory)
            .with_context(|| format!("creating {}", ident.log_directory))?;
        Ok(BenchPod {
            cri: cri.clone(),
            handler: handler.to_string(),
            slice,
            ident,
            config,
            marker_dir,
            sandbox_id: None,
            containers: Vec::new(),
            starts: Vec::new(),
            sent: None,
            image: image.to_string(),
        })
    }

    /// RunPodSandbox; its time in ms.
    pub async fn run_sandbox(&mut self) -> Result<f64> {
        let t = Instant::now();
        self.sent = Some(t);
        let id = self
            .cri
            .run_pod_sandbox(self.config.clone(), &self.handler)
            .await?;
        let took = ms(t);
        self.sandbox_id = Some(id);
        Ok(took)
    }

    fn marker(&self, name: &str) -> PathBuf {
        self.marker_dir.join(format!("ready-{name}"))
    }

    /// CreateContainer of container `name` (a shell that writes its marker, then sleeps); its
    /// id and time in ms.
    pub async fn create(&mut self, name: &str) -> Result<(String, f64)> {
        let sandbox = self
            .sandbox_id
            .clone()
            .ok_or_else(|| anyhow!("CreateContainer before RunPodSandbox"))?;
        std::fs::create_dir_all(std::path::Path::new(&self.ident.log_directory).join(name))
            .with_context(|| format!("creating the log directory of {name}"))?;
        let mut config = pod::container_config(&pod::ContainerSpec {
            name,
            image: &self.image,
            command: vec![
                "/bin/sh".into(),
                "-c".into(),
                format!("echo ready > {MARKER_MOUNT}/ready-{name}; exec sleep 100000"),
            ],
            memory_limit: None,
            oom_score_adj: 1000,
        });
        config.mounts = vec![Mount {
            container_path: MARKER_MOUNT.into(),
            host_path: self.marker_dir.display().to_string(),
            ..Default::default()
        }];
        let t = Instant::now();
        let id = self
            .cri
            .create_container(&sandbox, config, self.config.clone())
            .await?;
        let took = ms(t);
        self.containers.push(id.clone());
        Ok((id, took))
    }

    /// Sends StartContainer for container `id` in the background: it may block (see the module
    /// comment). `wait_running` collects it.
    pub fn start(&mut self, id: &str) {
        let mut cri = self.cri.clone();
        let cid = id.to_string();
        let limit = cri.limit(600);
        let sent = Instant::now();
        self.starts.push((
            tokio::spawn(async move { cri.start_container(&cid, limit).await }),
            sent,
        ));
    }

    /// Waits until container `name` (`id`, the last one started) has run its command; returns
    /// (ms since RunPodSandbox was sent, StartContainer's ms if it returned, CRI RUNNING's ms if
    /// seen). A StartContainer that fails ends the wait with its error.
    pub async fn wait_running(
        &mut self,
        name: &str,
        id: &str,
        limit: Duration,
    ) -> Result<(f64, Option<f64>, Option<f64>)> {
        let sent = self.sent.unwrap_or_else(Instant::now);
        let marker = self.marker(name);
        let deadline = Instant::now() + limit;
        let mut start_ms = None;
        let mut cri_ms = None;
        let mut ready = None;
        let mut last_status = Instant::now();
        let mut cri = self.cri.clone();
        loop {
            if let Some((task, t)) = self.starts.last_mut() {
                if start_ms.is_none() && task.is_finished() {
                    let took = ms(*t);
                    match task.await {
                        Ok(Ok(())) => start_ms = Some(took),
                        Ok(Err(e)) => return Err(e.context("StartContainer failed")),
                        Err(e) => bail!("StartContainer's task: {e}"),
                    }
                }
            }
            if ready.is_none() && marker.exists() {
                ready = Some(ms(sent));
            }
            // CRI's status costs containerd work: asked far less often than the marker.
            if cri_ms.is_none() && last_status.elapsed() >= Duration::from_millis(200) {
                last_status = Instant::now();
                if let Ok(st) = cri.container_state(id).await {
                    if st.state == ContainerState::ContainerRunning as i32 {
                        cri_ms = Some(ms(sent));
                    }
                }
            }
            if let Some(r) = ready {
                // StartContainer normally returns at once; give a blocked one a moment.
                let settled = start_ms.is_some() || ms(sent) - r > 3000.0;
                if settled {
                    return Ok((r, start_ms, cri_ms));
                }
            }
            if Instant::now() >= deadline {
                bail!(
                    "container {name} had not run its command {:.0} s after StartContainer \
                     (no {}; StartContainer {})",
                    limit.as_secs_f64(),
                    marker.display(),
                    if start_ms.is_some() {
                        "returned"
                    } else {
                        "pending"
                    }
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// StopPodSandbox and RemovePodSandbox, timed; then the slice and the directories go.
    /// Returns (stop ms, remove ms) and what went wrong on the way.
    pub async fn teardown(mut self) -> (Option<f64>, Option<f64>, Vec<String>) {
        let mut problems = Vec::new();
        let (mut stop_ms, mut remove_ms) = (None, None);
        if let Some(id) = self.sandbox_id.clone() {
            // A StartContainer still pending (the stock path's on containerd 1.6) holds its
            // shim: StopPodSandbox would wait for it, then time out after a minute, and the
            // sandbox would stay behind to weigh on the next samples. Giving up on the start
            // (containerd cancels it, as kubelet's timeout would) and killing the pod's runsc
            // processes lets the pod go at once; its stop is then not a figure worth timing.
            let mut pending = false;
            for (task, _) in self.starts.drain(..) {
                pending |= !task.is_finished();
                task.abort();
            }
            if pending {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let killed = procs::kill_runsc_of(&id, Duration::from_secs(1)).await;
                let what = match (&killed.problem, killed.pids.is_empty()) {
                    (Some(p), _) => p.clone(),
                    (None, true) => "none found".to_string(),
                    (None, false) => format!("pids {}", killed.pids.join(" ")),
                };
                problems.push(format!(
                    "StopPodSandbox not timed: StartContainer never returned, so the pod's runsc \
                     processes were killed first ({what})"
                ));
                if let Err(e) = self.cri.stop_pod_sandbox(&id).await {
                    problems.push(format!("StopPodSandbox: {e:#}"));
                }
            } else {
                let t = Instant::now();
                match self.cri.stop_pod_sandbox(&id).await {
                    Ok(()) => stop_ms = Some(ms(t)),
                    Err(e) => problems.push(format!("StopPodSandbox: {e:#}")),
                }
            }
            let t = Instant::now();
            match self.cri.remove_pod_sandbox(&id).await {
                Ok(()) => remove_ms = Some(ms(t)),
                Err(e) => problems.push(format!("RemovePodSandbox: {e:#}")),
            }
        }
        problems.extend(systemd::remove_slice(&self.slice.unit, self.cri.limit(60)).await);
        let _ = std::fs::remove_dir_all(&self.marker_dir);
        let _ = std::fs::remove_dir_all(&self.ident.log_directory);
        (stop_ms, remove_ms, problems)
    }
}

/// One interleaved sample: a one-container pod from RunPodSandbox to removed.
pub async fn sample(cri: &Cri, handler: &str, round: usize, image: &str) -> Sample {
    let mut s = Sample {
        handler: handler.to_string(),
        round,
        ..Default::default()
    };
    let name = format!("bench-{round}");
    let mut p = match BenchPod::prepare(cri, handler, &name, image).await {
        Ok(p) => p,
        Err(e) => {
            s.error = Some(format!("{e:#}"));
            return s;
        }
    };
    let result = async {
        s.run_pod_sandbox_ms = Some(p.run_sandbox().await?);
        s.sandbox_id = p.sandbox_id.clone().unwrap_or_default();
        let (id, create) = p.create("c0").await?;
        s.create_container_ms = Some(create);
        s.container_ids.push(id.clone());
        p.start(&id);
        let (ready, start, cri_ms) = p.wait_running("c0", &id, cri.limit(180)).await?;
        s.to_running_ms = Some(ready);
        s.start_container_ms = start;
        s.cri_running_ms = cri_ms;
        Ok::<_, anyhow::Error>(())
    }
    .await;
    if let Err(e) = result {
        s.error = Some(format!("{e:#}"));
    }
    let (stop, remove, problems) = p.teardown().await;
    s.stop_pod_sandbox_ms = stop;
    s.remove_pod_sandbox_ms = remove;
    if !problems.is_empty() {
        let e = problems.join("; ");
        s.error = Some(match s.error.take() {
            Some(first) => format!("{first}; {e}"),
            None => e,
        });
    }
    s
}
