//! The scenario registry: what each scenario runs, on which handler, with which pod. How its
//! evidence is judged is `judge.rs`.

use crate::pod::{PodShape, Qos, MIB};

mod checks;
mod judge;
mod pod_complete;
mod pod_ops;

pub use judge::judge;
pub use pod_complete::{
    PodComplete, GROUPING_CONTAINERS, NO_GROUPING_HANDLER, RESIZE_TO, STTY_SIZE_SAYS,
};
pub use pod_ops::{UPDATE_ABOVE_MIB, UPDATE_POD_MIB, UPDATE_TO_MIB};

/// Where the suite's images live unless `--images` says otherwise: `<prefix>/busybox:1`,
/// `<prefix>/eater:1` (tests/e2e/images/build-images.sh).
pub const DEFAULT_IMAGE_PREFIX: &str = "localhost/e2e";
/// The eater image's entrypoint (tests/e2e/images/build-images.sh).
pub const EATER_PATH: &str = "/eater";

/// The handler of gVisor's own shim (the upstream suite's reference).
pub const GVISOR_HANDLER: &str = "runsc-gvisor";

/// Node health after a scenario: the CRI still answers and this much memory is available.
pub const HEALTHY_MEM_AVAILABLE_KIB: u64 = 256 * 1024;

#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: &'static str,
    pub handler: &'static str,
    pub description: &'static str,
    /// Run when no `--scenario` filter is given.
    pub default: bool,
    pub kind: Kind,
    /// Run `runsc-guard doctor --json` on the node while the pod runs, and what it must say.
    pub doctor: Option<DoctorExpect>,
}

/// What `runsc-guard doctor` must say of the node while the scenario's pod runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DoctorExpect {
    /// The stock path: when the scenario's verdict is `escaped`, exit 2 with the pod named in a
    /// failure; when runsc kept the sandbox in its pod by itself (release-20260615.0 turns
    /// systemd-cgroup on for a systemd path), no failure may name the pod.
    NamesPodIfEscaped,
    /// The guard holds the pod: exit 0, or 1 with only the warnings of `DOCTOR_GUARD_WARNINGS`.
    Clean,
}

/// The doctor's warnings that may stand on the testbed while a guarded pod runs, by the
/// finding's `check`, each for a reason of the testbed, not of the node's safety:
pub const DOCTOR_GUARD_WARNINGS: &[(&str, &str)] = &[];

#[derive(Clone, Debug)]
pub enum Kind {
    /// A busybox pod whose container runs a script and exits.
    Exit(ExitSpec),
    /// A pod whose container eats memory.
    Eater(EaterSpec),
    /// A pod the guard must refuse.
    Refusal,
    /// Busybox containers run one after the other in one pod, each exiting at once.
    ExitCodes(&'static [ExitCase]),
    /// A busybox container that works a little and then sleeps: its stats through CRI.
    Stats,
    /// A pod sandbox created through containerd's own API (`ctr`), whose cgroupsPath names
    /// `kubepods.slice` as the container's name: the guard must widen only the scope runsc
    /// makes, or refuse.
    HostileUnitName(HostileSpec),
    /// A running busybox whose resources are updated through CRI (`pod_ops.rs`).
    Update,
    /// A running busybox while containerd restarts (`pod_ops.rs`).
    ContainerdRestart,
    /// What kubelet does with a running pod beyond starting it (`pod_complete.rs`).
    PodComplete(PodComplete),
}

/// One container of an `ExitCodes` pod.
#[derive(Clone, Copy, Debug)]
pub struct ExitCase {
    pub name: &'static str,
    pub command: &'static [&'static str],
    pub exit_code: i32,
}

#[derive(Clone, Copy, Debug)]
pub struct HostileSpec {
    /// The pod slice's MemoryMax.
    pub slice_memory_max_mib: u64,
    /// The sandbox-memory annotation (the guest's size).
    pub sandbox_memory_mib: u64,
    /// The name part of `<pod slice>:cri-containerd:<name>`.
    pub name: &'static str,
}

impl HostileSpec {
    /// The scope runsc makes for `<slice>:<prefix>:<name>`: always `<prefix>-<name>.scope`.
    pub fn scope_unit(&self) -> String {
        format!("{}-{}.scope", HOSTILE_PREFIX, self.name)
    }
}

/// The prefix containerd's CRI gives every container's systemd cgroupsPath.
pub const HOSTILE_PREFIX: &str = "cri-containerd";

