//! Rule 5, the verification after create, and the record kept in the bundle.

use super::*;

#[test]
fn verification_passes_when_runsc_did_what_was_planned() {
    let (_fx, p) = incident_plan();
    let leaf = p.leaf_cgroup.clone().unwrap();
    for args in [
        [
            "runsc-sandbox",
            "--root=/run/runsc",
            "boot",
            "--total-memory",
            "268435456",
            ID,
        ],
        [
            "runsc-sandbox",
            "--root=/run/runsc",
            "boot",
            "--cpu-num=2",
            "--total-memory=268435456",
            ID,
        ],
    ] {
        let obs = Observation::parse(
            4242,
            CgroupLayout::Unified,
            &format!("0::{leaf}\n"),
            &cmdline(&args),
        );
        let v = verify(&p, &obs);
        assert!(v.passed, "{:?}", v.violations());
        assert!(v.failure(ID).is_none());
    }
}

#[test]
fn verification_names_what_was_expected_and_found() {
    let (_fx, p) = incident_plan();
    let leaf = p.leaf_cgroup.clone().unwrap();
    let escaped = "/system.slice/containerd.service/kubepods-burstable-pod1a2b_3c4d.slice:cri-containerd:abc123";
    let node_ram = "540672000000";
    let rows: [(&str, String, Vec<u8>, &[&str]); 5] = [
        (
            "escaped from the pod (the incident)",
            format!("0::{escaped}\n"),
            cmdline(&["runsc-sandbox", "boot", "--total-memory", node_ram]),
            &[
                "placement",
                "expected a leaf under the pod cgroup",
                escaped,
                "guest memory",
                node_ram,
                "pod bound",
                "runsc-guard plan",
            ],
        ),
        (
            "in the pod cgroup itself, not a leaf",
            format!("0::{}\n", pod_slice("burstable")),
            cmdline(&["runsc-sandbox", "boot", "--total-memory", "268435456"]),
            &["placement"],
        ),
        (
            "right place, wrong size",
            format!("0::{leaf}\n"),
            cmdline(&["runsc-sandbox", "boot", "--total-memory", "134217728"]),
            &[
                "guest memory",
                "expected --total-memory 268435456 (256 MiB)",
                "found 134217728 (128 MiB)",
            ],
        ),
        (
            "no --total-memory",
            format!("0::{leaf}\n"),
            cmdline(&["runsc-sandbox", "boot"]),
            &["no --total-memory"],
        ),
        (
            "not the sandbox process",
            format!("0::{leaf}\n"),
            cmdline(&["runsc-gofer", "gofer", "--total-memory=268435456"]),
            &["sandbox process", "runsc-gofer"],
        ),
    ];
    for (name, cgroup, args, says) in rows {
        let v = verify(
            &p,
            &Observation::parse(7, CgroupLayout::Unified, &cgroup, &args),
        );
        assert!(!v.passed, "{name}");
        let err = v.failure(ID).unwrap().to_string();
        for word in says {
            assert!(err.contains(word), "{name}: {word:?} not in {err}");
        }
    }
}

#[test]
fn verification_reads_v1_and_a_fake_proc() {
    let (pod, leaf) = cgroupfs_pod_and_leaf();
    let fx = fixture(
        CgroupLayout::Legacy,
        &[("/kubepods", Some(V1_MAX)), (&pod, Some("268435456"))],
    );
    let p = run_with_defaults(&fx, &spec(Some(&leaf), None, &[]));
    let proc_root = tempfile::tempdir().unwrap();
    let pid_dir = proc_root.path().join("31337");
    std::fs::create_dir_all(&pid_dir).unwrap();
    std::fs::write(
        pid_dir.join("cgroup"),
        format!(
            "12:pids:{leaf}\n7:memory:{leaf}\n1:name=systemd:/system.slice/containerd.service\n"
        ),
    )
    .unwrap();
    std::fs::write(
        pid_dir.join("cmdline"),
        cmdline(&["runsc-sandbox", "boot", "--total-memory=268435456"]),
    )
    .unwrap();
    let obs = observe(proc_root.path(), 31337, CgroupLayout::Legacy).unwrap();
    assert_eq!(obs.cgroup.as_deref(), Some(leaf.as_str()));
    assert!(
        verify(&p, &obs).passed,
        "{:?}",
        verify(&p, &obs).violations()
    );
    let err = observe(proc_root.path(), 1, CgroupLayout::Legacy)
        .unwrap_err()
        .to_string();
    assert!(err.contains("1/cgroup"), "{err}");
}

