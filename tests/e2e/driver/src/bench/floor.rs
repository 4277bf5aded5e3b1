//! The physical floor of any runsc shim: `runsc create` + `runsc start` of a sandbox bundle made
//! by hand in the guest, with no shim and no containerd in between. The bundle is the shim's own
//! for a pod of the bench (its config.json as the shim and the guard left it, a copy of its
//! rootfs), under a fresh id and cgroup each time.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::pod::{BenchPod, MARKER_ROOT};
use crate::cri::Cri;
use crate::procs;

const TASK_DIR: &str = "/run/containerd/io.containerd.runtime.v2.task/k8s.io";

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Floor {
    pub create_ms: Vec<f64>,
    pub start_ms: Vec<f64>,
    /// The global flags the runs used (taken from the shim's sandbox).
    pub flags: Vec<String>,
    pub problems: Vec<String>,
}

/// The spec's cgroupsPath with its last part replaced by `name`, in whichever form it has
/// (systemd `slice:prefix:name` or a path).
pub fn rename_cgroup(path: &str, name: &str) -> String {
    let parts: Vec<&str> = path.split(':').collect();
    if parts.len() == 3 {
        return format!("{}:{}:{name}", parts[0], parts[1]);
    }
    match path.rsplit_once('/') {
        Some((dir, _)) => format!("{dir}/{name}"),
        None => name.to_string(),
    }
}

/// The runsc global flags that change what create and start do, from the sandbox's argv.
pub fn sandbox_flags(argv: &[String]) -> Vec<String> {
    let boot = argv.iter().position(|a| a == "boot").unwrap_or(argv.len());
    argv[..boot]
        .iter()
        .filter(|a| {
            [
                "--network=",
                "--systemd-cgroup",
                "--platform=",
                "--overlay2=",
                "--ignore-cgroups",
            ]
            .iter()
            .any(|f| a.starts_with(f))
        })
        .cloned()
        .collect()
}

/// Runs runsc, timed. Its stderr goes to a file, not a pipe: the sandbox and gofer that
/// `create` starts inherit it and outlive the call, so a pipe would not reach EOF.
async fn timed(args: &[String], limit: Duration) -> Result<f64> {
    let err_path = PathBuf::from(MARKER_ROOT).join(format!("floor-stderr-{}", std::process::id()));
    let err_file = std::fs::File::create(&err_path)
        .with_context(|| format!("creating {}", err_path.display()))?;
    let t = Instant::now();
    let mut child = tokio::process::Command::new("runsc")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(err_file))
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("running runsc {}", args.join(" ")))?;
    let status = tokio::time::timeout(limit, child.wait())
        .await
        .map_err(|_| anyhow!("runsc {} did not end in {:?}", args.join(" "), limit))?
        .with_context(|| format!("waiting for runsc {}", args.join(" ")))?;
    let took = t.elapsed().as_secs_f64() * 1000.0;
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    let _ = std::fs::remove_file(&err_path);
    if !status.success() {
        bail!(
            "runsc {} failed ({status}): {}",
            args.join(" "),
            stderr.trim()
        );
    }
    Ok(took)
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", from.display()))
        .arg(to)
        .status()
        .context("running cp")?;
    if !st.success() {
        bail!("cp -a {} {} failed", from.display(), to.display());
    }
    Ok(())
}

