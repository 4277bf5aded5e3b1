//! Failure injection: the sub-commands a test asks to hang or fail for a container, through its
//! annotations (`KNOB_HANG`, `KNOB_FAIL`), failing as runsc fails.

use std::time::Duration;

use fake_runsc::{KNOB_FAIL, KNOB_FAIL_MESSAGE, KNOB_HANG, KNOB_HANG_MS};
use serde_json::Value;

pub(crate) fn fail_if_asked(annotations: &Value, command: &str) -> Result<(), String> {
    let hang = annotations[KNOB_HANG]
        .as_str()
        .is_some_and(|list| list.split(',').any(|c| c.trim() == command));
    if hang {
        let ms = annotations[KNOB_HANG_MS]
            .as_str()
            .and_then(|v| v.parse().ok())
            .unwrap_or(60_000);
        std::thread::sleep(Duration::from_millis(ms));
    }
    let asked = annotations[KNOB_FAIL]
        .as_str()
        .is_some_and(|list| list.split(',').any(|c| c.trim() == command));
    if !asked {
        return Ok(());
    }
    Err(annotations[KNOB_FAIL_MESSAGE]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| format!("fake-runsc: {command} failed as the test asked")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fail_knob_lists_subcommands() {
        let a = json!({KNOB_FAIL: "start, kill", KNOB_FAIL_MESSAGE: "boom"});
        assert_eq!(fail_if_asked(&a, "kill"), Err("boom".to_string()));
        assert_eq!(fail_if_asked(&a, "create"), Ok(()));
        let a = json!({KNOB_FAIL: "create"});
        assert!(fail_if_asked(&a, "create").unwrap_err().contains("create"));
    }
}
