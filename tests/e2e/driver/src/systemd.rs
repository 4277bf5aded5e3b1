//! Pod slices through systemd, as kubelet's systemd cgroup driver makes them: runtime unit files
//! in /run/systemd/system (gone at reboot), `daemon-reload`, `systemctl start`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tokio::process::Command;

pub const RUNTIME_UNIT_DIR: &str = "/run/systemd/system";

/// A slice unit file. The accounting switches are what runc's systemd driver sets on the units
/// it creates for kubelet; `MemoryMax` only when the pod has a memory limit.
pub fn slice_unit_file(unit: &str, memory_max: Option<u64>) -> String {
    let mut s = format!(
        "# Written by the runsc-guard e2e driver; removed when its scenario ends.\n\
         [Unit]\n\
         Description=e2e {unit}\n\
         DefaultDependencies=no\n\n\
         [Slice]\n\
         CPUAccounting=yes\n\
         MemoryAccounting=yes\n\
         IOAccounting=yes\n\
         TasksAccounting=yes\n"
    );
    if let Some(m) = memory_max {
        s.push_str(&format!("MemoryMax={m}\n"));
    }
    s
}

/// Runs `systemctl ARGS`, returning its stdout; a non-zero exit is an error with its stderr.
pub async fn systemctl(args: &[&str], limit: Duration) -> Result<String> {
    let out = tokio::time::timeout(
        limit,
        Command::new("systemctl")
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .with_context(|| format!("systemctl {}: no answer within {limit:?}", args.join(" ")))?
    .with_context(|| format!("running systemctl {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "systemctl {}: {} ({})",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim(),
            out.status
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn unit_path(unit: &str) -> PathBuf {
    PathBuf::from(RUNTIME_UNIT_DIR).join(unit)
}

/// Writes the slice's unit file, reloads systemd and starts it (its parent slices start with it).
pub async fn start_slice(unit: &str, memory_max: Option<u64>, limit: Duration) -> Result<()> {
    let path = unit_path(unit);
    tokio::fs::create_dir_all(RUNTIME_UNIT_DIR)
        .await
        .with_context(|| format!("creating {RUNTIME_UNIT_DIR}"))?;
    tokio::fs::write(&path, slice_unit_file(unit, memory_max))
        .await
        .with_context(|| format!("writing {}", path.display()))?;
    systemctl(&["daemon-reload"], limit).await?;
    systemctl(&["start", unit], limit).await?;
    Ok(())
}

/// Stops the slice (and anything still in it), removes its unit file, reloads systemd.
/// Returns what went wrong, if anything; never gives up half-way.
pub async fn remove_slice(unit: &str, limit: Duration) -> Vec<String> {
    let mut problems = Vec::new();
    if let Err(e) = systemctl(&["stop", unit], limit).await {
        problems.push(format!("{e:#}"));
    }
    let path = unit_path(unit);
    if path.exists() {
        if let Err(e) = tokio::fs::remove_file(&path).await {
            problems.push(format!("removing {}: {e}", path.display()));
        }
        if let Err(e) = systemctl(&["daemon-reload"], limit).await {
            problems.push(format!("{e:#}"));
        }
    }
    let _ = systemctl(&["reset-failed", unit], limit).await;
    problems
}

/// `ActiveState` of a unit (`active`, `inactive`, `failed`, ...).
pub async fn active_state(unit: &str, limit: Duration) -> Result<String> {
    Ok(
        systemctl(&["show", "--property=ActiveState", "--value", unit], limit)
            .await?
            .trim()
            .to_string(),
    )
}

/// Loaded units matching a glob, any state.
pub async fn list_units(pattern: &str, limit: Duration) -> Result<Vec<String>> {
    let out = systemctl(
        &[
            "list-units",
            "--all",
            "--plain",
            "--no-legend",
            "--full",
            pattern,
        ],
        limit,
    )
    .await?;
    Ok(parse_list_units(&out))
}

pub fn parse_list_units(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| {
            // A leading status marker (`●`) shows up for failed or not-found units.
            let l = l.trim_start_matches(|c: char| !c.is_ascii_alphanumeric());
            let mut f = l.split_whitespace();
            let unit = f.next()?;
            let rest: Vec<&str> = f.collect();
            Some(format!(
                "{unit} ({})",
                rest.get(..3).unwrap_or(&rest).join(" ")
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_file_with_and_without_limit() {
        let f = slice_unit_file("kubepods-burstable-podx.slice", Some(268435456));
        assert!(f.contains("[Slice]\n"));
        assert!(f.contains("MemoryAccounting=yes\n"));
        assert!(f.contains("MemoryMax=268435456\n"));
        let f = slice_unit_file("kubepods.slice", None);
        assert!(!f.contains("MemoryMax"));
    }

    #[test]
    fn list_units_output() {
        let out = "cri-containerd-abc.scope loaded active running libcontainer container abc\n\
                   ● cri-containerd-def.scope not-found inactive dead cri-containerd-def.scope\n";
        assert_eq!(
            parse_list_units(out),
            vec![
                "cri-containerd-abc.scope (loaded active running)".to_string(),
                "cri-containerd-def.scope (not-found inactive dead)".to_string(),
            ]
        );
        assert!(parse_list_units("").is_empty());
    }
}
