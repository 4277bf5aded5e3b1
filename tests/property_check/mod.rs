//! What the property tests share: [`check`] runs one property a fixed number of cases and
//! prints how many passed.

use std::io::Write;

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// Runs `test` on `cases` values of `strategy` and reports the count. A failure panics with
/// the (shrunk) failing value.
pub fn check<S: Strategy>(
    name: &str,
    cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S::Value: std::fmt::Debug,
{
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    if let Err(e) = runner.run(&strategy, test) {
        panic!("property {name} failed: {e}");
    }
    // Written to the process' stderr, not through eprintln!, so it shows without --nocapture.
    let _ = writeln!(
        std::io::stderr().lock(),
        "property {name}: {cases} cases passed"
    );
}
