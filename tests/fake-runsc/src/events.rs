//! What runsc reports about containers without changing them: `events --stats`, `list`, `ps`.

use fake_runsc::{EVENT_CPU_NS, EVENT_MEMORY_USAGE, EVENT_PIDS};
use serde_json::json;

use crate::args::{one_id, Invocation};
use crate::state::Ctx;

/// `runsc events --stats <id>`: one stats event; like runsc, only for a container that is not
/// stopped. Without `--stats` runsc would stream events; the fake has none to stream.
pub(crate) fn events(ctx: &Ctx, inv: &Invocation) -> Result<(), String> {
    let c = ctx.load_existing(one_id(inv, 0)?)?;
    c.check_fail("events")?;
    if inv.flags.get("stats").is_none_or(|v| v == "false") {
        return Err("fake-runsc: events without --stats is not played".into());
    }
    if c.status() == "stopped" {
        return Err(format!(
            "cannot get events for container {:?} in state stopped",
            c.id()
        ));
    }
    let event = json!({
        "type": "stats",
        "id": c.id(),
        "data": {
            "cpu": {"usage": {"kernel": EVENT_CPU_NS / 7 * 2, "user": EVENT_CPU_NS / 7 * 5,
                              "total": EVENT_CPU_NS, "percpu": [EVENT_CPU_NS]}},
            "memory": {"usage": {"limit": 0, "usage": EVENT_MEMORY_USAGE, "failcnt": 0},
                       "swap": {"limit": 0, "failcnt": 0}},
            "pids": {"current": EVENT_PIDS},
        },
    });
    println!("{event}");
    Ok(())
}

/// `runsc list [--quiet]`: every container in the root, in id order.
pub(crate) fn list(ctx: &Ctx, inv: &Invocation) -> Result<(), String> {
    if !inv.args.is_empty() {
        return Err(format!("list: unexpected arguments {:?}", inv.args));
    }
    let ids = ctx.ids()?;
    if inv.flags.get("quiet").is_some_and(|v| v != "false") {
        for id in ids {
            println!("{id}");
        }
        return Ok(());
    }
    println!("ID   PID   STATUS   BUNDLE   CREATED   OWNER");
    for id in ids {
        if let Some(c) = ctx.load(&id)? {
            println!(
                "{id}   {}   {}   {}   -   ",
                c.value["pid"],
                c.status(),
                c.str("bundle")
            );
        }
    }
    Ok(())
}

pub(crate) fn ps(ctx: &Ctx, inv: &Invocation) -> Result<(), String> {
    let c = ctx.load_existing(one_id(inv, 0)?)?;
    c.check_fail("ps")?;
    match inv.flags.get("format").map(String::as_str) {
        Some("json") => println!("[1]"),
        None | Some("table") => {
            println!("UID  PID  PPID  C  STIME  TIME  CMD\n0    1    0     0  00:00  0s    fake")
        }
        Some(other) => return Err(format!("ps: unsupported format {other:?}")),
    }
    Ok(())
}
