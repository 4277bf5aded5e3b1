//! Rules 2 and 3, the bound and the guest's size: the pod's effective memory limit is the
//! smallest on the way up from its cgroup, the tree is the truth for it, and the guest gets the
//! smallest of the spec's own limit, that bound and (for a RuntimeClass overhead) the
//! sandbox-memory annotation.

use oci_spec::runtime::Spec;

use super::draft::Draft;
use crate::annotations::SANDBOX_MEMORY;
use crate::cgroup::{Bytes, CgroupError, CgroupPath, EffectiveLimit, MemoryLimit, SpecCgroupsPath};
use crate::guard::Role;

/// What rule 2 found about the pod's bound.
pub(super) enum PodBound {
    /// The path names no pod.
    NotAPod,
    /// The bound read from the tree.
    Read(EffectiveLimit),
    /// The pod cgroup does not exist; `above` is the bound of its nearest existing ancestor.
    Missing {
        err: CgroupError,
        above: Option<EffectiveLimit>,
    },
}

impl PodBound {
    pub fn effective(&self) -> Option<&EffectiveLimit> {
        match self {
            PodBound::Read(eff) => Some(eff),
            PodBound::NotAPod | PodBound::Missing { .. } => None,
        }
    }
}

/// Rule 2: the pod's cgroup and its bound. None when the tree cannot be trusted, which refuses
/// the plan and ends it.
pub(super) fn pod_bound(
    d: &mut Draft<'_>,
    path: &SpecCgroupsPath,
    pod: Option<&CgroupPath>,
) -> Option<PodBound> {
    let Some(pod) = pod else {
        if d.input.role == Role::Sandbox {
            d.reason(not_a_pod(path));
        }
        return Some(PodBound::NotAPod);
    };
    match d.input.tree.effective_memory_limit(pod) {
        Ok(eff) => {
            d.reason(describe_bound(pod, &eff));
            d.pod_memory_limit = eff.limit.bytes();
            d.limit_source = eff.source.as_ref().map(|p| p.display().to_string());
            Some(PodBound::Read(eff))
        }
        Err(e @ CgroupError::Missing { .. }) => match nearest_bound(d, pod) {
            Ok(above) => Some(PodBound::Missing { err: e, above }),
            Err(up) => {
                d.refuse(format!(
                    "pod cgroup {pod}: {e}, and the cgroups above it cannot be trusted: {up}"
                ));
                None
            }
        },
        Err(e) => {
            // No fallback: a symlink, a file where a cgroup belongs, or a limit file that
            // cannot be read or holds garbage anywhere on the way up means the tree cannot be
            // trusted, and the annotation must not stand in for a bound the tree may hold.
            d.refuse(format!(
                "pod cgroup {pod}: {e}; the tree cannot be trusted, so the pod's bound is unknown"
            ));
            None
        }
    }
}

/// The bound of the pod cgroup's nearest existing ancestor (kubepods.slice with the node's
/// allocatable memory, say), when the pod cgroup itself is missing.
fn nearest_bound(d: &Draft<'_>, pod: &CgroupPath) -> Result<Option<EffectiveLimit>, CgroupError> {
    let tree = d.input.tree;
    for ancestor in pod.ancestors_to_root().into_iter().skip(1) {
        if tree.exists(&ancestor)? {
            return tree.effective_memory_limit(&ancestor).map(Some);
        }
    }
    Ok(None)
}

/// Rule 3: the guest's size, from the bound rule 2 found.
pub(super) fn guest_size(
    d: &mut Draft<'_>,
    bound: PodBound,
    spec_limit: Option<Bytes>,
) -> MemoryLimit {
    let annotation = sandbox_memory_annotation(d);
    match bound {
        PodBound::Read(eff) => size_guest(d, &eff, spec_limit, annotation),
        PodBound::Missing { err, above } => {
            if let Some(why) = annotation.and_then(|a| absurd(a, d.input.host.host_memory)) {
                d.refuse(why);
                return MemoryLimit::from(spec_limit);
            }
            missing_pod(d, &err, above.as_ref(), annotation, spec_limit)
        }
        PodBound::NotAPod => MemoryLimit::from(spec_limit),
    }
}

