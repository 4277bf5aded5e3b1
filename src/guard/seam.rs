//! The guard at work on a host: the seam the shim's Create goes through, twice.
//!
//! [`Guard::before_create`] runs before anything is set up: it gathers the facts the pure
//! decision needs (runsc's version, from the [`RunscVersions`] it shares with the pod; the
//! host; the cgroup tree), decides, keeps a refusal's record and fails, or hands back the
//! runsc flags and the spec edits the shim writes into config.json. [`Guard::after_create`] runs once `runsc create` has returned:
//! it verifies the sandbox against the plan, widens its leaf, keeps the record in the bundle
//! and hands back the pod's OOM watch. The shim sees neither the plan nor the record.
//!
//! Every process runs through the shim's executor: inside the daemon the containerd-shim
//! library reaps all children, so `std::process::Command::output` would race it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use log::{info, warn};

use super::{decide, observe, verify, GuardInput, GuardRecord, HostFacts, Plan, Role, SpecEdit};
use crate::bundle::BundleSpec;
use crate::cgroup::{CgroupPath, CgroupTree, OomCounter, DEFAULT_CGROUP_ROOT};
use crate::error::{Error, Result};
use crate::options::{GuardMode, ShimConfig};
use crate::runsc::version::RunscVersion;
use crate::runsc::{Executor, RunscVersions};

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
    /// The host's facts; None reads them at every Create.
    host: Option<HostFacts>,
    /// The runsc releases the plans are made for, shared with the pod.
    versions: Arc<RunscVersions>,
}

/// What [`Guard::before_create`] decided, for the rest of the Create.
pub struct Guarded {
    runsc_config: BTreeMap<String, String>,
    /// The runsc the plan was made for; None when the guard is off and could not look.
    runsc_version: Option<RunscVersion>,
    decided: Option<Decided>,
}

/// A plan, with the tree it was made against and the bundle its record goes to.
struct Decided {
    plan: Plan,
    tree: CgroupTree,
    bundle: PathBuf,
}

impl Guarded {
    /// runsc.toml's `[runsc_config]` with the guard's flags merged over it: the global flags for
    /// every runsc call for this container.
    pub fn runsc_config(&self) -> &BTreeMap<String, String> {
        &self.runsc_config
    }

    /// The plan's edits to the bundle's spec; none when the guard did not plan.
    pub fn spec_edits(&self) -> &[SpecEdit] {
        self.decided.as_ref().map_or(&[], |d| &d.plan.edits)
    }

    /// The runsc release the plan was made for, when the guard asked.
    pub fn runsc_version(&self) -> Option<&RunscVersion> {
        self.runsc_version.as_ref()
    }
}

