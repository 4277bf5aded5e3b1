//! The guard's I/O for the shim: the facts its pure decision needs (runsc's version, cached per
//! binary; the host's cgroup tree), and what happens after `runsc create` (observing the
//! sandbox, widening its leaf). The decision itself is `guard::plan`.
//!
//! Every process runs through the shim's executor: inside the daemon the containerd-shim
//! library reaps all children, so `std::process::Command::output` would race it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use log::{info, warn};
use oci_spec::runtime::Spec;
use tokio::process::Command;

use crate::annotations::Role;
use crate::cgroup::{CgroupTree, DEFAULT_CGROUP_ROOT};
use crate::error::{Error, Result};
use crate::guard::{self, GuardInput, GuardRecord, HostFacts, Plan, RelaxTarget};
use crate::options::{GuardMode, ShimConfig};
use crate::runsc::version::{resolve_binary, RunscVersion};
use crate::runsc::Executor;
use crate::shim::oom::OomCounter;

/// Overrides the cgroup root the guard reads (default /sys/fs/cgroup): for tests and for
/// diagnosing a node from a container that mounts the host's cgroupfs elsewhere.
pub const CGROUP_ROOT_ENV: &str = "RUNSC_GUARD_CGROUP_ROOT";
/// Overrides where the guard looks for the sandbox process (default /proc), likewise.
pub const PROC_ROOT_ENV: &str = "RUNSC_GUARD_PROC_ROOT";

/// The guard's view of the host, shared by every Create of this shim.
pub struct Guard {
    cgroup_root: PathBuf,
    proc_root: PathBuf,
    executor: Arc<dyn Executor>,
    versions: Mutex<HashMap<(PathBuf, Option<SystemTime>), RunscVersion>>,
}

/// A plan ready to apply, with the tree it was made against.
pub struct Planned {
    pub plan: Plan,
    tree: CgroupTree,
}

impl Guard {
    pub fn new(cgroup_root: PathBuf, proc_root: PathBuf, executor: Arc<dyn Executor>) -> Self {
        Guard {
            cgroup_root,
            proc_root,
            executor,
            versions: Mutex::new(HashMap::new()),
        }
    }

