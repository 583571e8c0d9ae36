//! The results table and the targets of issue 18, as text and as Markdown.

use std::fmt::Write as _;
use std::time::Duration;

use crate::client::{Kind, ServiceCounters};
use crate::load::{Run, quantile_ms};

/// The raw stage's name: what the service writes for a reset, with ldap3 alone.
pub const RAW: &str = "raw reset write";
pub const VERIFY: &str = "verify alone";
pub const SQLITE: &str = "SQLite transaction";
/// The memory stage: TOTP flows at high concurrency.
pub const LOAD: &str = "flow TOTP (memory)";

pub struct StageRow {
    pub stage: String,
    /// The names of the steps of a multi-step operation.
    pub step_names: &'static [&'static str],
    pub concurrency: usize,
    pub ops: usize,
    pub errors: usize,
    pub rate: f64,
    pub p50: f64,
    pub p99: f64,
    /// For a multi-step operation: per step, p50 and p99.
    pub steps: Vec<(f64, f64)>,
    pub peak_rss_kb: Option<u64>,
    pub error_samples: Vec<String>,
    /// The service's counters (LDAP operations, API request time) over the stage, from its
    /// /metrics.
    pub service: Option<ServiceCounters>,
    /// The service's CPU time over the stage, in milliseconds.
    pub cpu_ms: Option<f64>,
}

impl StageRow {
    pub fn new(stage: impl Into<String>, run: &Run, peak_rss_kb: Option<u64>) -> Self {
        let steps = if run.steps.len() > 1 {
            run.steps
                .iter()
                .map(|s| (quantile_ms(s, 0.5), quantile_ms(s, 0.99)))
                .collect()
        } else {
            Vec::new()
        };
        Self {
            stage: stage.into(),
            step_names: &[],
            concurrency: run.concurrency,
            ops: run.ops(),
            errors: run.errors,
            rate: run.rate(),
            p50: quantile_ms(&run.totals, 0.5),
            p99: quantile_ms(&run.totals, 0.99),
            steps,
            peak_rss_kb,
            error_samples: run.error_samples.clone(),
            service: None,
            cpu_ms: None,
        }
    }

    /// Per operation of this stage: the service's own time (its API requests' time less the
    /// LDAP operations' time: HTTP, database, checks, waiting for a pooled connection), mean.
    pub fn service_ms(&self) -> Option<f64> {
        let service = self.service.as_ref().filter(|_| self.ops > 0)?;
        let ldap: f64 = service.ldap.0.values().map(|(_, secs)| secs).sum();
        Some((service.api_seconds - ldap) * 1e3 / self.ops as f64)
    }

    /// Per operation: the service's CPU time (user and system, every thread).
    pub fn cpu_per_op_ms(&self) -> Option<f64> {
        self.cpu_ms
            .filter(|_| self.ops > 0)
            .map(|ms| ms / self.ops as f64)
    }

    /// Per operation: LDAP searches by the service.
    pub fn searches(&self) -> Option<f64> {
        let service = self.service.as_ref().filter(|_| self.ops > 0)?;
        let n = service.ldap.0.get("search").map_or(0.0, |(n, _)| *n);
        Some(n / self.ops as f64)
    }

    /// The service per operation in a line: own time, CPU, LDAP operations.
    fn service_line(&self) -> Option<String> {
        let service = self.service.as_ref().filter(|_| self.ops > 0)?;
        let ops = self.ops as f64;
        let ldap: Vec<String> = service
            .ldap
            .0
            .iter()
            .map(|(op, (n, secs))| format!("{:.1} {op} x {:.2} ms", n / ops, secs / n * 1e3))
            .collect();
        Some(format!(
            "service per op: own time {:.2} ms (mean), CPU {}, API requests {:.1}, LDAP {}",
            self.service_ms().unwrap_or(f64::NAN),
            self.cpu_per_op_ms()
                .map_or_else(|| "-".to_owned(), |ms| format!("{ms:.2} ms")),
            service.api_requests / ops,
            if ldap.is_empty() {
                "none".to_owned()
            } else {
                ldap.join(", ")
            }
        ))
    }
}

#[derive(Default)]
pub struct Report {
    pub users: usize,
    pub seconds: f64,
    pub creation: Duration,
    pub registration: Option<Duration>,
    pub idle_rss_kb: Option<u64>,
    pub load_peak_rss_kb: Option<u64>,
    pub after_rss_kb: Option<u64>,
    pub hwm_kb: Option<u64>,
    /// Mails the bench took out of the sink's Maildir (codes and notices).
    pub mails: usize,
    /// RssAnon and RssFile (kB) of the service at idle after start, and again after the stages.
    pub idle_split: Option<(u64, u64)>,
    pub after_split: Option<(u64, u64)>,
    /// /proc/loadavg (1-minute) when the service started and at the end: the machine's other load.
    pub load_average: (String, String),
    /// Times a worker waited for a new TOTP step because every user had verified in this one.
    pub starved: usize,
    pub rows: Vec<StageRow>,
}