impl Guard {
    pub fn new(cgroup_root: PathBuf, proc_root: PathBuf, executor: Arc<dyn Executor>) -> Self {
        Guard {
            cgroup_root,
            proc_root,
            versions: Arc::new(RunscVersions::new(executor.clone())),
            executor,
            host: None,
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

    /// Uses these host facts instead of reading them from the running host (a node described
    /// by fixture trees, as the cgroup and proc roots are).
    pub fn with_host_facts(mut self, host: HostFacts) -> Self {
        self.host = Some(host);
        self
    }

    /// Before anything is set up: decides (rules 1-4, logged in one line), and either keeps the
    /// refusal's record in the bundle and fails, or hands back the runsc flags and the edits
    /// the plan makes to `spec` ([`Guarded::spec_edits`]), for the shim to apply and write
    /// with its own. When the guard is off and cannot even read the cgroup tree it changes
    /// nothing, as gVisor's shim would change nothing.
    pub async fn before_create(
        &self,
        id: &str,
        role: Role,
        spec: &BundleSpec,
        config: &ShimConfig,
    ) -> Result<Guarded> {
        let tree = crate::timing::span_sync("guard.tree", || self.tree(id, config.guard_mode));
        let Some(tree) = tree? else {
            return Ok(Guarded {
                runsc_config: config.runsc_config.clone(),
                runsc_version: None,
                decided: None,
            });
        };
        let state_root = Path::new(&config.root);
        let version = self
            .versions
            .version_in(&config.binary_name, Some(state_root))
            .await?;
        let plan = decide(&GuardInput {
            container_id: id,
            role,
            spec: spec.spec(),
            runsc_config: &config.runsc_config,
            mode: config.guard_mode,
            runsc_version: &version,
            host: self
                .host
                .unwrap_or_else(|| HostFacts::detect(&self.proc_root)),
            tree: &tree,
        });
        info!("{}", plan.summary());
        for w in &plan.warnings {
            warn!("{id}: {w}");
        }
        let bundle = spec.bundle().to_path_buf();
        if let Some(refusal) = plan.refusal() {
            keep_record(&GuardRecord::new(plan), &bundle);
            return Err(refusal);
        }
        Ok(Guarded {
            runsc_config: plan.runsc_config(&config.runsc_config),
            runsc_version: Some(version),
            decided: Some(Decided { plan, tree, bundle }),
        })
    }

    /// Once `runsc create` has returned with the sandbox's pid: verifies the sandbox against the
    /// plan (rule 5), widens its leaf when the plan says so and keeps the record in the bundle.
    /// Fails, in enforce mode, when the sandbox does not match the plan; otherwise hands back
    /// the pod cgroup's OOM counter, when there is one.
    pub async fn after_create(&self, guarded: &Guarded, pid: i32) -> Result<Option<OomCounter>> {
        let Some(decided) = &guarded.decided else {
            return Ok(None);
        };
        let (record, failure) = self.check_created(decided, pid).await;
        keep_record(&record, &decided.bundle);
        if let Some(e) = failure {
            return Err(e);
        }
        Ok(decided
            .plan
            .pod_cgroup
            .as_ref()
            .and_then(|pod| OomCounter::start(&decided.tree, pod)))
    }

    /// The cgroup tree, or None when the guard is off and cannot read it.
    fn tree(&self, id: &str, mode: GuardMode) -> Result<Option<CgroupTree>> {
        match CgroupTree::detect(&self.cgroup_root) {
            Ok(tree) => Ok(Some(tree)),
            Err(e) if mode == GuardMode::Off => {
                warn!("{id}: guard off and the cgroup tree is unreadable ({e}); no changes");
                Ok(None)
            }
            Err(e) => Err(Error::GuardRefused {
                container_id: id.to_string(),
                reason: format!(
                    "cannot read the cgroup tree at {}: {e}; the pod's bound cannot be checked \
                     (set guard_mode = \"warn\" or \"off\" in runsc.toml to run unchecked)",
                    self.cgroup_root.display()
                ),
            }),
        }
    }

    /// The runsc versions this guard plans with: the one service the shim asks them of.
    pub fn runsc_versions(&self) -> &Arc<RunscVersions> {
        &self.versions
    }

    /// The cgroup tree's root the guard reads (the environment's, for tests, or the host's).
    pub(crate) fn cgroup_root(&self) -> &Path {
        &self.cgroup_root
    }

    /// Where the guard looks for the sandbox process, likewise.
    pub(crate) fn proc_root(&self) -> &Path {
        &self.proc_root
    }

    pub(crate) fn executor(&self) -> &dyn Executor {
        self.executor.as_ref()
    }

    /// Checks the created sandbox and widens its leaf. Returns the record to keep and, in
    /// enforce mode, the error that must fail Create.
    async fn check_created(&self, decided: &Decided, pid: i32) -> (GuardRecord, Option<Error>) {
        let plan = &decided.plan;
        let mut record = GuardRecord::new(plan.clone());
        // Only a pod's sandbox carries a guarantee to check: a container joining it shares the
        // sandbox checked at its creation, and a container outside any pod (ctr, nerdctl) has
        // no bound to hold.
        if plan.mode == GuardMode::Off || plan.role != Role::Sandbox || plan.pod_cgroup.is_none() {
            return (record, None);
        }
        let id = &plan.container_id;
        let verification = match observe(&self.proc_root, pid, decided.tree.layout()) {
            Ok(observation) => verify(plan, &observation),
            Err(e) => {
                let err = Error::GuardRefused {
                    container_id: id.clone(),
                    reason: format!("cannot observe the sandbox process {pid}: {e}"),
                };
                return violation(record, err);
            }
        };
        let failure = verification.failure(id);
        let sits_in = verification.observation.cgroup.clone();
        record.verification = Some(verification);
        if let Some(err) = failure {
            return violation(record, err);
        }
        info!("{id}: runsc-guard verified the sandbox (pid {pid}) against the plan");
        if let Some(relax) = &plan.relax {
            // Only the leaf the sandbox was seen in is ever widened: anything else may hold
            // other pods.
            let planned = plan.leaf_cgroup.as_ref().map(|l| l.as_str());
            let seen = sits_in.as_deref().and_then(|c| CgroupPath::parse(c).ok());
            if seen.is_none() || seen.as_ref() != plan.leaf_cgroup.as_ref() {
                let e = format!(
                    "the sandbox sits in {}, not in the planned leaf {}: its leaf is not widened",
                    sits_in.as_deref().unwrap_or("no cgroup"),
                    planned.unwrap_or("none")
                );
                warn!("{id}: {e}");
                record.relax_error = Some(e);
                return (record, None);
            }
            let run = relax.run(&decided.tree, self.executor.as_ref());
            match crate::timing::span("guard.relax", run).await {
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
}

/// A failed check: fails Create in enforce mode, is logged and let through in warn mode.
fn violation(record: GuardRecord, err: Error) -> (GuardRecord, Option<Error>) {
    if record.plan.mode == GuardMode::Enforce {
        (record, Some(err))
    } else {
        warn!("{err} (guard_mode = \"warn\": going on)");
        (record, None)
    }
}

/// Keeps the guard's record in the bundle; a failure to write it is logged, never fatal.
fn keep_record(record: &GuardRecord, bundle: &Path) {
    if let Err(e) = record.write(bundle) {
        warn!(
            "{}: keeping the guard record: {e}",
            record.plan.container_id
        );
    }
}