/// An annotation this large is no pod's limit: from 2^62 bytes on, it is a value near the
/// integer limits (a sum that overflowed, `i64::MAX` for "unlimited"), not memory.
const ANNOTATION_ABSURD_FROM: u64 = 1 << 62;

/// Why the sandbox-memory annotation cannot stand in for a missing pod cgroup's limit: it is
/// above the host's memory (`MemTotal`, when known) or near the integer limits. Then it bounds
/// nothing, and the guest would be sized from a figure no pod has.
pub(super) fn absurd(annotation: Bytes, host_memory: Option<Bytes>) -> Option<String> {
    let a = annotation.get();
    let why = match host_memory {
        _ if a >= ANNOTATION_ABSURD_FROM => {
            "is 2^62 bytes or more, near the integer limits and no pod's memory".to_string()
        }
        Some(host) if annotation > host => {
            format!(
                "is above the host's memory (MemTotal {host}, {} bytes)",
                host.get()
            )
        }
        _ => return None,
    };
    Some(
        crate::Error::invalid(
            format!("annotation {SANDBOX_MEMORY}"),
            format!(
                "{a} {why}; the pod cgroup is missing, so this figure alone would size the \
                 guest. Check the pod's memory limits (the annotation sums them) and that the \
                 kubelet and containerd use the same cgroup driver, so that the pod cgroup exists"
            ),
        )
        .to_string(),
    )
}

/// The guest's size when the pod cgroup is missing: the annotation stands in for the pod's
/// own limit, and a limit read above the pod still bounds it.
fn missing_pod(
    d: &mut Draft<'_>,
    err: &CgroupError,
    above: Option<&EffectiveLimit>,
    annotation: Option<Bytes>,
    spec_limit: Option<Bytes>,
) -> MemoryLimit {
    let Some(a) = annotation else {
        d.refuse(format!(
            "the pod cgroup cannot be used ({err}) and the spec has no {SANDBOX_MEMORY} \
             annotation to bound the sandbox with; systemd would create a missing slice \
             without any limit. Check that the kubelet and containerd use the same cgroup \
             driver, and for runsc-guard plan that --cgroup-root points at the node's cgroup \
             mount"
        ));
        return MemoryLimit::from(spec_limit);
    };
    d.warnings.push(format!(
        "the pod cgroup cannot be used ({err}); the {SANDBOX_MEMORY} annotation ({a}) becomes \
         the sandbox leaf's limit instead, which leaves no room for a RuntimeClass overhead"
    ));
    let read = above.and_then(|eff| Some((eff.limit.bytes()?, eff.source.clone()?)));
    let (bound, source) = match read {
        Some((b, source)) if b < a => {
            d.reason(format!(
                "the limit {b} read from {} is below the {SANDBOX_MEMORY} annotation ({a}) and \
                 bounds the sandbox: a limit the tree holds always wins",
                source.display()
            ));
            (b, source.display().to_string())
        }
        _ => (a, "annotation".to_string()),
    };
    d.pod_memory_limit = Some(bound);
    d.limit_source = Some(source);
    MemoryLimit::Limited(spec_limit.map_or(bound, |s| s.min(bound)))
}

fn describe_bound(pod: &CgroupPath, eff: &EffectiveLimit) -> String {
    match (&eff.limit, &eff.source) {
        (MemoryLimit::Limited(b), Some(source)) => format!(
            "pod cgroup {pod} (own limit {}) is bounded by {b} ({} bytes) from {}, the smallest \
             limit up to the root",
            eff.own,
            b.get(),
            source.display()
        ),
        _ => format!(
            "pod cgroup {pod} has no memory limit and neither has any ancestor: the kubelet \
             bounds this pod by nothing (a container without a memory limit, and no enforced \
             node allocatable), so the guest sees the host's memory, as it would under runc"
        ),
    }
}