/// The 1-minute load average.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "-".to_owned())
}

fn mib(kb: Option<u64>) -> String {
    kb.map_or_else(
        || "-".to_owned(),
        |kb| format!("{:.1} MiB", kb as f64 / 1024.0),
    )
}

struct Target {
    what: String,
    measured: String,
    goal: String,
    pass: Option<bool>,
}

impl Report {
    pub fn push(&mut self, row: StageRow) {
        self.rows.push(row);
    }

    fn row(&self, stage: &str, concurrency: usize) -> Option<&StageRow> {
        self.rows
            .iter()
            .find(|r| r.stage == stage && r.concurrency == concurrency)
    }

    /// The concurrency levels flows and raw writes were compared at.
    fn levels(&self) -> Vec<usize> {
        let mut levels: Vec<usize> = self
            .rows
            .iter()
            .filter(|r| r.stage == RAW)
            .map(|r| r.concurrency)
            .collect();
        levels.sort_unstable();
        levels.dedup();
        levels
    }

    fn targets(&self) -> Vec<Target> {
        let mut targets = Vec::new();
        let measured = |v: Option<f64>, unit: &str| {
            v.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}{unit}"))
        };
        for kind in Kind::ALL {
            for c in self.levels() {
                let Some(flow) = self.row(kind.stage(), c) else {
                    continue;
                };
                let value = self.row(RAW, c).map(|raw| flow.rate / raw.rate);
                targets.push(Target {
                    what: format!("{} / {RAW}, concurrency {c} (same rounds)", kind.stage()),
                    measured: measured(value, ""),
                    goal: ">= 0.90".to_owned(),
                    pass: value.map(|v| v >= 0.9),
                });
            }
        }
        for kind in Kind::ALL {
            let Some(flow) = self.row(kind.stage(), 1) else {
                continue;
            };
            let own = flow.service_ms();
            targets.push(Target {
                what: format!("{}: service's own time per flow, c=1 (mean)", kind.stage()),
                measured: measured(own, " ms"),
                goal: "<= 3 ms p50".to_owned(),
                pass: own.map(|v| v <= 3.0),
            });
            let cpu = flow.cpu_per_op_ms();
            targets.push(Target {
                what: format!("{}: service CPU per flow, c=1", kind.stage()),
                measured: measured(cpu, " ms"),
                goal: "<= 3 ms".to_owned(),
                pass: cpu.map(|v| v <= 3.0),
            });
            let searches = flow.searches();
            targets.push(Target {
                what: format!("{}: LDAP searches per flow, c=1", kind.stage()),
                measured: measured(searches, ""),
                goal: "<= 3".to_owned(),
                pass: searches.map(|v| v <= 3.0 + 1e-9),
            });
        }
        let rss = |what: String, kb: Option<u64>, goal_mib: f64| Target {
            what,
            measured: mib(kb),
            goal: format!("<= {goal_mib:.0} MiB"),
            pass: kb.map(|kb| kb as f64 / 1024.0 <= goal_mib),
        };
        targets.push(rss(
            "service RSS idle (after start)".to_owned(),
            self.idle_rss_kb,
            15.0,
        ));
        let load = self
            .rows
            .iter()
            .filter(|r| r.stage == LOAD)
            .map(|r| r.concurrency)
            .max();
        if let Some(load) = load {
            targets.push(rss(
                format!("service RSS peak under {load} concurrent flows (sampled VmRSS)"),
                self.load_peak_rss_kb,
                48.0,
            ));
        }
        let back = self
            .after_rss_kb
            .zip(self.idle_rss_kb)
            .map(|(after, idle)| after.saturating_sub(idle));
        targets.push(Target {
            what: "service RSS idle again (after all stages) - idle after start".to_owned(),
            measured: mib(back),
            goal: "<= 5 MiB".to_owned(),
            pass: back.map(|kb| kb as f64 / 1024.0 <= 5.0),
        });
        targets.push(Target {
            what: "service VmHWM (peak of the whole run)".to_owned(),
            measured: mib(self.hwm_kb),
            goal: "(information)".to_owned(),
            pass: None,
        });
        for c in self
            .rows
            .iter()
            .filter(|r| r.stage == VERIFY)
            .map(|r| r.concurrency)
        {
            let value = self
                .row(VERIFY, c)
                .zip(self.row(SQLITE, c))
                .map(|(v, b)| v.rate / b.rate);
            targets.push(Target {
                what: format!("{VERIFY}/s / bare {SQLITE}s of its writes/s, concurrency {c}"),
                measured: measured(value, ""),
                goal: "(information)".to_owned(),
                pass: None,
            });
        }
        targets
    }

    fn verdict(pass: Option<bool>) -> &'static str {
        match pass {
            Some(true) => "PASS",
            Some(false) => "MISS",
            None => "",
        }
    }

    fn preamble(&self) -> Vec<String> {
        let mut lines = vec![format!(
            "{} users created in {:.1} s ({:.0}/s); registered (app, address or passkey) in {}; {} s per stage",
            self.users,
            self.creation.as_secs_f64(),
            self.users as f64 / self.creation.as_secs_f64(),
            self.registration
                .map_or_else(|| "-".to_owned(), |d| format!("{:.1} s", d.as_secs_f64())),
            self.seconds
        )];
        let split = |s: Option<(u64, u64)>| {
            s.map_or_else(String::new, |(anon, file)| {
                format!(
                    " (anonymous {}, file-backed {})",
                    mib(Some(anon)),
                    mib(Some(file))
                )
            })
        };
        lines.push(format!(
            "service RSS idle after start: {}{}; idle after the stages: {}{}; mails read from the sink: {}",
            mib(self.idle_rss_kb),
            split(self.idle_split),
            mib(self.after_rss_kb),
            split(self.after_split),
            self.mails
        ));
        lines.push(format!(
            "machine: {} CPUs; load average (1 min) {} when the service started, {} at the end",
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            self.load_average.0,
            self.load_average.1
        ));
        if self.starved > 0 {
            lines.push(format!(
                "WARNING: workers waited {} times for a new TOTP step (every user had verified in the current one): use more --users",
                self.starved
            ));
        }
        for row in &self.rows {
            for e in &row.error_samples {
                lines.push(format!("error in {} c={}: {e}", row.stage, row.concurrency));
            }
        }
        lines
    }

    pub fn text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out);
        for line in self.preamble() {
            let _ = writeln!(out, "{line}");
        }
        let _ = writeln!(
            out,
            "\n{:<22} {:>5} {:>6} {:>5} {:>9} {:>9} {:>9} {:>10}",
            "stage", "conc", "ops", "err", "ops/s", "p50 ms", "p99 ms", "peak RSS"
        );
        for r in &self.rows {
            let _ = writeln!(
                out,
                "{:<22} {:>5} {:>6} {:>5} {:>9.1} {:>9.2} {:>9.2} {:>10}",
                r.stage,
                r.concurrency,
                r.ops,
                r.errors,
                r.rate,
                r.p50,
                r.p99,
                r.peak_rss_kb.map_or_else(String::new, |kb| mib(Some(kb)))
            );
            for (name, (p50, p99)) in r.step_names.iter().zip(&r.steps) {
                let _ = writeln!(
                    out,
                    "  {name:<20} {:>5} {:>6} {:>5} {:>9} {p50:>9.2} {p99:>9.2}",
                    "", "", "", ""
                );
            }
            if let Some(line) = r.service_line() {
                let _ = writeln!(out, "  {line}");
            }
        }
        let _ = writeln!(out);
        for t in self.targets() {
            let _ = writeln!(
                out,
                "{:<72} {:>10} {:>13}  {}",
                t.what,
                t.measured,
                t.goal,
                Self::verdict(t.pass)
            );
        }
        out
    }

    pub fn markdown(&self) -> String {
        let mut out = String::new();
        for line in self.preamble() {
            let _ = writeln!(out, "{line}  ");
        }
        let _ = writeln!(
            out,
            "\n| stage | concurrency | ops | errors | ops/s | p50 ms | p99 ms | service peak RSS |\n|---|--:|--:|--:|--:|--:|--:|--:|"
        );
        for r in &self.rows {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {:.1} | {:.2} | {:.2} | {} |",
                r.stage,
                r.concurrency,
                r.ops,
                r.errors,
                r.rate,
                r.p50,
                r.p99,
                r.peak_rss_kb.map_or_else(String::new, |kb| mib(Some(kb)))
            );
            for (name, (p50, p99)) in r.step_names.iter().zip(&r.steps) {
                let _ = writeln!(
                    out,
                    "| &nbsp;&nbsp;{name} | | | | | {p50:.2} | {p99:.2} | |"
                );
            }
            if let Some(line) = r.service_line() {
                let _ = writeln!(out, "| &nbsp;&nbsp;{line} | | | | | | | |");
            }
        }
        let _ = writeln!(out, "\n| target | measured | goal | |\n|---|--:|--:|---|");
        for t in self.targets() {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                t.what.trim(),
                t.measured,
                t.goal,
                Self::verdict(t.pass)
            );
        }
        out
    }
}
