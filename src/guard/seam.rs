//! The guard at work on a host: the seam the shim's Create goes through, twice.
//!
//! [`Guard::before_create`] runs before anything is set up: it gathers the facts the pure
//! decision needs (runsc's version, asked once per binary file on the node; the host; the
//! cgroup tree), decides, keeps a refusal's record and fails, or edits the bundle's spec and
//! hands back the runsc flags. [`Guard::after_create`] runs once `runsc create` has returned:
//! it verifies the sandbox against the plan, widens its leaf, keeps the record in the bundle
//! and hands back the pod's OOM watch. The shim sees neither the plan nor the record.
//!
//! Every process runs through the shim's executor: inside the daemon the containerd-shim
//! library reaps all children, so `std::process::Command::output` would race it.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use log::{debug, info, warn};
use tokio::sync::OnceCell;

use super::{decide, observe, verify, GuardInput, GuardRecord, HostFacts, Plan, Role};
use crate::bundle::BundleSpec;
use crate::cgroup::{CgroupPath, CgroupTree, OomCounter, DEFAULT_CGROUP_ROOT};
use crate::error::{Error, Result, RunscFailure};
use crate::options::{GuardMode, ShimConfig};
use crate::runsc::version::{self, resolve_binary, RunscVersion};
use crate::runsc::version_cache::{self, BinaryId, Lookup};
use crate::runsc::Executor;

/// Overrides the cgroup root the guard reads (default /sys/fs/cgroup): for tests and for
/// diagnosing a node from a container that mounts the host's cgroupfs elsewhere.
pub const CGROUP_ROOT_ENV: &str = "RUNSC_GUARD_CGROUP_ROOT";
/// Overrides where the guard looks for the sandbox process (default /proc), likewise.
pub const PROC_ROOT_ENV: &str = "RUNSC_GUARD_PROC_ROOT";

/// A binary as it was found, and the file's identity when it could be read.
type VersionKey = (PathBuf, Option<BinaryId>);

/// The guard's view of the host, shared by every Create of this shim.
pub struct Guard {
    cgroup_root: PathBuf,
    proc_root: PathBuf,
    executor: Arc<dyn Executor>,
    /// The host's facts; None reads them at every Create.
    host: Option<HostFacts>,
    /// One probe per binary: callers that ask while it runs wait for the same answer.
    versions: Mutex<HashMap<VersionKey, Arc<OnceCell<RunscVersion>>>>,
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
            executor,
            host: None,
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

    /// Uses these host facts instead of reading them from the running host (a node described
    /// by fixture trees, as the cgroup and proc roots are).
    pub fn with_host_facts(mut self, host: HostFacts) -> Self {
        self.host = Some(host);
        self
    }

    /// Before anything is set up: decides (rules 1-4, logged in one line), and either keeps the
    /// refusal's record in the bundle and fails, or applies the spec edits to the bundle's
    /// config.json and hands back the runsc flags. config.json is written here, once, with the
    /// edits the shim made to `spec` before (the pod's volumes) and the plan's. When the guard
    /// is off and cannot even read the cgroup tree it changes nothing, as gVisor's shim would
    /// change nothing.
    pub async fn before_create(
        &self,
        id: &str,
        role: Role,
        spec: &mut BundleSpec,
        config: &ShimConfig,
    ) -> Result<Guarded> {
        let decided = self.decide_and_edit(id, role, spec, config).await;
        // One write per Create: the plan's edits with the shim's before them; when the guard
        // fails Create, the shim's alone, as they were before the guard ran. The guard's error
        // is the one reported.
        let saved = crate::timing::span_sync("spec.save", || spec.save_if_changed());
        let guarded = decided?;
        saved?;
        Ok(guarded)
    }

