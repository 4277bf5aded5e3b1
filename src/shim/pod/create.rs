//! Create: the guard's two calls around the set-up and `runsc create`, with every step that
//! was done recorded in a [`Rollback`] that undoes it when a later one fails.

use std::path::PathBuf;
use std::sync::Arc;

use log::{info, warn};

use super::{CreateTask, Pod, PodEvent, INIT_PID_FILE};
use crate::annotations::PodAnnotations;
use crate::bundle::BundleSpec;
use crate::cgroup::OomCounter;
use crate::error::{Error, Result};
use crate::guard::Guarded;
use crate::options::{self, ShimConfig};
use crate::runsc::{CreateOpts, GlobalFlags, ProcessIo, Runsc};
use crate::shim::console::ConsoleSocket;
use crate::shim::container::{AttachedStdio, Container, ContainerParts, Terminal};
use crate::shim::entrypoint;
use crate::shim::ids::{self, validate_id};
use crate::shim::io;
use crate::shim::mount;
use crate::shim::process::{read_pid_file, ProcessRef};
use crate::shim::rollback::Rollback;
use crate::shim::state::ShimState;
use crate::shim::volumes;
use crate::timing;

impl Pod {
    /// Create: mounts the rootfs, sets up stdio and runs `runsc create`. On any failure what was
    /// set up is undone, so a failed Create leaves nothing behind.
    pub async fn create(&self, req: CreateTask) -> Result<i32> {
        validate_id(&req.id)?;
        if !req.bundle.is_absolute() {
            return Err(Error::invalid(
                "bundle",
                format!("{:?} must be an absolute path", req.bundle),
            ));
        }
        // Held until Create returns, after the container is in `containers` (or has failed).
        let _reservation = timing::span("reserve", self.reserve(&req.id)).await?;
        let mut spec = timing::span_sync("spec.load", || BundleSpec::load(&req.bundle))?;
        let (config, source) =
            timing::span_sync("options", || options::decode(req.options.as_ref()))?;
        if !config.unknown_keys().is_empty() {
            warn!(
                "{}: ignoring runsc.toml keys this shim does not know: {}",
                req.id,
                config.unknown_keys().join(", ")
            );
        }
        let annotations = PodAnnotations::parse(spec.annotations(), &req.id)
            .map_err(|reason| Error::invalid("config.json annotations", reason))?;
        let role = annotations.role;
        // The pod's volumes and /dev/shm as one filesystem in the sandbox, before runsc reads
        // the spec.
        timing::span_sync("volumes", || volumes::apply(&mut spec, role))?;
        info!(
            "creating {} ({:?}) in {} with options from {source:?}",
            req.id,
            role,
            req.bundle.display()
        );

        // The guard decides before anything is set up, so a refusal leaves nothing behind.
        let plan = self.guard.before_create(&req.id, role, &spec, &config);
        let decided = timing::span("guard.plan", plan).await;
        // config.json is written once per Create, before runsc reads it: the plan's edits over
        // the shim's (the pod's volumes); when the guard fails Create, the shim's alone, and
        // the guard's error is the one reported.
        let edited = decided.and_then(|guarded| {
            if !guarded.spec_edits().is_empty() {
                spec.apply(guarded.spec_edits())?;
            }
            Ok(guarded)
        });
        let saved = timing::span_sync("spec.save", || spec.save_if_changed());
        let guarded = edited?;
        saved?;
        let runsc = self.runsc_for(&req, &config, &guarded)?;
        let creating = Creating {
            req: &req,
            config: &config,
            spec: &spec,
            annotations: &annotations,
            guarded: &guarded,
        };
        let container = self.create_container(&creating, runsc).await?;
        let pid = container.pid();
        self.events.send(PodEvent::Created {
            container_id: req.id.clone(),
            bundle: req.bundle.clone(),
            stdio: req.stdio.clone(),
            pid,
        });
        self.containers
            .lock()
            .await
            .insert(req.id.clone(), container);
        Ok(pid)
    }

    fn runsc_for(&self, req: &CreateTask, config: &ShimConfig, guarded: &Guarded) -> Result<Runsc> {
        let mut flags = GlobalFlags::new(
            config.runsc_root(&self.namespace),
            &req.bundle,
            guarded.runsc_config().clone(),
        );
        flags.substitute_id(&req.id, guarded.runsc_version())?;
        Ok(Runsc::new(
            PathBuf::from(&config.binary_name),
            flags,
            self.executor.clone(),
        )
        .sharing_state_files(self.state_files.clone()))
    }

