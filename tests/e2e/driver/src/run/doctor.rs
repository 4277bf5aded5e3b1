//! `runsc-guard doctor --json` on the node while a scenario's pod runs: its exit status, the
//! findings that are not `ok`, and whether it names the pod. Its whole output is kept in the
//! results (`doctor/<scenario>.json`).

use super::{Ctx, Run};
use crate::pod::POD_NAMESPACE;
use crate::report::{DoctorFinding, DoctorRecord};
use crate::scenarios::{DoctorExpect, Scenario};

/// containerd's config with only the handlers a guarded node has (runc and this project's
/// shim), written by the guest suite beside the real one: the testbed's `runsc-stock` handler
/// is the incident's configuration, kept on purpose, and the doctor rightly fails on it.
pub const GUARDED_NODE_CONFIG: &str = "/etc/containerd/config-guarded-node.toml";

pub(super) async fn run_doctor(ctx: &Ctx, sc: &Scenario, run: &Run, expect: DoctorExpect) {
    let mut args = vec!["doctor".to_string(), "--json".to_string()];
    if expect == DoctorExpect::Clean {
        args.push("--containerd-config".into());
        args.push(GUARDED_NODE_CONFIG.into());
    }
    let pod = format!("{POD_NAMESPACE}/{}", sc.name);
    let mut command = vec![ctx.runsc_guard.display().to_string()];
    command.extend(args.iter().cloned());
    let mut rec = DoctorRecord {
        command: command.clone(),
        pod: pod.clone(),
        ..Default::default()
    };
    run.step(format!("running {}", command.join(" ")));
    let out = tokio::time::timeout(
        ctx.limit(60),
        tokio::process::Command::new(&ctx.runsc_guard)
            .args(&args)
            .kill_on_drop(true)
            .output(),
    )
    .await;
    match out {
        Err(_) => rec.error = Some(format!("no answer within {:?}", ctx.limit(60))),
        Ok(Err(e)) => rec.error = Some(format!("running {}: {e}", ctx.runsc_guard.display())),
        Ok(Ok(o)) => {
            let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
            rec.exit_code = o.status.code();
            rec.names_pod = stdout.contains(&pod);
            match parse_findings(&stdout) {
                Ok(f) => rec.findings = f,
                Err(e) => {
                    let stderr = String::from_utf8_lossy(&o.stderr);
                    rec.parse_error = Some(format!("{e}; stderr: {}", stderr.trim()));
                }
            }
            rec.output_file = keep_output(ctx, sc, &stdout, &o.stderr);
        }
    }
    run.step(format!(
        "doctor: exit {:?}, names {pod}: {}, {} finding(s) not ok{}",
        rec.exit_code,
        rec.names_pod,
        rec.findings.len(),
        rec.error
            .as_deref()
            .or(rec.parse_error.as_deref())
            .map(|e| format!(", {e}"))
            .unwrap_or_default()
    ));
    run.ev(|e| e.doctor = Some(rec));
}

fn keep_output(ctx: &Ctx, sc: &Scenario, stdout: &str, stderr: &[u8]) -> Option<String> {
    let rel = format!("doctor/{}.json", sc.name);
    let path = ctx.results.join(&rel);
    std::fs::create_dir_all(path.parent()?).ok()?;
    std::fs::write(&path, stdout).ok()?;
    if !stderr.is_empty() {
        let _ = std::fs::write(
            ctx.results.join(format!("doctor/{}.stderr", sc.name)),
            stderr,
        );
    }
    Some(rel)
}

/// The findings of the doctor's JSON report whose severity is not `ok`.
pub fn parse_findings(stdout: &str) -> Result<Vec<DoctorFinding>, String> {
    let v: serde_json::Value =
        serde_json::from_str(stdout).map_err(|e| format!("the output is not JSON: {e}"))?;
    let list = v
        .get("findings")
        .and_then(|f| f.as_array())
        .ok_or("the JSON has no findings[]")?;
    let text = |f: &serde_json::Value, k: &str| {
        f.get(k)
            .and_then(|x| x.as_str())
            .unwrap_or_default()
            .to_string()
    };
    Ok(list
        .iter()
        .map(|f| DoctorFinding {
            area: text(f, "area"),
            check: text(f, "check"),
            severity: text(f, "severity"),
            summary: text(f, "summary"),
        })
        .filter(|f| f.severity != "ok")
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn findings_not_ok() {
        let json = r#"{"status":"fail","exit_code":2,"node":{},"findings":[
            {"area":"containerd","check":"containerd.config","severity":"ok","summary":"v2","fix":null},
            {"area":"sandbox","check":"sandbox.abc.placement","severity":"fail",
             "summary":"the sandbox of pod e2e/incident-stock (pid 9) sits in /system.slice/x","fix":"y"}]}"#;
        let f = parse_findings(json).expect("parses");
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].check, "sandbox.abc.placement");
        assert_eq!(f[0].severity, "fail");
        assert!(parse_findings("usage: runsc-guard plan").is_err());
        assert!(parse_findings("{}").is_err());
    }
}