    /// The host's roots, or the ones the environment names.
    pub fn from_env(executor: Arc<dyn Executor>) -> Self {
        let var = |name: &str, default: &str| {
            std::env::var_os(name)
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(default))
        };
        Guard::new(
            var(CGROUP_ROOT_ENV, DEFAULT_CGROUP_ROOT),
            var(PROC_ROOT_ENV, "/proc"),
            executor,
        )
    }

    /// The version of a runsc binary, asked once per binary (and again if the file changes).
    pub async fn runsc_version(&self, binary_name: &str) -> Result<RunscVersion> {
        let binary = resolve_binary(binary_name).ok_or_else(|| Error::Runsc {
            command: "--version".into(),
            message: format!(
                "runsc binary {binary_name:?} not found: install runsc or set binary_name in \
                 runsc.toml"
            ),
        })?;
        let mtime = std::fs::metadata(&binary).and_then(|m| m.modified()).ok();
        let key = (binary.clone(), mtime);
        if let Some(v) = self.cached(&key) {
            return Ok(v);
        }
        let mut cmd = Command::new(&binary);
        cmd.arg("--version")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let out = self.executor.run(cmd).await.map_err(|e| Error::Runsc {
            command: "--version".into(),
            message: format!("cannot run {}: {e}", binary.display()),
        })?;
        let version = RunscVersion::from_version_output(&String::from_utf8_lossy(&out.stdout));
        if !version.is_known() {
            warn!(
                "{}: runsc version not recognised ({:?}); the guard assumes the oldest behaviour",
                binary.display(),
                String::from_utf8_lossy(&out.stdout).trim()
            );
        }
        self.versions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, version.clone());
        Ok(version)
    }

    fn cached(&self, key: &(PathBuf, Option<SystemTime>)) -> Option<RunscVersion> {
        self.versions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
    }

    /// The guard's decision for a container (rules 1-4), logged in one line. None when the guard
    /// is off and cannot even read the cgroup tree: then nothing is changed, as gVisor's shim
    /// would change nothing.
    pub async fn plan(
        &self,
        id: &str,
        role: &Role,
        spec: &Spec,
        config: &ShimConfig,
    ) -> Result<Option<Planned>> {
        let tree = match CgroupTree::detect(&self.cgroup_root) {
            Ok(tree) => tree,
            Err(e) if config.guard_mode == GuardMode::Off => {
                warn!("{id}: guard off and the cgroup tree is unreadable ({e}); no changes");
                return Ok(None);
            }
            Err(e) => {
                return Err(Error::GuardRefused {
                    container_id: id.to_string(),
                    reason: format!(
                        "cannot read the cgroup tree at {}: {e}; the pod's bound cannot be \
                         checked (set guard_mode = \"warn\" or \"off\" in runsc.toml to run \
                         unchecked)",
                        self.cgroup_root.display()
                    ),
                })
            }
        };
        let version = self.runsc_version(&config.binary_name).await?;
        let plan = guard::decide(&GuardInput {
            container_id: id,
            role: *role,
            spec,
            runsc_config: &config.runsc_config,
            mode: config.guard_mode,
            runsc_version: &version,
            host: HostFacts::detect(),
            tree: &tree,
        });
        info!("{}", plan.summary());
        for w in &plan.warnings {
            warn!("{id}: {w}");
        }
        Ok(Some(Planned { plan, tree }))
    }

    /// After `runsc create` of a sandbox: checks the sandbox against the plan (rule 5) and widens
    /// its leaf when the plan says so. Returns the record to keep and, in enforce mode, the
    /// error that must fail Create.
    pub async fn check_created(&self, planned: &Planned, pid: i32) -> (GuardRecord, Option<Error>) {
        let plan = &planned.plan;
        let mut record = GuardRecord::new(plan.clone());
        let tree = &planned.tree;
        // Only a pod's sandbox carries a guarantee to check: a container joining it shares the
        // sandbox checked at its creation, and a container outside any pod (ctr, nerdctl) has
        // no bound to hold.
        if plan.mode == GuardMode::Off || plan.role != Role::Sandbox || plan.pod_cgroup.is_none() {
            return (record, None);
        }
        let id = &plan.container_id;
        let verification = match guard::observe(&self.proc_root, pid, tree.layout()) {
            Ok(observation) => guard::verify(plan, &observation),
            Err(e) => {
                let err = Error::GuardRefused {
                    container_id: id.clone(),
                    reason: format!("cannot observe the sandbox process {pid}: {e}"),
                };
                return self.violation(record, err);
            }
        };
        let failure = verification.failure(id);
        record.verification = Some(verification);
        if let Some(err) = failure {
            return self.violation(record, err);
        }
        info!("{id}: runsc-guard verified the sandbox (pid {pid}) against the plan");
        if let Some(relax) = &plan.relax {
            match self.relax(relax, tree).await {
                Ok(()) => {
                    info!("{id}: runsc-guard widened the sandbox's leaf {relax}");
                    record.relaxed = true;
                }
                Err(e) => {
                    warn!("{id}: {e}");
                    record.relax_error = Some(e.to_string());
                }
            }
        }
        (record, None)
    }

    fn violation(&self, record: GuardRecord, err: Error) -> (GuardRecord, Option<Error>) {
        if record.plan.mode == GuardMode::Enforce {
            (record, Some(err))
        } else {
            warn!("{err} (guard_mode = \"warn\": going on)");
            (record, None)
        }
    }

    async fn relax(&self, relax: &guard::LeafRelaxation, tree: &CgroupTree) -> Result<()> {
        match &relax.target {
            RelaxTarget::SystemdScope { unit } => {
                let args = relax.systemctl_args().unwrap_or_default();
                let mut cmd = Command::new("systemctl");
                cmd.args(&args)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped());
                let out = self
                    .executor
                    .run(cmd)
                    .await
                    .map_err(|e| Error::io("cannot run systemctl for", unit.as_str(), e))?;
                if out.status == 0 {
                    Ok(())
                } else {
                    Err(Error::Other(format!(
                        "systemctl {} failed: {}; the sandbox keeps the limit {} on {unit}",
                        args.join(" "),
                        String::from_utf8_lossy(&out.stderr).trim(),
                        relax.from
                    )))
                }
            }
            RelaxTarget::Cgroup { .. } => relax.apply(tree, &guard::SystemCommands),
        }
    }
}

impl Planned {
    /// Starts counting OOM kills in the pod's cgroup, when there is one.
    pub fn oom_counter(&self) -> Option<OomCounter> {
        let pod = self.plan.pod_cgroup.as_ref()?;
        OomCounter::start(&self.tree, pod)
    }
}

/// Keeps the guard's record in the bundle; a failure to write it is logged, never fatal.
pub fn keep_record(record: &GuardRecord, bundle: &Path) {
    if let Err(e) = record.write(bundle) {
        warn!(
            "{}: keeping the guard record: {e}",
            record.plan.container_id
        );
    }
}