fn not_a_pod(path: &SpecCgroupsPath) -> String {
    let what = match path {
        SpecCgroupsPath::Empty => "linux.cgroupsPath is empty (ctr, nerdctl or docker without a \
                               cgroup parent)"
            .to_string(),
        SpecCgroupsPath::Systemd(sd) => format!("linux.cgroupsPath is in the slice {}", sd.slice),
        SpecCgroupsPath::Absolute(p) => format!("linux.cgroupsPath {p} has no pod<uid> parent"),
        SpecCgroupsPath::Relative(raw) => format!("linux.cgroupsPath {raw:?} is relative"),
    };
    format!(
        "not bounded by a pod: {what}, so this is not a Kubernetes pod's sandbox and it is \
         bounded only by its own spec's limit, as runc would bound it"
    )
}

/// Rule 3: the smallest of the spec's limit, the pod's bound and, when the pod's own cgroup is
/// bounded, the sandbox-memory annotation if it is within the bound.
fn size_guest(
    d: &mut Draft<'_>,
    eff: &EffectiveLimit,
    spec_limit: Option<Bytes>,
    annotation: Option<Bytes>,
) -> MemoryLimit {
    let mut guest = eff.limit;
    if let Some(s) = spec_limit {
        if MemoryLimit::Limited(s).min(guest) != guest {
            d.reason(format!(
                "the sandbox spec's own memory limit {s} is below the pod's bound and sizes the \
                 guest"
            ));
        }
        guest = guest.min(MemoryLimit::Limited(s));
    }
    let Some(a) = annotation else {
        return guest;
    };
    match eff.limit {
        _ if !eff.own.is_limited() => d.reason(format!(
            "{SANDBOX_MEMORY}={} is not used: the pod's own cgroup has no limit (the kubelet \
             leaves it unbounded when a container declares no memory limit) and the annotation \
             sums only the declared limits, so applying it would impose a limit Kubernetes did \
             not",
            a.get()
        )),
        MemoryLimit::Limited(b) if a > b => d.reason(format!(
            "{SANDBOX_MEMORY}={} is above the pod's bound {b} and is not used: the cgroup tree \
             is the truth for the bound",
            a.get()
        )),
        _ => {
            if MemoryLimit::Limited(a).min(guest) != guest {
                d.reason(format!(
                    "{SANDBOX_MEMORY}={} ({a}) is below the pod's bound {}: the difference is the \
                     RuntimeClass overhead the kubelet adds to the pod cgroup for the sandbox's \
                     own processes, so the guest gets {a}",
                    a.get(),
                    eff.limit
                ));
            }
            guest = guest.min(MemoryLimit::Limited(a));
        }
    }
    guest
}

pub(super) fn raw_spec_memory_limit(spec: &Spec) -> Option<i64> {
    spec.linux()
        .as_ref()?
        .resources()
        .as_ref()?
        .memory()
        .as_ref()?
        .limit()
}

/// The spec's memory limit, when it is one (0 and -1 mean none).
pub(super) fn spec_memory_limit(spec: &Spec) -> Option<Bytes> {
    raw_spec_memory_limit(spec)
        .filter(|l| *l > 0)
        .map(|l| Bytes(l.unsigned_abs()))
}

/// `io.kubernetes.cri.sandbox-memory`: the sum of the limits the pod's containers declare; "0"
/// means unset. Garbage is reported and ignored.
fn sandbox_memory_annotation(d: &mut Draft<'_>) -> Option<Bytes> {
    let value = d
        .input
        .spec
        .annotations()
        .as_ref()?
        .get(SANDBOX_MEMORY)?
        .clone();
    match value.trim().parse::<i64>() {
        Ok(n) if n > 0 => Some(Bytes(n.unsigned_abs())),
        Ok(_) => None,
        Err(_) => {
            d.warnings.push(format!(
                "annotation {SANDBOX_MEMORY}={value:?} is not a number of bytes and is ignored"
            ));
            None
        }
    }
}
