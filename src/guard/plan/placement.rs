//! Rule 4, placement and sizing: the sandbox is a leaf under the pod cgroup, and the leaf's
//! limit is what runsc sizes the guest from, so the spec carries the guest size; once the
//! sandbox has booted, the leaf may be widened to the pod's bound.

use super::contract::SpecEdit;
use super::draft::Draft;
use super::driver::RunscCgroups;
use super::sizing::raw_spec_memory_limit;
use crate::annotations::GVISOR_CGROUP_PARENT;
use crate::cgroup::{
    Bytes, CgroupError, CgroupLayout, CgroupPath, EffectiveLimit, MemoryLimit, SpecCgroupsPath,
};
use crate::guard::predict::{self, Placement};
use crate::guard::relax::{LeafRelaxation, RelaxTarget};
use crate::runsc::version::RunscVersion;

/// Rule 4: places the sandbox, gives its leaf the guest's size, predicts what runsc will make
/// of it and refuses what would not hold.
pub(super) fn place(
    d: &mut Draft<'_>,
    runsc: &RunscCgroups,
    pod: Option<&CgroupPath>,
    guest: MemoryLimit,
    bound: Option<&EffectiveLimit>,
    spec_limit: Option<Bytes>,
) {
    let input = d.input;
    let layout = input.tree.layout();
    let placement = place_sandbox(d, runsc, pod, guest);
    d.leaf_cgroup = placement.process_cgroup(layout).cloned();
    if let Some(leaf) = d.leaf_cgroup.clone() {
        // runsc would follow a symlink out of the tree, and cannot make a cgroup where a file
        // is; a cgroup filesystem has neither.
        if let Err(e @ (CgroupError::Symlink { .. } | CgroupError::Unexpected { .. })) =
            input.tree.exists(&leaf)
        {
            d.refuse(format!("the sandbox's cgroup {leaf}: {e}"));
            return;
        }
    }
    let mut runsc_spec_limit = spec_limit;
    if let (true, MemoryLimit::Limited(g)) = (d.active(), guest) {
        let sized_by_leaf = !matches!(placement, Placement::PodParent { .. } | Placement::NoCgroup);
        if sized_by_leaf && spec_limit != Some(g) {
            d.edit(SpecEdit::SetMemoryLimit {
                from: raw_spec_memory_limit(input.spec),
                to: g,
            });
            d.reason(leaf_limit_reason(input.runsc_version, g));
            runsc_spec_limit = Some(g);
        }
    }

    let prediction = predict::total_memory(
        &placement,
        runsc_spec_limit,
        input.runsc_version,
        input.tree,
    );
    d.total_memory = prediction
        .limit
        .bytes()
        .map(|b| input.host.host_memory.map_or(b, |host| b.min(host)));
    if let Some(pod) = pod {
        check_outcome(d, pod, &placement, layout, guest, &prediction);
    }
    d.relax = relaxation(d, &placement, guest, bound, spec_limit);
    if let Some(r) = &d.relax {
        let reason = format!(
            "once the sandbox has booted, its leaf's limit is raised {r}, so the room the pod \
             reserves beyond the guest (RuntimeClass overhead) is there for the sentry and \
             gofers, which share the pod's cgroup"
        );
        d.reason(reason);
    }
}

/// Where runsc will put the sandbox, choosing `dev.gvisor.spec.cgroup-parent` for a
/// cgroupfs pod path when it gives the right size.
fn place_sandbox(
    d: &mut Draft<'_>,
    runsc: &RunscCgroups,
    pod: Option<&CgroupPath>,
    guest: MemoryLimit,
) -> Placement {
    let placement = if runsc.ignore_cgroups {
        Placement::NoCgroup
    } else {
        placement_for_path(d, &runsc.path, runsc.systemd_flag, pod, guest)
    };
    own_cgroup_parent(d, placement)
}