/// `n` by-hand create+start runs of the bundle of `pod`'s sandbox (which must be running).
async fn runs(cri: &Cri, pod: &BenchPod, n: usize, f: &mut Floor) -> Result<()> {
    let sid = pod
        .sandbox_id
        .clone()
        .ok_or_else(|| anyhow!("no sandbox"))?;
    let bundle = Path::new(TASK_DIR).join(&sid);
    let spec_text = std::fs::read_to_string(bundle.join("config.json"))
        .with_context(|| format!("reading the shim's bundle {}", bundle.display()))?;
    let spec: serde_json::Value = serde_json::from_str(&spec_text).context("config.json")?;
    let snap = procs::snapshot();
    let sandbox =
        procs::find_sandbox(&snap, &sid).ok_or_else(|| anyhow!("no runsc-sandbox for {sid}"))?;
    f.flags = sandbox_flags(&sandbox.argv);

    let base = PathBuf::from(MARKER_ROOT).join("floor");
    let rootfs = base.join("rootfs");
    copy_tree(&bundle.join("rootfs"), &rootfs)?;
    let root = base.join("state");
    std::fs::create_dir_all(&root)?;
    let cg = spec
        .pointer("/linux/cgroupsPath")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_string();
    for i in 0..n {
        let id = format!("e2e-floor-{i}");
        let b = base.join(format!("bundle-{i}"));
        std::fs::create_dir_all(&b)?;
        let mut s = spec.clone();
        s["root"]["path"] = serde_json::json!(rootfs.display().to_string());
        if !cg.is_empty() {
            s["linux"]["cgroupsPath"] = serde_json::json!(rename_cgroup(&cg, &id));
        }
        std::fs::write(b.join("config.json"), serde_json::to_vec(&s)?)?;
        let mut g = vec![format!("--root={}", root.display())];
        g.extend(f.flags.iter().cloned());
        let with = |sub: &[&str]| -> Vec<String> {
            let mut a = g.clone();
            a.extend(sub.iter().map(|s| s.to_string()));
            a
        };
        let bs = b.display().to_string();
        let r = async {
            let c = timed(&with(&["create", "--bundle", &bs, &id]), cri.limit(90)).await?;
            let s = timed(&with(&["start", &id]), cri.limit(60)).await?;
            Ok::<_, anyhow::Error>((c, s))
        }
        .await;
        match r {
            Ok((c, s)) => {
                eprintln!("e2e-driver: floor {i}: runsc create {c:.0} ms, start {s:.0} ms");
                f.create_ms.push(c);
                f.start_ms.push(s);
            }
            Err(e) => {
                f.problems.push(format!("run {i}: {e:#}"));
                // One failure says what is wrong; more would only spend the VM's time.
                let _ = timed(&with(&["delete", "--force", &id]), cri.limit(60)).await;
                break;
            }
        }
        if let Err(e) = timed(&with(&["delete", "--force", &id]), cri.limit(120)).await {
            f.problems.push(format!("run {i}: {e:#}"));
        }
        let _ = std::fs::remove_dir_all(&b);
    }
    let _ = std::fs::remove_dir_all(&base);
    Ok(())
}

pub async fn measure(cri: &Cri, image: &str, n: usize) -> Floor {
    let mut f = Floor::default();
    let mut pod = match BenchPod::prepare(cri, "runsc", "bench-floor", image).await {
        Ok(p) => p,
        Err(e) => {
            f.problems.push(format!("{e:#}"));
            return f;
        }
    };
    let r = async {
        pod.run_sandbox().await?;
        runs(cri, &pod, n, &mut f).await
    }
    .await;
    if let Err(e) = r {
        f.problems.push(format!("{e:#}"));
    }
    let (_, _, problems) = pod.teardown().await;
    f.problems.extend(problems);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_renamed_in_either_form() {
        assert_eq!(
            rename_cgroup("kubepods-besteffort-podx.slice:cri-containerd:abc", "f-1"),
            "kubepods-besteffort-podx.slice:cri-containerd:f-1"
        );
        assert_eq!(
            rename_cgroup("/kubepods/podx/abc", "f-1"),
            "/kubepods/podx/f-1"
        );
    }

    #[test]
    fn flags_before_boot_only() {
        let argv: Vec<String> = [
            "runsc-sandbox",
            "--root=/r",
            "--network=host",
            "--systemd-cgroup=true",
            "boot",
            "--network=none",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            sandbox_flags(&argv),
            vec!["--network=host", "--systemd-cgroup=true"]
        );
    }
}
