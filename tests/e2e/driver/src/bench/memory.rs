//! What a pod costs the host besides its sandbox: the RSS of its shim process(es), and of every
//! runtime process of the pod other than the sandbox itself (gofers, shims), for a 1- and a
//! 4-container pod.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::pod::BenchPod;
use crate::cri::Cri;
use crate::procs::{self, RUNSC_PROCS, SHIM_PROCS};

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PodMemory {
    pub handler: String,
    pub containers: usize,
    pub shims: usize,
    pub shim_rss_kib: u64,
    /// Runtime processes of the pod other than the sandbox (runsc-sandbox), shims included.
    pub beyond_sandbox_rss_kib: u64,
    pub error: Option<String>,
}

/// Sums what the snapshot shows for the pod with these ids.
pub fn account(snap: &[procs::Proc], ids: &[String]) -> (usize, u64, u64) {
    let mine: Vec<&procs::Proc> = snap
        .iter()
        .filter(|p| RUNSC_PROCS.contains(&p.name()) || SHIM_PROCS.contains(&p.name()))
        .filter(|p| ids.iter().any(|id| p.args_mention(id)))
        .collect();
    let shims: Vec<&&procs::Proc> = mine
        .iter()
        .filter(|p| SHIM_PROCS.contains(&p.name()))
        .collect();
    let shim_rss = shims.iter().filter_map(|p| p.rss_kib).sum();
    let beyond = mine
        .iter()
        .filter(|p| p.name() != "runsc-sandbox")
        .filter_map(|p| p.rss_kib)
        .sum();
    (shims.len(), shim_rss, beyond)
}

pub async fn measure(cri: &Cri, handler: &str, containers: usize, image: &str) -> PodMemory {
    let mut m = PodMemory {
        handler: handler.to_string(),
        containers,
        ..Default::default()
    };
    let name = format!("bench-mem-{containers}");
    let mut pod = match BenchPod::prepare(cri, handler, &name, image).await {
        Ok(p) => p,
        Err(e) => {
            m.error = Some(format!("{e:#}"));
            return m;
        }
    };
    let r = async {
        pod.run_sandbox().await?;
        for i in 0..containers {
            let cname = format!("c{i}");
            let (id, _) = pod.create(&cname).await?;
            pod.start(&id);
            pod.wait_running(&cname, &id, cri.limit(180)).await?;
        }
        // Let the shims settle after the last start (lazy allocations, exited helpers).
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mut ids = pod.containers.clone();
        ids.extend(pod.sandbox_id.clone());
        let (shims, shim_rss, beyond) = account(&procs::snapshot(), &ids);
        m.shims = shims;
        m.shim_rss_kib = shim_rss;
        m.beyond_sandbox_rss_kib = beyond;
        Ok::<_, anyhow::Error>(())
    }
    .await;
    if let Err(e) = r {
        m.error = Some(format!("{e:#}"));
    }
    let (_, _, problems) = pod.teardown().await;
    if !problems.is_empty() && m.error.is_none() {
        m.error = Some(problems.join("; "));
    }
    eprintln!(
        "e2e-driver: memory {handler} x{containers}: {} shim(s), {} KiB{}",
        m.shims,
        m.shim_rss_kib,
        m.error
            .as_deref()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default()
    );
    m
}