/// The busybox loop of the stats scenario prints this when its work is done.
pub const STATS_READY: &str = "stats-ready";

#[derive(Clone, Debug)]
pub struct ExitSpec {
    pub script: &'static str,
    pub exit_code: i32,
    pub log_contains: &'static str,
}

#[derive(Clone, Debug)]
pub struct EaterSpec {
    pub qos: Qos,
    pub slice_memory_max_mib: Option<u64>,
    pub sandbox_memory_mib: Option<u64>,
    pub overhead_mib: Option<u64>,
    pub container_limit_mib: Option<u64>,
    pub max_mib: u64,
    pub step_mib: u64,
    pub delay_ms: u64,
    pub expect: Expect,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Show what stock runsc does: `escaped` or `bounded`, both pass with evidence.
    IncidentVerdict,
    /// runc: the kernel OOM-kills the container at the limit.
    OomKilled,
    /// The guard: killed near the limit, sandbox a leaf under the pod, exact total memory.
    Guarded,
    /// The guard with RuntimeClass overhead: the guest gets the container limit, the eater
    /// reaches at least `min_mib` before the driver stops the pod.
    Overhead { min_mib: u64 },
}

impl Scenario {
    pub fn image(&self, prefix: &str) -> String {
        let name = match self.kind {
            Kind::Eater(_) => "eater:1",
            _ => "busybox:1",
        };
        format!("{}/{name}", prefix.trim_end_matches('/'))
    }

    pub fn container_name(&self) -> &'static str {
        match self.kind {
            Kind::Eater(_) => "eater",
            _ => "busybox",
        }
    }

    pub fn command(&self) -> Vec<String> {
        match &self.kind {
            Kind::Exit(e) => vec!["/bin/sh".into(), "-c".into(), e.script.into()],
            Kind::Eater(e) => vec![
                EATER_PATH.into(),
                e.max_mib.to_string(),
                e.step_mib.to_string(),
                e.delay_ms.to_string(),
            ],
            Kind::Stats => vec![
                "/bin/sh".into(),
                "-c".into(),
                format!(
                    "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; echo {STATS_READY}; \
                     exec sleep 3600"
                ),
            ],
            Kind::Update | Kind::ContainerdRestart => {
                vec!["/bin/sh".into(), "-c".into(), pod_ops::SLEEPER.into()]
            }
            Kind::Refusal
            | Kind::ExitCodes(_)
            | Kind::HostileUnitName(_)
            | Kind::PodComplete(_) => Vec::new(),
        }
    }

    pub fn shape(&self) -> PodShape {
        match &self.kind {
            Kind::Exit(_) => PodShape {
                qos: Qos::BestEffort,
                slice_memory_max: None,
                sandbox_memory_limit: None,
                overhead_memory: None,
                container_memory_limit: None,
            },
            Kind::Eater(e) => PodShape {
                qos: e.qos,
                slice_memory_max: e.slice_memory_max_mib.map(|m| m * MIB),
                sandbox_memory_limit: e.sandbox_memory_mib.map(|m| m * MIB),
                overhead_memory: e.overhead_mib.map(|m| m * MIB),
                container_memory_limit: e.container_limit_mib.map(|m| m * MIB),
            },
            Kind::HostileUnitName(h) => PodShape {
                qos: Qos::Burstable,
                slice_memory_max: Some(h.slice_memory_max_mib * MIB),
                sandbox_memory_limit: Some(h.sandbox_memory_mib * MIB),
                overhead_memory: None,
                container_memory_limit: None,
            },
            // The incident's bound for the pod; the eater's and the sleeper's own limits are
            // set where their containers are made.
            Kind::PodComplete(PodComplete::TwoContainerOom) => PodShape {
                qos: Qos::Burstable,
                slice_memory_max: Some(256 * MIB),
                sandbox_memory_limit: Some(256 * MIB),
                overhead_memory: None,
                container_memory_limit: Some(192 * MIB),
            },
            Kind::Update => PodShape {
                qos: Qos::Burstable,
                slice_memory_max: Some(UPDATE_POD_MIB * MIB),
                sandbox_memory_limit: Some(UPDATE_POD_MIB * MIB),
                overhead_memory: None,
                container_memory_limit: Some(UPDATE_POD_MIB * MIB),
            },
            // No memory limit anywhere: no resources, so no sandbox-memory annotation.
            Kind::Refusal
            | Kind::ExitCodes(_)
            | Kind::Stats
            | Kind::ContainerdRestart
            | Kind::PodComplete(_) => PodShape {
                qos: Qos::BestEffort,
                slice_memory_max: None,
                sandbox_memory_limit: None,
                overhead_memory: None,
                container_memory_limit: None,
            },
        }
    }

    /// The scenario's own time limit, before scaling.
    pub fn time_limit_secs(&self) -> u64 {
        match self.kind {
            Kind::Exit(_) | Kind::ExitCodes(_) | Kind::Stats | Kind::HostileUnitName(_) => 300,
            Kind::Update | Kind::ContainerdRestart => 300,
            Kind::Eater(_) | Kind::PodComplete(PodComplete::TwoContainerOom) => 600,
            Kind::PodComplete(_) => 300,
            Kind::Refusal => 240,
        }
    }
}

