//! The decision: from a container's spec and the host, the runsc flags, spec edits and guest
//! size that keep its sandbox bounded by its pod. [`decide`] applies the rules in order, each in
//! a file of its own, numbered as README's "The guarantee" numbers them: 1 the driver
//! (`driver.rs`), 2 the pod's bound and 3 the guest's size (`sizing.rs`), 4 placement and sizing
//! (`placement.rs`); 5, the verification after create, is `guard/verify.rs`. They all write into
//! one [`draft::Draft`]; [`contract`] holds what the rest of the project sees.

mod contract;
mod draft;
mod driver;
mod overrides;
mod placement;
mod sizing;

pub use contract::{Driver, Plan, SpecEdit, Verdict};

use super::{GuardInput, Role};
use crate::options::GuardMode;
use draft::Draft;

/// Decides how to create the container so that its sandbox is bounded by its pod.
pub fn decide(input: &GuardInput<'_>) -> Plan {
    let mut d = Draft::new(input);
    if input.mode == GuardMode::Off {
        d.reason(
            "guard_mode is \"off\": nothing is changed beyond what gVisor's own shim does; this \
             is what runsc will do",
        );
    }
    if d.active() {
        overrides::strip(&mut d);
    }
    let Some(path) = driver::read_path(&mut d) else {
        return d.finish();
    };
    let pod = path.pod_cgroup();
    d.pod_cgroup = pod.clone();
    let runsc = driver::decide(&mut d, &path, pod.is_some());
    let Some(bound) = sizing::pod_bound(&mut d, &path, pod.as_ref()) else {
        return d.finish();
    };
    if input.role == Role::Container {
        d.reason(
            "this container joins an existing sandbox: the guest's size was decided when the \
             sandbox was created; it only needs the same cgroup driver",
        );
        return d.finish();
    }
    let spec_limit = sizing::spec_memory_limit(input.spec);
    let effective = bound.effective().cloned();
    let guest = sizing::guest_size(&mut d, bound, spec_limit);
    placement::place(
        &mut d,
        &runsc,
        pod.as_ref(),
        guest,
        effective.as_ref(),
        spec_limit,
    );
    d.finish()
}
