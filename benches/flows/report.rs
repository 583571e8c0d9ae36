//! The results table and the targets of issue 7, as text and as Markdown.

use std::fmt::Write as _;
use std::time::Duration;

use crate::client::LdapTotals;
use crate::load::{Run, quantile_ms};

const FLOW_STEPS: [&str; 3] = ["start", "verify", "password"];

pub struct StageRow {
    pub stage: &'static str,
    pub concurrency: usize,
    pub ops: usize,
    pub errors: usize,
    pub rate: f64,
    pub p50: f64,
    pub p99: f64,
    pub mean: f64,
    /// For a multi-step operation: per step, p50 and p99.
    pub steps: Vec<(f64, f64)>,
    pub peak_rss_kb: Option<u64>,
    pub error_samples: Vec<String>,
    /// The service's LDAP operations during the stage (from its /metrics).
    pub ldap: Option<LdapTotals>,
}

impl StageRow {
    pub fn new(stage: &'static str, run: &Run, peak_rss_kb: Option<u64>) -> Self {
        let steps = if run.steps.len() > 1 {
            run.steps
                .iter()
                .map(|s| (quantile_ms(s, 0.5), quantile_ms(s, 0.99)))
                .collect()
        } else {
            Vec::new()
        };
        Self {
            stage,
            concurrency: run.concurrency,
            ops: run.ops(),
            errors: run.errors,
            rate: run.rate(),
            p50: quantile_ms(&run.totals, 0.5),
            p99: quantile_ms(&run.totals, 0.99),
            mean: run.totals.iter().sum::<Duration>().as_secs_f64() * 1e3
                / run.totals.len().max(1) as f64,
            steps,
            peak_rss_kb,
            error_samples: run.error_samples.clone(),
            ldap: None,
        }
    }