impl Scenario {
    fn with_qos(mut self, qos: Qos) -> Self {
        if let Kind::Eater(e) = &mut self.kind {
            e.qos = qos;
        }
        self
    }

    fn on_request(mut self) -> Self {
        self.default = false;
        self
    }

    fn with_doctor(mut self, expect: DoctorExpect) -> Self {
        self.doctor = Some(expect);
        self
    }
}

/// The incident's pod: Burstable, 256 MiB container limit (so 256 MiB sandbox-memory) and a
/// 256 MiB pod slice; the eater goes for 1 GiB in 16 MiB steps.
fn incident(
    name: &'static str,
    handler: &'static str,
    description: &'static str,
    expect: Expect,
) -> Scenario {
    Scenario {
        name,
        handler,
        description,
        default: true,
        kind: Kind::Eater(EaterSpec {
            qos: Qos::Burstable,
            slice_memory_max_mib: Some(256),
            sandbox_memory_mib: Some(256),
            overhead_mib: None,
            container_limit_mib: Some(256),
            max_mib: 1024,
            step_mib: 16,
            delay_ms: 50,
            expect,
        }),
        doctor: None,
    }
}

fn busybox_exit(name: &'static str, handler: &'static str) -> Scenario {
    Scenario {
        name,
        handler,
        description: "busybox `sh -c 'echo hello; exit 3'`: exit code 3, `hello` in the log, \
                      and after StopPodSandbox + RemovePodSandbox nothing of the pod is left \
                      (runsc processes, shim, scopes/cgroups, mounts, shim socket).",
        default: true,
        kind: Kind::Exit(ExitSpec {
            script: "echo hello; exit 3",
            exit_code: 3,
            log_contains: "hello",
        }),
        doctor: None,
    }
}

/// `exit-code`'s containers: a shell's own exit code, then a program that succeeds.
const EXIT_CASES: &[ExitCase] = &[
    ExitCase {
        name: "exit7",
        command: &["/bin/sh", "-c", "exit 7"],
        exit_code: 7,
    },
    ExitCase {
        name: "true",
        command: &["/bin/true"],
        exit_code: 0,
    },
];