#[test]
fn a_fifo_in_place_of_the_sandbox_s_proc_files_is_refused_at_once() {
    use crate::fsread::testing::{fifo, within_two_seconds};
    let proc_root = tempfile::tempdir().unwrap();
    let pid_dir = proc_root.path().join("31337");
    std::fs::create_dir_all(&pid_dir).unwrap();
    let cgroup = fifo(&pid_dir, "cgroup");
    let root = proc_root.path().to_path_buf();
    let observe_now = move || {
        within_two_seconds(move || observe(&root, 31337, CgroupLayout::Unified).map(|_| ()))
    };
    let err = observe_now.clone()().unwrap_err().to_string();
    assert!(err.contains(cgroup.to_str().unwrap()), "{err}");
    assert!(err.contains("a FIFO, not a regular file"), "{err}");
    std::fs::remove_file(&cgroup).unwrap();
    std::fs::write(&cgroup, "0::/x\n").unwrap();
    let cmdline = fifo(&pid_dir, "cmdline");
    let err = observe_now().unwrap_err().to_string();
    assert!(err.contains(cmdline.to_str().unwrap()), "{err}");
    assert!(err.contains("a FIFO, not a regular file"), "{err}");
}

#[test]
fn a_fifo_in_place_of_the_guard_record_is_refused_at_once() {
    use crate::fsread::testing::{fifo, within_two_seconds};
    let bundle = tempfile::tempdir().unwrap();
    let path = fifo(bundle.path(), RECORD_FILE);
    let dir = bundle.path().to_path_buf();
    let err = within_two_seconds(move || GuardRecord::read(&dir).map(|_| ()))
        .unwrap_err()
        .to_string();
    assert!(err.contains(path.to_str().unwrap()), "{err}");
    assert!(err.contains("a FIFO, not a regular file"), "{err}");
}

#[test]
fn the_record_round_trips_through_the_bundle() {
    let (_fx, p) = incident_plan();
    let bundle = tempfile::tempdir().unwrap();
    let mut record = GuardRecord::new(p.clone());
    let obs = Observation::parse(
        9,
        CgroupLayout::Unified,
        &format!("0::{}\n", p.leaf_cgroup.as_ref().unwrap()),
        &cmdline(&["runsc-sandbox", "--total-memory=268435456"]),
    );
    record.verification = Some(verify(&p, &obs));
    record.write(bundle.path()).unwrap();
    assert!(bundle.path().join(RECORD_FILE).is_file());
    assert_eq!(GuardRecord::read(bundle.path()).unwrap(), record);

    let empty = tempfile::tempdir().unwrap();
    let err = GuardRecord::read(empty.path()).unwrap_err().to_string();
    assert!(err.contains("no guard record"), "{err}");
    std::fs::write(empty.path().join(RECORD_FILE), "{").unwrap();
    let err = GuardRecord::read(empty.path()).unwrap_err().to_string();
    assert!(err.contains("not a guard record"), "{err}");
}

#[test]
fn reads_mem_total() {
    let meminfo = "MemTotal:       16318504 kB\nMemFree:         1000 kB\n";
    assert_eq!(mem_total(meminfo), Some(Bytes(16318504 * 1024)));
    assert_eq!(mem_total("MemFree: 1 kB\n"), None);
    assert_eq!(mem_total("MemTotal: lots kB\n"), None);
}

#[test]
fn role_follows_the_annotations_module() {
    use crate::annotations::{CONTAINER_TYPE, SANDBOX_ID};
    let ann = |pairs: &[(&str, &str)]| -> std::collections::HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    assert_eq!(Role::from_annotations(&ann(&[])), Ok(Role::Sandbox));
    let c = ann(&[(CONTAINER_TYPE, "container"), (SANDBOX_ID, "pod")]);
    assert_eq!(Role::from_annotations(&c), Ok(Role::Container));
}