    /// The service's LDAP work per operation of this stage, e.g. "4.0 search 1.2 ms, 1.0 modify
    /// 30.1 ms" (count per operation, mean duration).
    pub fn ldap_per_op(&self) -> Option<String> {
        let ldap = self.ldap.as_ref()?;
        if self.ops == 0 {
            return None;
        }
        let parts: Vec<String> = ldap
            .0
            .iter()
            .map(|(op, (n, secs))| {
                format!("{:.1} {op} x {:.2} ms", n / self.ops as f64, secs / n * 1e3)
            })
            .collect();
        if parts.is_empty() {
            return Some("none".to_owned());
        }
        // Means, so that the parts add up: LDAP time per operation against its mean latency.
        let ldap_ms: f64 =
            ldap.0.values().map(|(_, secs)| secs).sum::<f64>() * 1e3 / self.ops as f64;
        Some(format!(
            "{}; mean {:.1} ms, of which LDAP {ldap_ms:.1} ms, the rest (HTTP, database, checks, \
             waiting for a pooled connection) {:.1} ms",
            parts.join(", "),
            self.mean,
            self.mean - ldap_ms
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
    pub hello_idle_rss_kb: Option<u64>,
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

    fn levels(&self) -> Vec<usize> {
        let mut levels: Vec<usize> = self
            .rows
            .iter()
            .filter(|r| r.stage == "raw replace" || r.stage == "verify alone")
            .map(|r| r.concurrency)
            .collect();
        levels.sort_unstable();
        levels.dedup();
        levels
    }

    fn targets(&self) -> Vec<Target> {
        let mut targets = Vec::new();
        let ratio = |what: String, a: Option<&StageRow>, b: Option<&StageRow>, goal: f64| {
            let value = a.zip(b).map(|(a, b)| a.rate / b.rate);
            Target {
                what,
                measured: value.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}")),
                goal: format!(">= {goal:.2}"),
                pass: value.map(|v| v >= goal),
            }
        };
        for c in self.levels() {
            targets.push(ratio(
                format!("flows/s / raw replaces/s, concurrency {c}"),
                self.row("flow", c),
                self.row("raw replace", c),
                0.9,
            ));
        }
        if let (Some(flow), Some(raw)) = (self.row("flow", 1), self.row("raw replace", 1)) {
            let added = flow.p50 - raw.p50;
            targets.push(Target {
                what: "added latency p50, concurrency 1: flow (3 requests) - raw replace"
                    .to_owned(),
                measured: format!("{added:.1} ms"),
                goal: "<= 5 ms".to_owned(),
                pass: Some(added <= 5.0),
            });
            if let Some((password, _)) = flow.steps.get(2) {
                targets.push(Target {
                    what: "  of which the password request - raw replace".to_owned(),
                    measured: format!("{:.1} ms", password - raw.p50),
                    goal: "(information)".to_owned(),
                    pass: None,
                });
            }
        }
        let rss = |what: &str, kb: Option<u64>, goal_mib: f64| Target {
            what: what.to_owned(),
            measured: mib(kb),
            goal: format!("<= {goal_mib:.0} MiB"),
            pass: kb.map(|kb| kb as f64 / 1024.0 <= goal_mib),
        };
        targets.push(rss(
            "service RSS idle (after start)",
            self.idle_rss_kb,
            15.0,
        ));
        targets.push(rss(
            "service RSS idle again (after all stages)",
            self.after_rss_kb,
            15.0,
        ));
        let load = self
            .rows
            .iter()
            .filter(|r| r.stage == "flow")
            .map(|r| r.concurrency)
            .max()
            .unwrap_or(0);
        targets.push(rss(
            &format!("service RSS peak under {load} concurrent flows (sampled VmRSS)"),
            self.load_peak_rss_kb,
            64.0,
        ));
        targets.push(rss(
            "service VmHWM (peak of the whole run)",
            self.hwm_kb,
            64.0,
        ));
        for c in self.levels() {
            targets.push(ratio(
                format!("verify/s / hello-world/s, concurrency {c}"),
                self.row("verify alone", c),
                self.row("hello-world", c),
                0.5,
            ));
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
            "{} users created in {:.1} s ({:.0}/s); registered with TOTP in {}; {} s per stage",
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
            "service RSS idle after start: {}{}; idle after the stages: {}{}; hello-world RSS idle: {}",
            mib(self.idle_rss_kb),
            split(self.idle_split),
            mib(self.after_rss_kb),
            split(self.after_split),
            mib(self.hello_idle_rss_kb)
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
            "\n{:<20} {:>5} {:>6} {:>5} {:>9} {:>9} {:>9} {:>10}",
            "stage", "conc", "ops", "err", "ops/s", "p50 ms", "p99 ms", "peak RSS"
        );
        for r in &self.rows {
            let _ = writeln!(
                out,
                "{:<20} {:>5} {:>6} {:>5} {:>9.1} {:>9.2} {:>9.2} {:>10}",
                r.stage,
                r.concurrency,
                r.ops,
                r.errors,
                r.rate,
                r.p50,
                r.p99,
                r.peak_rss_kb.map_or_else(String::new, |kb| mib(Some(kb)))
            );
            for (name, (p50, p99)) in FLOW_STEPS.iter().zip(&r.steps) {
                let _ = writeln!(
                    out,
                    "  {name:<18} {:>5} {:>6} {:>5} {:>9} {p50:>9.2} {p99:>9.2}",
                    "", "", "", ""
                );
            }
            if let Some(ldap) = r.ldap_per_op() {
                let _ = writeln!(out, "  LDAP by the service per op: {ldap}");
            }
        }
        let _ = writeln!(out);
        for t in self.targets() {
            let _ = writeln!(
                out,
                "{:<68} {:>10} {:>13}  {}",
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
            for (name, (p50, p99)) in FLOW_STEPS.iter().zip(&r.steps) {
                let _ = writeln!(
                    out,
                    "| &nbsp;&nbsp;{name} | | | | | {p50:.2} | {p99:.2} | |"
                );
            }
            if let Some(ldap) = r.ldap_per_op() {
                let _ = writeln!(
                    out,
                    "| &nbsp;&nbsp;LDAP by the service per op: {ldap} | | | | | | | |"
                );
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