    async fn decide_and_edit(
        &self,
        id: &str,
        role: Role,
        spec: &mut BundleSpec,
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
            .runsc_version_in(&config.binary_name, Some(state_root))
            .await?;
        let plan = decide(&GuardInput {
            container_id: id,
            role,
            spec: spec.spec(),
            runsc_config: &config.runsc_config,
            mode: config.guard_mode,
            runsc_version: &version,
            host: self.host.unwrap_or_else(HostFacts::detect),
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
        if !plan.edits.is_empty() {
            spec.apply(&plan.edits)?;
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

    pub(crate) fn cgroup_root(&self) -> &Path {
        &self.cgroup_root
    }

    pub(crate) fn proc_root(&self) -> &Path {
        &self.proc_root
    }

    pub(crate) fn executor(&self) -> &dyn Executor {
        self.executor.as_ref()
    }

    /// The version of a runsc binary, asked once per binary (and again if the file changes).
    pub async fn runsc_version(&self, binary_name: &str) -> Result<RunscVersion> {
        self.runsc_version_in(binary_name, None).await
    }

    /// The same, sharing the answer with the node's other shims through the cache file in
    /// `state_root` (runsc.toml's `root`, see `runsc::version_cache`): only the first shim to
    /// meet a binary runs `runsc --version`.
    pub async fn runsc_version_in(
        &self,
        binary_name: &str,
        state_root: Option<&Path>,
    ) -> Result<RunscVersion> {
        let binary = resolve_binary(binary_name).ok_or_else(|| {
            Error::runsc(
                "--version",
                RunscFailure::BinaryUnavailable,
                format!(
                    "runsc binary {binary_name:?} not found: install runsc or set binary_name in \
                     runsc.toml"
                ),
            )
        })?;
        let id = BinaryId::of(&binary).ok();
        let cell = self
            .versions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((binary.clone(), id.clone()))
            .or_default()
            .clone();
        let shared = state_root.zip(id.as_ref());
        cell.get_or_try_init(|| async {
            let version = match shared {
                Some((root, id)) => self.shared_version(root, id, &binary).await?,
                None => version::detect(self.executor.as_ref(), &binary).await?,
            };
            if !version.knows_its_release() {
                warn!(
                    "{}: runsc version not recognised ({version}); the guard assumes the oldest \
                     behaviour",
                    binary.display(),
                );
            } else if !version.is_known() {
                info!(
                    "{}: runsc {version}: the guard goes by that release",
                    binary.display(),
                );
            }
            Ok::<_, Error>(version)
        })
        .await
        .cloned()
    }

    /// The version the node's shims keep in `state_root`'s cache for this binary file, or, on a
    /// miss or an untrusted cache, runsc's own answer, then kept there for the next shim.
    async fn shared_version(
        &self,
        state_root: &Path,
        id: &BinaryId,
        binary: &Path,
    ) -> Result<RunscVersion> {
        match version_cache::lookup(state_root, id) {
            Lookup::Hit(version) => return Ok(version),
            Lookup::Ignored(why) => {
                let file = state_root.join(version_cache::CACHE_FILE);
                debug!("{}: not using it ({why}); asking runsc", file.display());
            }
            Lookup::Miss => {}
        }
        let version = version::detect(self.executor.as_ref(), binary).await?;
        remember(state_root, id, binary, &version);
        Ok(version)
    }

    /// Asks a runsc's version now (the binary and state root `start` was configured with, or
    /// the default runsc), so that the pod's first Create finds it known: the probe is a whole
    /// Go start-up (120-190 ms under emulation), made while containerd is still connecting to
    /// the new shim. A failure here is only logged; Create asks again and reports.
    pub async fn warm_up(&self, binary_name: Option<&str>, state_root: Option<&Path>) {
        let binary = binary_name.unwrap_or(crate::options::DEFAULT_BINARY);
        if let Err(e) = self.runsc_version_in(binary, state_root).await {
            debug!("warm-up: runsc --version: {e}");
        }
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

/// Shares a probed version with the node's other shims, unless the binary changed while it
/// answered (the answer would then be the new file's, under the old file's key). A failure only
/// costs the next shim a probe.
fn remember(state_root: &Path, id: &BinaryId, binary: &Path, version: &RunscVersion) {
    if BinaryId::of(binary).ok().as_ref() != Some(id) {
        debug!("{}: changed while asked; not cached", binary.display());
        return;
    }
    if let Err(e) = version_cache::store(state_root, id, version) {
        let file = state_root.join(version_cache::CACHE_FILE);
        debug!("{}: cannot keep runsc's version: {e}", file.display());
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
