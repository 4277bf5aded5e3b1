//! Where a Create's or a Start's time goes: spans recorded while one RPC runs, logged as one
//! line when it returns, e.g.
//!
//! ```text
//! timing create 0123abcd: runsc.create=812.1ms guard.plan=0.3ms mount=1.2ms io=0.1ms other=2.0ms shim=3.6ms total=815.7ms result=ok
//! ```
//!
//! Each `name=…ms` is the sum of that span's occurrences, less the spans inside it (the guard's
//! plan without the `runsc --version` it asks once per binary); `other` is the RPC's time outside any
//! span, `shim` everything that is not a `runsc.*` call (the shim's own cost: the guard, mounts,
//! stdio, bookkeeping), `total` the whole RPC. The spans live in a task-local, so code outside an
//! RPC (a test, the `runsc-guard` CLI, a task spawned by the RPC such as the `runsc wait` watcher)
//! records nothing and pays nothing but a failed lookup.

use std::cell::RefCell;
use std::future::Future;
use std::time::{Duration, Instant};

use log::info;

tokio::task_local! {
    static SPANS: RefCell<Spans>;
}

/// The spans of one RPC, in the order they first occurred.
#[derive(Debug, Default)]
pub struct Spans {
    spans: Vec<(String, Duration)>,
    /// For each span still open, innermost last: the time of the spans inside it so far.
    open: Vec<Duration>,
}

impl Spans {
    fn open(&mut self) {
        self.open.push(Duration::ZERO);
    }

    /// Closes the innermost open span, which took `took` in all.
    fn close(&mut self, name: &str, took: Duration) {
        let inner = self.open.pop().unwrap_or_default();
        self.add(name, took.saturating_sub(inner));
    }

    /// Adds `took` to `name`, and to the time of the span it ran inside.
    fn add(&mut self, name: &str, took: Duration) {
        match self.spans.iter_mut().find(|(n, _)| n == name) {
            Some((_, sum)) => *sum += took,
            None => self.spans.push((name.to_string(), took)),
        }
        if let Some(outer) = self.open.last_mut() {
            *outer += took;
        }
    }

    /// The log line's fields after the colon, for an RPC that took `total`.
    pub fn render(&self, total: Duration) -> String {
        let mut fields: Vec<String> = self
            .spans
            .iter()
            .map(|(name, took)| format!("{name}={}", ms(*took)))
            .collect();
        let spanned: Duration = self.spans.iter().map(|(_, t)| *t).sum();
        let runsc: Duration = self
            .spans
            .iter()
            .filter(|(n, _)| n.starts_with("runsc."))
            .map(|(_, t)| *t)
            .sum();
        fields.push(format!("other={}", ms(total.saturating_sub(spanned))));
        fields.push(format!("shim={}", ms(total.saturating_sub(runsc))));
        fields.push(format!("total={}", ms(total)));
        fields.join(" ")
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1}ms", d.as_secs_f64() * 1000.0)
}

/// Runs one RPC (`create`, `start`) for container `id`, recording the spans its calls make, and
/// logs them in one line at info level when it returns, whatever it returns.
pub async fn rpc<T, E, F>(rpc: &str, id: &str, fut: F) -> Result<T, E>
where
    F: Future<Output = Result<T, E>>,
{
    let began = Instant::now();
    let (result, spans) = SPANS
        .scope(RefCell::new(Spans::default()), async {
            let result = fut.await;
            (result, SPANS.with(|s| std::mem::take(&mut *s.borrow_mut())))
        })
        .await;
    let outcome = if result.is_ok() { "ok" } else { "error" };
    info!(
        "timing {rpc} {id}: {} result={outcome}",
        spans.render(began.elapsed())
    );
    result
}

/// Awaits `fut` as the span `name` of the RPC running in this task, if any.
pub async fn span<F: Future>(name: &str, fut: F) -> F::Output {
    let _ = SPANS.try_with(|s| s.borrow_mut().open());
    let began = Instant::now();
    let out = fut.await;
    let took = began.elapsed();
    let _ = SPANS.try_with(|s| s.borrow_mut().close(name, took));
    out
}

/// Runs `f` as the span `name` of the RPC running in this task, if any.
pub fn span_sync<T>(name: &str, f: impl FnOnce() -> T) -> T {
    let _ = SPANS.try_with(|s| s.borrow_mut().open());
    let began = Instant::now();
    let out = f();
    let took = began.elapsed();
    let _ = SPANS.try_with(|s| s.borrow_mut().close(name, took));
    out
}

/// Adds `took` to the span `name` of the RPC running in this task; nothing outside an RPC.
pub fn record(name: &str, took: Duration) {
    let _ = SPANS.try_with(|s| s.borrow_mut().add(name, took));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_sum_per_name_and_the_rest_is_accounted() {
        let mut s = Spans::default();
        s.add("runsc.create", Duration::from_millis(800));
        s.add("guard.plan", Duration::from_micros(300));
        s.add("runsc.list", Duration::from_millis(5));
        s.add("runsc.list", Duration::from_millis(5));
        assert_eq!(
            s.render(Duration::from_millis(820)),
            "runsc.create=800.0ms guard.plan=0.3ms runsc.list=10.0ms other=9.7ms shim=10.0ms \
             total=820.0ms"
        );
    }

    #[tokio::test]
    async fn a_span_inside_another_is_not_counted_twice() {
        let spans = SPANS
            .scope(RefCell::new(Spans::default()), async {
                span("guard.plan", async {
                    span(
                        "runsc.version",
                        tokio::time::sleep(Duration::from_millis(20)),
                    )
                    .await;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                })
                .await;
                SPANS.with(|s| std::mem::take(&mut *s.borrow_mut()))
            })
            .await;
        let plan = spans
            .spans
            .iter()
            .find(|(n, _)| n == "guard.plan")
            .unwrap()
            .1;
        assert!(plan >= Duration::from_millis(1), "{plan:?}");
        assert!(plan < Duration::from_millis(20), "{plan:?}");
        let version = spans
            .spans
            .iter()
            .find(|(n, _)| n == "runsc.version")
            .unwrap()
            .1;
        assert!(version >= Duration::from_millis(20), "{version:?}");
    }

    #[tokio::test]
    async fn an_rpc_collects_the_spans_of_its_own_task_only() {
        let spans = SPANS
            .scope(RefCell::new(Spans::default()), async {
                span("runsc.start", tokio::time::sleep(Duration::from_millis(2))).await;
                span_sync("io", || ());
                // A task the RPC spawns (the exit watcher) is not the RPC's time.
                tokio::spawn(async { record("runsc.wait", Duration::from_secs(9)) })
                    .await
                    .unwrap();
                SPANS.with(|s| std::mem::take(&mut *s.borrow_mut()))
            })
            .await;
        let names: Vec<&str> = spans.spans.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["runsc.start", "io"]);
        assert!(spans.spans[0].1 >= Duration::from_millis(2));
        assert!(spans.open.is_empty());
        // Outside an RPC nothing is recorded and nothing fails.
        record("runsc.state", Duration::from_millis(1));
        let r: Result<u8, ()> = rpc("start", "c1", async { Ok(7) }).await;
        assert_eq!(r, Ok(7));
    }
}