/// Where runsc puts a sandbox whose spec carries `runsc_path`.
fn placement_for_path(
    d: &mut Draft<'_>,
    runsc_path: &SpecCgroupsPath,
    systemd_flag: bool,
    pod: Option<&CgroupPath>,
    guest: MemoryLimit,
) -> Placement {
    let input = d.input;
    let layout = input.tree.layout();
    match runsc_path {
        SpecCgroupsPath::Systemd(sd) if systemd_flag => Placement::OwnLeaf {
            leaf: sd.leaf(),
            systemd_unit: Some(sd.unit_name()),
        },
        SpecCgroupsPath::Systemd(sd) => Placement::Elsewhere {
            why: format!(
                "without --systemd-cgroup runsc reads {:?} as a relative cgroupfs path and \
                 creates it under its own cgroup, outside the pod",
                sd.as_spec_string()
            ),
        },
        SpecCgroupsPath::Absolute(_) if systemd_flag && layout.is_unified() => {
            Placement::Elsewhere {
                why: "runsc's systemd driver rejects a cgroupfs path, so runsc create fails"
                    .to_string(),
            }
        }
        SpecCgroupsPath::Absolute(leaf) => match pod {
            Some(pod) if d.active() => choose_cgroupfs_placement(d, pod, leaf, guest),
            // gVisor's shim names the pod cgroup for runsc (setPodCgroup).
            Some(pod) => Placement::PodParent {
                parent: pod.clone(),
                leaf: Some(leaf.clone()),
            },
            None => Placement::OwnLeaf {
                leaf: leaf.clone(),
                systemd_unit: None,
            },
        },
        SpecCgroupsPath::Relative(raw) => Placement::Elsewhere {
            why: format!("runsc joins {raw:?} to the parent of its own cgroup"),
        },
        SpecCgroupsPath::Empty if systemd_flag => Placement::Elsewhere {
            why: "with --systemd-cgroup and no path, runsc picks a scope in system.slice (or \
                  fails, on releases before 20240603)"
                .to_string(),
        },
        SpecCgroupsPath::Empty => match CgroupPath::root().join(input.container_id) {
            Ok(leaf) => Placement::OwnLeaf {
                leaf,
                systemd_unit: None,
            },
            Err(_) => Placement::Elsewhere {
                why: "runsc uses /<container id>, which is not a valid cgroup name here"
                    .to_string(),
            },
        },
    }
}

/// The annotation is runsc's, and the guard decides it: a pass-through pod annotation must not
/// place the sandbox. gVisor's shim only ever sets it, so guard_mode=off keeps it.
fn own_cgroup_parent(d: &mut Draft<'_>, placement: Placement) -> Placement {
    let layout = d.input.tree.layout();
    let existing_parent = d
        .input
        .spec
        .annotations()
        .as_ref()
        .and_then(|a| a.get(GVISOR_CGROUP_PARENT))
        .cloned();
    let chosen_parent = match &placement {
        Placement::PodParent { parent, .. } => Some(parent.to_string()),
        _ => None,
    };
    match (&existing_parent, &chosen_parent) {
        (Some(was), None) if d.active() => {
            d.edit(SpecEdit::RemoveCgroupParent { was: was.clone() });
            d.reason(format!(
                "the spec's {GVISOR_CGROUP_PARENT}={was:?} is removed: only the guard chooses the \
                 cgroup runsc records for the sandbox"
            ));
        }
        (Some(was), None) => {
            return match CgroupPath::parse(was) {
                Ok(parent) => Placement::PodParent {
                    leaf: placement.process_cgroup(layout).cloned(),
                    parent,
                },
                Err(e) => Placement::Elsewhere {
                    why: format!("the spec's {GVISOR_CGROUP_PARENT} is unusable: {e}"),
                },
            };
        }
        (was, Some(to)) if was.as_deref() != Some(to.as_str()) => {
            if let Placement::PodParent { parent, .. } = &placement {
                d.edit(SpecEdit::SetCgroupParent {
                    from: was.clone(),
                    to: parent.clone(),
                });
            }
        }
        _ => {}
    }
    placement
}