pub fn registry() -> Vec<Scenario> {
    let mut all = vec![
        busybox_exit("busybox-exit", "runsc"),
        incident(
            "incident-stock",
            "runsc-stock",
            "The seed's incident with what the cluster ran (containerd's runc shim driving runsc, \
             no systemd-cgroup): records where the sandbox lands, --total-memory, how far the \
             eater gets. Passes with the evidence; the verdict says `escaped` or `bounded`. \
             runsc-guard doctor, run while the pod runs, exits 2 and names the pod.",
            Expect::IncidentVerdict,
        )
        .with_doctor(DoctorExpect::NamesPodIfEscaped),
        incident(
            "incident-runc",
            "runc",
            "The same pod under runc (systemd cgroup driver): OOM-killed near 256 MiB, exit 137, \
             reason OOMKilled.",
            Expect::OomKilled,
        ),
        incident(
            "incident-guard",
            "runsc",
            "The same pod under runsc-guard: killed near 256 MiB (not beyond), the sandbox a leaf \
             cgroup under the pod slice, --total-memory exactly 268435456, node healthy. \
             runsc-guard doctor, run while the pod runs, finds nothing wrong.",
            Expect::Guarded,
        )
        .with_doctor(DoctorExpect::Clean),
        Scenario {
            name: "overhead-guard",
            handler: "runsc",
            description: "RuntimeClass overhead: pod slice MemoryMax 320 MiB, container limit \
                          (sandbox-memory) 256 MiB, 64 MiB overhead. The guest must see 256 MiB \
                          (--total-memory 268435456) and the eater reach 240 MiB before the pod \
                          is stopped.",
            default: true,
            kind: Kind::Eater(EaterSpec {
                qos: Qos::Burstable,
                slice_memory_max_mib: Some(320),
                sandbox_memory_mib: Some(256),
                overhead_mib: Some(64),
                container_limit_mib: Some(256),
                max_mib: 240,
                step_mib: 16,
                delay_ms: 50,
                expect: Expect::Overhead { min_mib: 240 },
            }),
            doctor: None,
        },
        Scenario {
            name: "refusal-guard",
            handler: "runsc",
            description: "cgroup_parent names a pod slice that does not exist and the pod has no \
                          memory limit (no sandbox-memory annotation): RunPodSandbox must fail \
                          with an error naming runsc-guard and leave nothing behind.",
            default: true,
            kind: Kind::Refusal,
            doctor: None,
        },
        // On request (`--scenario NAME`): a Guaranteed pod, whose slice sits directly under
        // kubepods.slice, and baselines that show whether the testbed itself works.
        incident(
            "incident-guard-guaranteed",
            "runsc",
            "incident-guard with a Guaranteed pod (slice kubepods-pod<uid>.slice).",
            Expect::Guarded,
        )
        .with_qos(Qos::Guaranteed)
        .on_request(),
        busybox_exit("busybox-exit-runc", "runc").on_request(),
        busybox_exit("busybox-exit-stock", "runsc-stock").on_request(),
        // gVisor's own shim, where the node has it (the upstream suite runs them with --also).
        incident(
            "incident-gvisor",
            GVISOR_HANDLER,
            "The incident's pod under gVisor's own shim with runsc's defaults (no systemd-cgroup \
             in its runsc.toml): records where the sandbox lands, --total-memory, how far the \
             eater gets; the verdict says `escaped` or `bounded`.",
            Expect::IncidentVerdict,
        )
        .on_request(),
        busybox_exit("busybox-exit-gvisor", GVISOR_HANDLER).on_request(),
    ];
    // Default scenarios after the incident's, before the on-request ones.
    let at = all.iter().position(|s| !s.default).unwrap_or(all.len());
    let mut before_on_request = task_api_scenarios();
    before_on_request.extend(pod_complete::pod_complete_scenarios());
    all.splice(at..at, before_on_request);
    // After the last default one.
    let at = all.iter().rposition(|s| s.default).map_or(0, |i| i + 1);
    all.splice(at..at, pod_ops::pod_ops_scenarios());
    all
}

/// The scenarios of the shim's task API beyond the incident: exit codes, stats, and a sandbox
/// made through containerd's own API.
fn task_api_scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "exit-code",
            handler: "runsc",
            description: "Containers that exit at once, one after the other in one pod: \
                          `sh -c 'exit 7'` must be reported with exit code 7 and `true` with 0 \
                          (not 128), and nothing of the pod left behind.",
            default: true,
            kind: Kind::ExitCodes(EXIT_CASES),
            doctor: None,
        },
        Scenario {
            name: "stats",
            handler: "runsc",
            description: "A running busybox container that has done some work: ContainerStats \
                          and ListContainerStats report a non-zero memory working set and CPU \
                          usage.",
            default: true,
            kind: Kind::Stats,
            doctor: None,
        },
        Scenario {
            name: "hostile-unit-name",
            handler: "runsc",
            description: "A pod sandbox made through containerd's API (ctr) with cgroupsPath \
                          `<pod slice>:cri-containerd:kubepods.slice`, a 320 MiB pod slice and \
                          a 256 MiB sandbox-memory annotation: the guard widens only \
                          `cri-containerd-kubepods.slice.scope` (the scope runsc made) to \
                          320 MiB, or refuses cleanly; kubepods.slice's MemoryMax never changes.",
            default: true,
            kind: Kind::HostileUnitName(HostileSpec {
                slice_memory_max_mib: 320,
                sandbox_memory_mib: 256,
                name: "kubepods.slice",
            }),
            doctor: None,
        },
    ]
}

