//! Closed-loop load: N workers, each starting its next operation as soon as the last one ended,
//! for a fixed time or until the work runs out. Latencies are kept whole, so percentiles are exact.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

/// What one operation reports: the latency of each of its steps (one for a single request).
pub type Steps = Vec<Duration>;

/// The result of one stage of load.
pub struct Run {
    pub concurrency: usize,
    pub elapsed: Duration,
    /// Latency of every completed operation: the sum of its steps, each timed around its
    /// request alone (not the wait for a user whose TOTP step is unspent).
    pub totals: Vec<Duration>,
    /// Per step, the latency of every completed operation.
    pub steps: Vec<Vec<Duration>>,
    pub errors: usize,
    /// The first few error messages, to show what went wrong.
    pub error_samples: Vec<String>,
}

impl Run {
    pub fn ops(&self) -> usize {
        self.totals.len()
    }

    /// Pools another run of the same stage (a later round) into this one.
    pub fn absorb(&mut self, other: Run) {
        self.elapsed += other.elapsed;
        self.totals.extend(other.totals);
        if self.steps.len() < other.steps.len() {
            self.steps.resize_with(other.steps.len(), Vec::new);
        }
        for (mine, theirs) in self.steps.iter_mut().zip(other.steps) {
            mine.extend(theirs);
        }
        self.errors += other.errors;
        for e in other.error_samples {
            if self.error_samples.len() < 5 && !self.error_samples.contains(&e) {
                self.error_samples.push(e);
            }
        }
    }

    /// Completed operations per second, over the whole stage including its tail (the operations
    /// still in flight at the deadline are waited for and counted).
    pub fn rate(&self) -> f64 {
        self.ops() as f64 / self.elapsed.as_secs_f64()
    }
}

/// Runs `op(worker)` on `concurrency` workers until `duration` has passed (operations in flight
/// then finish) or `op` answers `None` (no more work). `op` times its own steps.
pub async fn closed_loop<F, Fut>(concurrency: usize, duration: Duration, op: F) -> Run
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Option<Result<Steps, String>>> + Send + 'static,
{
    let op = Arc::new(op);
    let started = Instant::now();
    let deadline = started + duration;
    let mut workers = JoinSet::new();
    for worker in 0..concurrency {
        let op = Arc::clone(&op);
        workers.spawn(async move {
            let mut done = Vec::new();
            let mut errors = Vec::new();
            while Instant::now() < deadline {
                match op(worker).await {
                    None => break,
                    Some(Ok(steps)) => done.push((steps.iter().sum(), steps)),
                    Some(Err(e)) => errors.push(e),
                }
            }
            (done, errors)
        });
    }
    let mut run = Run {
        concurrency,
        elapsed: Duration::ZERO,
        totals: Vec::new(),
        steps: Vec::new(),
        errors: 0,
        error_samples: Vec::new(),
    };
    while let Some(joined) = workers.join_next().await {
        let (done, errors) = joined.expect("a load worker panicked");
        for (total, steps) in done {
            run.totals.push(total);
            if run.steps.len() < steps.len() {
                run.steps.resize_with(steps.len(), Vec::new);
            }
            for (i, d) in steps.into_iter().enumerate() {
                run.steps[i].push(d);
            }
        }
        run.errors += errors.len();
        for e in errors {
            if run.error_samples.len() < 5 && !run.error_samples.contains(&e) {
                run.error_samples.push(e);
            }
        }
    }
    run.elapsed = started.elapsed();
    run
}

/// The `q` quantile (0..=1) by nearest rank, in milliseconds; NaN for no samples.
pub fn quantile_ms(samples: &[Duration], q: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1e3
}
