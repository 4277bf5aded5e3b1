//! What a runsc root holds, as fake-runsc keeps it: one state file per container, named as runsc
//! names its own, read and written by every invocation (and every shim) that shares the root.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use fake_runsc::{
    CALLS_FILE, KNOB_EXIT_CODE, KNOB_RUN_MS, KNOB_STDOUT, STATE_FILE_SANDBOX, STATE_FILE_SUFFIX,
};
use serde_json::{json, Value};

use crate::failure::fail_if_asked;
use crate::sandbox::is_alive;
use crate::{exec, now_ms, rfc3339};

/// Where this invocation keeps and reports things.
pub(crate) struct Ctx {
    pub(crate) root: Option<PathBuf>,
    pub(crate) log: Option<PathBuf>,
}

impl Ctx {
    pub(crate) fn root(&self) -> Result<&Path, String> {
        self.root.as_deref().ok_or_else(|| {
            "fake-runsc: --root is required (tests never use the default root)".into()
        })
    }

    /// The state file of container `id`: the one there is, else where it would be created as a
    /// sandbox of its own.
    pub(crate) fn state_path(&self, id: &str) -> Result<PathBuf, String> {
        self.state_path_in(id, id)
    }

    /// The state file of container `id`: the one there is, else the one of `id` in `sandbox_id`.
    pub(crate) fn state_path_in(&self, id: &str, sandbox_id: &str) -> Result<PathBuf, String> {
        for i in [id, sandbox_id] {
            if i.is_empty() || i.contains('/') || i.starts_with('.') || i.contains(':') {
                return Err(format!("invalid container id {i:?}"));
            }
        }
        let root = self.root()?;
        let prefix = format!("{id}{STATE_FILE_SANDBOX}");
        if let Ok(entries) = fs::read_dir(root) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with(&prefix) && name.ends_with(STATE_FILE_SUFFIX) {
                    return Ok(e.path());
                }
            }
        }
        Ok(root.join(fake_runsc::state_file_name(id, sandbox_id)))
    }

    pub(crate) fn log_line(&self, level: &str, msg: &str) {
        let Some(log) = &self.log else { return };
        let line = json!({"level": level, "msg": msg, "time": rfc3339(now_ms())});
        if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(log) {
            let _ = f.write_all(format!("{line}\n").as_bytes());
        }
    }

    pub(crate) fn record(&self, argv: &[String]) {
        let Some(root) = &self.root else { return };
        let _ = fs::create_dir_all(root);
        let cwd = std::env::current_dir()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let line = json!({"argv": argv, "cwd": cwd});
        // One append-mode write per line keeps concurrent invocations' lines whole.
        if let Ok(mut f) = OpenOptions::new()
            .create(true)
            .append(true)
            .open(root.join(CALLS_FILE))
        {
            let _ = f.write_all(format!("{line}\n").as_bytes());
        }
    }

    pub(crate) fn load(&self, id: &str) -> Result<Option<Container>, String> {
        let path = self.state_path(id)?;
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("reading {}: {e}", path.display())),
        };
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| format!("corrupt state {}: {e}", path.display()))?;
        let mut c = Container { value };
        c.settle();
        // A container joining a sandbox dies with it.
        if !c.is_sandbox() && c.status() != "stopped" {
            let sandbox_id = c.str("sandbox_id").to_string();
            let sandbox_gone = match self.load(&sandbox_id) {
                Ok(Some(sandbox)) => sandbox.status() == "stopped",
                Ok(None) => true,
                Err(_) => false,
            };
            if sandbox_gone {
                c.stop(128 + 9, now_ms());
                c.value["sandbox_died"] = json!(true);
            }
        }
        Ok(Some(c))
    }

    pub(crate) fn load_existing(&self, id: &str) -> Result<Container, String> {
        let full = self
            .resolve(id)?
            .ok_or_else(|| format!("container {id:?} does not exist"))?;
        self.load(&full)?
            .ok_or_else(|| format!("container {id:?} does not exist"))
    }

    /// Every container id in the root, sorted.
    pub(crate) fn ids(&self) -> Result<Vec<String>, String> {
        let root = self.root()?;
        let entries = match fs::read_dir(root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(format!("reading {}: {e}", root.display())),
        };
        let mut ids: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let (id, _) = name
                    .strip_suffix(STATE_FILE_SUFFIX)?
                    .split_once(STATE_FILE_SANDBOX)?;
                Some(id.to_string())
            })
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// The container an id names, as runsc's `findContainerID` resolves it (20221219 and
    /// since): every container whose id starts with it matches; one match is taken, even when it
    /// is not exactly the id, and several are an error, even when one is exactly the id.
    pub(crate) fn resolve(&self, partial: &str) -> Result<Option<String>, String> {
        self.state_path(partial)?;
        let matches: Vec<String> = self
            .ids()?
            .into_iter()
            .filter(|id| id.starts_with(partial))
            .collect();
        match matches.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(one.clone())),
            [a, b, ..] => Err(format!(
                "id {partial:?} is ambiguous and could refer to multiple containers: {a:?}, {b:?}"
            )),
        }
    }

    pub(crate) fn save(&self, c: &Container) -> Result<(), String> {
        let sandbox_id = match c.str("sandbox_id") {
            "" => c.id(),
            s => s,
        };
        let path = self.state_path_in(c.id(), sandbox_id)?;
        let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
        fs::write(&tmp, c.value.to_string())
            .and_then(|()| fs::rename(&tmp, &path))
            .map_err(|e| format!("writing {}: {e}", path.display()))
    }
}