/// With a cgroupfs pod path, gVisor's shim sets `dev.gvisor.spec.cgroup-parent` to the pod
/// cgroup: runsc then records the pod cgroup and reads *its* limit, and (on v2) puts the
/// processes in the leaf below it. runsc never writes limits into a cgroup that exists already,
/// so with the annotation the spec's memory limit changes nothing: the guest's size is
/// whatever the pod cgroup's own file says (or, from 20231106, its parent's when it says
/// `max`). That is right exactly when it equals the guest size decided by rule 3, the common
/// case (every container declares a limit, no overhead). Otherwise (an overhead to keep out of
/// the guest, a bound that comes from an ancestor, cgroup v1 where runsc would put the
/// processes in the pod cgroup itself) the guard leaves the annotation out: runsc then records
/// the leaf, which it creates with the spec's limit, exactly like the systemd scope.
fn choose_cgroupfs_placement(
    d: &mut Draft<'_>,
    pod: &CgroupPath,
    leaf: &CgroupPath,
    guest: MemoryLimit,
) -> Placement {
    let input = d.input;
    let via_pod = Placement::PodParent {
        parent: pod.clone(),
        leaf: Some(leaf.clone()),
    };
    let own_leaf = Placement::OwnLeaf {
        leaf: leaf.clone(),
        systemd_unit: None,
    };
    if !input.tree.layout().is_unified() {
        d.reason(format!(
            "{GVISOR_CGROUP_PARENT} is not set: on cgroup v1 runsc would put the sandbox's \
             processes in the cgroup it names, the pod cgroup itself; runsc creates the leaf \
             {leaf} instead and sizes the guest from its limit"
        ));
        return own_leaf;
    }
    if !matches!(input.tree.exists(pod), Ok(true)) {
        return own_leaf;
    }
    let from_pod = predict::total_memory(&via_pod, None, input.runsc_version, input.tree);
    if page_floor(from_pod.limit) == page_floor(guest) {
        d.reason(format!(
            "{GVISOR_CGROUP_PARENT}={pod}, as gVisor's shim sets it: runsc records the pod cgroup \
             and sizes the guest from it ({guest}), with its processes in the leaf {leaf}"
        ));
        via_pod
    } else {
        d.reason(format!(
            "{GVISOR_CGROUP_PARENT} is not set: with it runsc would size the guest from the pod \
             cgroup to {} instead of {guest} ({}); runsc creates the leaf {leaf} with the limit \
             instead",
            from_pod.limit, from_pod.explanation
        ));
        own_leaf
    }
}

/// The reason for the leaf's limit, in terms of the runsc release.
fn leaf_limit_reason(version: &RunscVersion, guest: Bytes) -> String {
    let how = if !version.is_known() {
        format!(
            "runsc {version} is not a dated release and is treated as the oldest, which reads \
             only its own cgroup's limit"
        )
    } else if version.needs_leaf_limit() {
        format!(
            "runsc {version} reads only its own cgroup's limit (reading the parent's came in \
             20231106)"
        )
    } else {
        format!(
            "runsc {version} would read the pod's limit only when the leaf has none and only one \
             level up, so the leaf carries the size itself"
        )
    };
    format!(
        "the sandbox spec's linux.resources.memory.limit is set to {} ({guest}) before runsc \
         create: runsc gives the leaf it creates that limit and computes --total-memory from \
         it; {how}",
        guest.get()
    )
}

/// Checks that what runsc will do matches the decision: the sandbox in a leaf under its pod,
/// the guest at the decided size. A mismatch here is a refusal, found before anything runs.
fn check_outcome(
    d: &mut Draft<'_>,
    pod: &CgroupPath,
    placement: &Placement,
    layout: CgroupLayout,
    guest: MemoryLimit,
    prediction: &predict::Prediction,
) {
    match (placement.process_cgroup(layout), placement) {
        (Some(cgroup), _) if cgroup.is_strictly_under(pod) => {}
        (Some(cgroup), _) => d.refuse(format!(
            "the sandbox's processes would sit in {cgroup}, not in a leaf under the pod cgroup \
             {pod}"
        )),
        (None, Placement::Elsewhere { why }) => d.refuse(format!(
            "the sandbox would not sit under its pod cgroup {pod}: {why}"
        )),
        (None, _) => d.refuse(format!(
            "the sandbox would not sit under its pod cgroup {pod}: runsc ignores cgroups"
        )),
    }
    if page_floor(prediction.limit) != page_floor(guest) {
        d.refuse(format!(
            "runsc would size the guest to {} instead of {guest}: {}",
            prediction.limit, prediction.explanation
        ));
    }
}

/// The leaf is sized for the guest; once booted it may take what the pod allows (but no more
/// than the spec's own limit, which was an explicit request for this leaf).
fn relaxation(
    d: &Draft<'_>,
    placement: &Placement,
    guest: MemoryLimit,
    bound: Option<&EffectiveLimit>,
    spec_limit: Option<Bytes>,
) -> Option<LeafRelaxation> {
    if !d.active() || !d.refusals.is_empty() {
        return None;
    }
    let Placement::OwnLeaf { leaf, systemd_unit } = placement else {
        return None;
    };
    let guest = guest.bytes()?;
    let bound = bound?.limit.bytes()?;
    let ceiling = spec_limit.map_or(bound, |s| s.min(bound)).page_floor();
    (ceiling > guest.page_floor()).then(|| LeafRelaxation {
        target: match systemd_unit {
            Some(unit) => RelaxTarget::SystemdScope { unit: unit.clone() },
            None => RelaxTarget::Cgroup {
                cgroup: leaf.clone(),
            },
        },
        from: guest,
        to: ceiling,
    })
}

fn page_floor(limit: MemoryLimit) -> Option<Bytes> {
    limit.bytes().map(Bytes::page_floor)
}