    /// Sets the container up and runs `runsc create`; on any failure undoes what was done.
    async fn create_container(
        &self,
        creating: &Creating<'_>,
        runsc: Runsc,
    ) -> Result<Arc<Container>> {
        let Creating {
            req,
            config,
            annotations,
            ..
        } = creating;
        let mut undo = Rollback::new(&req.id, &req.bundle);
        let began = std::time::Instant::now();
        match self.set_up(creating, &runsc, &mut undo).await {
            Ok(set_up) => {
                let stdio = AttachedStdio {
                    paths: req.stdio.clone(),
                    copies: undo.done(),
                    start_io: set_up.start_io,
                    terminal: set_up.terminal,
                };
                Ok(Arc::new(Container::new(ContainerParts {
                    init: ProcessRef::init(&req.id)?,
                    bundle: req.bundle.clone(),
                    role: annotations.role,
                    sandbox_id: annotations.sandbox_id.clone(),
                    runsc,
                    pid: set_up.pid,
                    stdio,
                    oom: set_up.oom,
                    created_at: began,
                    io_owner: (config.io_uid, config.io_gid),
                })))
            }
            Err(e) => {
                undo.undo(&runsc).await;
                Err(e)
            }
        }
    }

    /// The steps of a Create after the guard's decision, each recorded in `undo` once done:
    /// the state file, the rootfs, stdio, `runsc create`, the guard's check.
    async fn set_up(
        &self,
        creating: &Creating<'_>,
        runsc: &Runsc,
        undo: &mut Rollback,
    ) -> Result<SetUp> {
        let Creating {
            req,
            config,
            spec,
            annotations,
            guarded,
        } = creating;
        let role = annotations.role;
        // runsc resolves ids by prefix: no id in the root may be a prefix of another. Held until
        // `runsc create` has run, so a clashing Create in another shim waits and then sees it.
        let _root_lock = timing::span("ids.lock", ids::lock_root(&runsc.flags().root)).await?;
        ids::refuse_prefix_clash(runsc, &req.id).await?;
        timing::span_sync("state.save", || {
            ShimState::new(runsc.binary(), runsc.flags()).save(&req.bundle)
        })?;
        undo.state_saved();
        timing::span("mount", mount::mount_all(&req.bundle, &req.rootfs)).await?;
        undo.mounted();
        timing::span_sync("entrypoint", || entrypoint::check(spec.spec(), &req.bundle))?;
        // A terminal: runsc makes the pty and sends its master to a console socket.
        let console = if req.stdio.terminal {
            Some(ConsoleSocket::new()?)
        } else {
            None
        };
        let (process_io, copies) = if console.is_some() {
            (ProcessIo::default(), Default::default())
        } else {
            timing::span_sync("io", || io::open(&req.stdio, config.io_uid, config.io_gid))?
        };
        undo.stdio_open(copies);
        // A sandbox takes its stdio at create (the sandbox process inherits it); a container
        // joining the pod takes it at start, which hands it into the running sandbox.
        let (create_io, start_io) = if role.is_sandbox() {
            (process_io, ProcessIo::default())
        } else {
            (ProcessIo::default(), process_io)
        };
        let pid_file = req.bundle.join(INIT_PID_FILE);
        // gVisor's user log for the pod, sandbox only (only a sandbox's log directory is read).
        let user_log = annotations
            .log_directory
            .as_ref()
            .map(|d| d.join("gvisor.log"));
        let console_path = console.as_ref().map(|c| c.path().to_path_buf());
        let opts = CreateOpts {
            bundle: &req.bundle,
            pid_file: &pid_file,
            console_socket: console_path.as_deref(),
            user_log: user_log.as_deref(),
        };
        // Listening to the reaper before the sandbox process exists, so its exit cannot be missed.
        timing::span("exits.start", self.exits.start()).await;
        undo.runsc_create_ran();
        let terminal = match console {
            // A sandbox's init gets its terminal at create, a container joining the pod at start.
            Some(socket) if role.is_sandbox() => {
                let ((), pty) = socket
                    .receive_during(runsc.create(&req.id, &opts, create_io))
                    .await?;
                undo.stdio_open(pty.copy(&req.stdio)?);
                Some(Terminal::Pty(pty))
            }
            Some(socket) => {
                runsc.create(&req.id, &opts, create_io).await?;
                Some(Terminal::Pending(socket))
            }
            None => {
                runsc.create(&req.id, &opts, create_io).await?;
                None
            }
        };
        let pid = timing::span_sync("pid", || {
            read_pid_file(&pid_file, "reading runsc's pid file")
        })?;
        let oom = timing::span("guard.verify", self.guard.after_create(guarded, pid)).await?;
        Ok(SetUp {
            pid,
            start_io,
            terminal,
            oom,
        })
    }
}

/// One Create's request, and what was read and decided of it before anything is set up.
struct Creating<'a> {
    req: &'a CreateTask,
    config: &'a ShimConfig,
    /// config.json as written for runsc.
    spec: &'a BundleSpec,
    annotations: &'a PodAnnotations,
    guarded: &'a Guarded,
}

/// What the set-up leaves for the container: the sandbox's pid, the stdio a joining container
/// takes at start, its terminal, and the pod's OOM counter.
struct SetUp {
    pid: i32,
    start_io: ProcessIo,
    terminal: Option<Terminal>,
    oom: Option<OomCounter>,
}