/// A container's state file.
pub(crate) struct Container {
    pub(crate) value: Value,
}

impl Container {
    pub(crate) fn str(&self, key: &str) -> &str {
        self.value[key].as_str().unwrap_or_default()
    }

    pub(crate) fn id(&self) -> &str {
        self.str("id")
    }

    pub(crate) fn status(&self) -> &str {
        self.str("status")
    }

    pub(crate) fn annotation(&self, key: &str) -> Option<&str> {
        self.value["annotations"][key].as_str()
    }

    /// A running container whose run-ms has elapsed has stopped by itself; a sandbox whose
    /// process died has stopped, its exit status lost with it.
    pub(crate) fn settle(&mut self) {
        let process = self.value["process_pid"].as_i64().unwrap_or_default();
        if process > 0 && self.status() != "stopped" && !is_alive(process as i32) {
            self.stop(128 + 9, now_ms());
            self.value["sandbox_died"] = json!(true);
            return;
        }
        if self.status() != "running" {
            return;
        }
        let Some(run_ms) = self
            .annotation(KNOB_RUN_MS)
            .and_then(|v| v.parse::<u64>().ok())
        else {
            return;
        };
        let started = self.value["started_ms"].as_u64().unwrap_or_default();
        if now_ms() >= started + run_ms {
            let code = self
                .annotation(KNOB_EXIT_CODE)
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(0);
            self.stop(code, started + run_ms);
        }
    }

    pub(crate) fn stop(&mut self, exit_status: u32, at_ms: u64) {
        self.value["status"] = json!("stopped");
        self.value["exit_status"] = json!(exit_status);
        self.value["stopped_ms"] = json!(at_ms);
    }

    /// Fails when the test asked this sub-command to fail.
    pub(crate) fn check_fail(&self, command: &str) -> Result<(), String> {
        fail_if_asked(&self.value["annotations"], command)
    }

    /// Stopped because its sandbox died, not by its own exit: runsc cannot tell a status then.
    pub(crate) fn died_with_sandbox(&self) -> bool {
        self.value["sandbox_died"].as_bool() == Some(true)
    }

    /// Whether a real process stands for this sandbox (KNOB_SANDBOX_PROCESS).
    pub(crate) fn has_process(&self) -> bool {
        self.value["process_pid"].as_i64().is_some_and(|p| p > 0)
    }

    pub(crate) fn is_sandbox(&self) -> bool {
        self.str("role") == "sandbox"
    }

    /// With a terminal (`--console-socket` at create), the text goes to a pty whose master is
    /// sent to that socket, as runsc sends it.
    pub(crate) fn emit_stdout(&self) -> Result<(), String> {
        if let Some(socket) = self.value["console_socket"].as_str() {
            return exec::send_terminal(Path::new(socket), self.annotation(KNOB_STDOUT));
        }
        self.emit_plain_stdout();
        Ok(())
    }

    pub(crate) fn emit_plain_stdout(&self) {
        if let Some(text) = self.annotation(KNOB_STDOUT) {
            let mut out = std::io::stdout();
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::Tree;

    #[test]
    fn ids_resolve_by_prefix_as_runsc_resolves_them() {
        let root = Tree::new(
            "ids",
            &[
                ("web_sandbox:web.state", "{}"),
                ("web-sidecar_sandbox:web-sidecar.state", "{}"),
                ("db_sandbox:db.state", "{}"),
                ("calls.jsonl", ""),
            ],
        );
        let ctx = Ctx {
            root: Some(root.0.clone()),
            log: None,
        };
        assert_eq!(ctx.ids().unwrap(), ["db", "web", "web-sidecar"]);
        let err = ctx.resolve("web").unwrap_err();
        assert!(err.contains("ambiguous"), "{err}");
        assert_eq!(ctx.resolve("d").unwrap().as_deref(), Some("db"));
        assert_eq!(ctx.resolve("cache").unwrap(), None);
        fs::remove_file(root.0.join("web_sandbox:web.state")).unwrap();
        // The danger: the id of a container that is gone names another one.
        assert_eq!(ctx.resolve("web").unwrap().as_deref(), Some("web-sidecar"));
    }
}
