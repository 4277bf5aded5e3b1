//! Where a new shim's time goes before it serves containerd's first Create: `start` (reading the
//! options and runsc.toml, finding the pod's shim), the daemon's exec, its runtime and logger,
//! its connection to containerd's events, the task service, then the socket listening until the
//! Create arrives. Logged once per daemon, when its first Create arrives, e.g.
//!
//! ```text
//! timing daemon 0123abcd: start=1.1ms exec=0.9ms runtime=0.3ms publisher=0.2ms service=0.4ms ready=2.0ms total=4.9ms
//! ```
//!
//! `start` hands its own moments to the daemon in [`STARTED_ENV`]; the clock is
//! CLOCK_MONOTONIC, the same for every process of the host. `ready` is what runs after the
//! task service is made: the socket is bound and listens, `start` sees it answer, writes the
//! bundle's files and exits, and containerd connects and sends Create.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use log::info;

/// Set by `start` for the daemon: `<start began>,<daemon spawned>`, CLOCK_MONOTONIC ns.
pub const STARTED_ENV: &str = "RUNSC_GUARD_STARTED_NS";

/// The daemon's moments so far, by name.
static MARKS: Mutex<Vec<(&'static str, u64)>> = Mutex::new(Vec::new());
static LOGGED: AtomicBool = AtomicBool::new(false);

/// CLOCK_MONOTONIC in nanoseconds.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given and nothing else.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

/// The value of [`STARTED_ENV`] for a daemon spawned now by a `start` that began at `began`.
pub fn started_value(began: u64) -> String {
    format!("{began},{}", now_ns())
}

/// When this process began: its first moment ([`mark`]ed first thing in `main`), else now.
pub fn began() -> u64 {
    MARKS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .first()
        .map_or_else(now_ns, |(_, t)| *t)
}

/// Records that the daemon reached `name` now.
pub fn mark(name: &'static str) {
    let now = now_ns();
    MARKS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((name, now));
}

/// At the daemon's first Create: logs its start-up (once; later calls do nothing).
pub fn first_create(id: &str) {
    if LOGGED.swap(true, Ordering::SeqCst) {
        return;
    }
    let now = now_ns();
    let started = std::env::var(STARTED_ENV).ok();
    let marks = MARKS.lock().unwrap_or_else(|p| p.into_inner()).clone();
    info!(
        "timing daemon {id}: {}",
        render(started.as_deref(), &marks, now)
    );
}

/// The line's fields: the time between consecutive moments, each named by the later one, and
/// the total from the first. `start`'s two moments come first when it handed them over.
fn render(started: Option<&str>, marks: &[(&'static str, u64)], now: u64) -> String {
    let mut moments: Vec<(&str, u64)> = Vec::new();
    if let Some((began, spawned)) = started
        .and_then(|s| s.split_once(','))
        .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
    {
        moments.push(("began", began));
        moments.push(("start", spawned));
    }
    moments.extend(marks.iter().map(|(n, t)| (*n, *t)));
    moments.push(("ready", now));
    let ms = |ns: u64| format!("{:.1}ms", ns as f64 / 1e6);
    let mut fields: Vec<String> = moments
        .windows(2)
        .map(|w| format!("{}={}", w[1].0, ms(w[1].1.saturating_sub(w[0].1))))
        .collect();
    fields.push(format!("total={}", ms(now.saturating_sub(moments[0].1))));
    fields.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_span_ends_at_its_moment() {
        let ms = 1_000_000;
        let marks = [
            ("exec", 13 * ms),
            ("runtime", 14 * ms),
            ("service", 17 * ms),
        ];
        assert_eq!(
            render(Some("10000000,12000000"), &marks, 20 * ms),
            "start=2.0ms exec=1.0ms runtime=1.0ms service=3.0ms ready=3.0ms total=10.0ms"
        );
        // A daemon `start` did not spawn counts from its own first moment.
        assert_eq!(
            render(None, &marks, 20 * ms),
            "runtime=1.0ms service=3.0ms ready=3.0ms total=7.0ms"
        );
        assert_eq!(
            render(Some("garbage"), &marks[..1], 13 * ms),
            "ready=0.0ms total=0.0ms"
        );
    }

    #[test]
    fn the_clock_moves_forward() {
        let a = now_ns();
        let b = now_ns();
        assert!(a > 0 && b >= a);
        let v = started_value(a);
        let (began, spawned) = v.split_once(',').unwrap();
        assert_eq!(began.parse::<u64>().unwrap(), a);
        assert!(spawned.parse::<u64>().unwrap() >= a);
    }
}