/// The scenarios to run: by name when `names` is given, else the default ones and those named
/// in `also`; then only those whose handler is in `handlers`, when given. An unknown name in
/// either list is an error.
pub fn select(
    all: &[Scenario],
    names: &[String],
    also: &[String],
    handlers: &[String],
) -> Result<Vec<Scenario>, String> {
    for (flag, n) in names
        .iter()
        .map(|n| ("--scenario", n))
        .chain(also.iter().map(|n| ("--also", n)))
    {
        if !all.iter().any(|s| s.name == n) {
            let known: Vec<&str> = all.iter().map(|s| s.name).collect();
            return Err(format!(
                "{flag} {n}: no such scenario (known: {})",
                known.join(", ")
            ));
        }
    }
    Ok(all
        .iter()
        .filter(|s| {
            if names.is_empty() {
                s.default || also.iter().any(|n| n == s.name)
            } else {
                names.iter().any(|n| n == s.name)
            }
        })
        .filter(|s| handlers.is_empty() || handlers.iter().any(|h| h == s.handler))
        .cloned()
        .collect())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    impl Scenario {
        fn kind_scope_unit(&self) -> Option<String> {
            match &self.kind {
                Kind::HostileUnitName(h) => Some(h.scope_unit()),
                _ => None,
            }
        }
    }

    pub(super) fn by_name(name: &str) -> Scenario {
        registry()
            .into_iter()
            .find(|s| s.name == name)
            .expect("registered")
    }

    #[test]
    fn registry_names_are_unique_and_the_defaults() {
        let all = registry();
        let mut names: Vec<&str> = all.iter().map(|s| s.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), all.len());
        let default: Vec<&str> = all.iter().filter(|s| s.default).map(|s| s.name).collect();
        assert_eq!(
            default,
            vec![
                "busybox-exit",
                "incident-stock",
                "incident-runc",
                "incident-guard",
                "overhead-guard",
                "refusal-guard",
                "exit-code",
                "stats",
                "hostile-unit-name",
                "exec-sync",
                "exec-stream",
                "attach",
                "two-container-oom",
                "grouping",
                "update",
                "containerd-restart"
            ]
        );
        assert_eq!(
            by_name("hostile-unit-name").kind_scope_unit().as_deref(),
            Some("cri-containerd-kubepods.slice.scope")
        );
        assert_eq!(
            by_name("incident-stock").doctor,
            Some(DoctorExpect::NamesPodIfEscaped)
        );
    }

    #[test]
    fn selection() {
        let all = registry();
        let s = select(&all, &[], &[], &["runc".into()]).expect("valid");
        assert_eq!(
            s.iter().map(|s| s.name).collect::<Vec<_>>(),
            vec!["incident-runc"]
        );
        let s = select(&all, &["busybox-exit-runc".into()], &[], &[]).expect("valid");
        assert_eq!(s.len(), 1);
        assert!(select(&all, &["nope".into()], &[], &[]).is_err());
        assert!(select(&all, &[], &["nope".into()], &[]).is_err());
        // --also adds on-request scenarios to the defaults, in registry order.
        let also = [
            "incident-gvisor".to_string(),
            "busybox-exit-gvisor".to_string(),
        ];
        let s = select(&all, &[], &also, &[GVISOR_HANDLER.into()]).expect("valid");
        assert_eq!(
            s.iter().map(|s| s.name).collect::<Vec<_>>(),
            vec!["incident-gvisor", "busybox-exit-gvisor"]
        );
        let defaults = select(&all, &[], &[], &[]).expect("valid").len();
        assert_eq!(
            select(&all, &[], &also, &[]).expect("valid").len(),
            defaults + 2
        );
    }

    #[test]
    fn incident_shape_and_command() {
        let s = by_name("incident-guard");
        let shape = s.shape();
        assert_eq!(shape.slice_memory_max, Some(268435456));
        assert_eq!(shape.sandbox_memory_limit, Some(268435456));
        assert_eq!(s.command(), vec!["/eater", "1024", "16", "50"]);
        assert_eq!(s.image("localhost/e2e"), "localhost/e2e/eater:1");
        assert_eq!(
            by_name("busybox-exit").image("localhost/e2e/"),
            "localhost/e2e/busybox:1"
        );
        let o = by_name("overhead-guard").shape();
        assert_eq!(o.slice_memory_max, Some(320 * MIB));
        assert_eq!(o.sandbox_memory_limit, Some(256 * MIB));
        assert!(by_name("refusal-guard")
            .shape()
            .sandbox_memory_limit
            .is_none());
        assert_eq!(
            by_name("incident-guard-guaranteed").shape().qos,
            Qos::Guaranteed
        );
        assert!(!by_name("incident-guard-guaranteed").default);
    }
}
