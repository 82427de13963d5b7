//! Progress output on stderr: a bar per case on a terminal, plain lines
//! otherwise (CI logs), no colour when NO_COLOR is set.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::model::{BenchmarkResult, Status};

pub trait Progress {
    fn benchmark_started(&mut self, name: &str, kind: &str);
    fn case_started(&mut self, label: &str, warmup: u32, iterations: u32);
    /// One warm-up or timed iteration finished.
    fn iteration_done(&mut self);
    fn case_finished(&mut self, result: &BenchmarkResult);
    fn note(&mut self, message: &str);
}

/// Reports nothing (a benchmark's second, profiled pass).
pub struct SilentProgress;

impl Progress for SilentProgress {
    fn benchmark_started(&mut self, _name: &str, _kind: &str) {}
    fn case_started(&mut self, _label: &str, _warmup: u32, _iterations: u32) {}
    fn iteration_done(&mut self) {}
    fn case_finished(&mut self, _result: &BenchmarkResult) {}
    fn note(&mut self, _message: &str) {}
}

/// Chooses bars or plain lines from whether stderr is a terminal.
pub fn console_progress() -> Box<dyn Progress> {
    if std::env::var_os("NO_COLOR").is_some() {
        console::set_colors_enabled(false);
        console::set_colors_enabled_stderr(false);
    }
    if std::io::stderr().is_terminal() {
        Box::new(BarProgress::default())
    } else {
        Box::new(LineProgress::default())
    }
}

fn outcome_line(result: &BenchmarkResult) -> String {
    let status = match result.status {
        Status::Ok => console::style("ok").green(),
        Status::Failed => console::style("FAILED").red().bold(),
        Status::Interrupted => console::style("interrupted").yellow(),
        Status::Skipped => console::style("skipped").dim(),
    };
    let mut line = format!("  {} {status}", result.case_id);
    if let (Some(p50), Some(metric)) = (result.p50_ms, &result.latency_metric) {
        line.push_str(&format!("  {metric} p50 {p50:.3} ms"));
    }
    if let (Some(t), Some(unit)) = (result.throughput, &result.throughput_unit) {
        line.push_str(&format!("  {t:.1} {unit}"));
    }
    if let Some(error) = &result.error {
        line.push_str(&format!("  {error}"));
    }
    line
}

/// How often plain-line progress reports a long case.
const LINE_EVERY: Duration = Duration::from_secs(10);

#[derive(Default)]
struct LineProgress {
    benchmark: String,
    label: String,
    total: u32,
    done: u32,
    started: Option<Instant>,
    last_line: Option<Instant>,
}

impl Progress for LineProgress {
    fn benchmark_started(&mut self, name: &str, kind: &str) {
        self.benchmark = name.to_string();
        eprintln!("▶ {name} ({kind})");
    }

    fn case_started(&mut self, label: &str, warmup: u32, iterations: u32) {
        eprintln!(
            "  {}[{label}]: {warmup} warm-up, up to {iterations} timed iterations",
            self.benchmark
        );
        self.label = label.to_string();
        (self.total, self.done) = (warmup + iterations, 0);
        self.started = Some(Instant::now());
        self.last_line = self.started;
    }

    fn iteration_done(&mut self) {
        self.done += 1;
        let (Some(started), Some(last)) = (self.started, self.last_line) else {
            return;
        };
        if last.elapsed() < LINE_EVERY || self.done >= self.total {
            return;
        }
        self.last_line = Some(Instant::now());
        let elapsed = started.elapsed().as_secs_f64();
        // A time budget may end the case sooner: this is the most it has left.
        let remaining = elapsed / f64::from(self.done) * f64::from(self.total - self.done);
        eprintln!(
            "  {}[{}]: {}/{} iterations, {elapsed:.0} s elapsed, at most ~{remaining:.0} s left",
            self.benchmark, self.label, self.done, self.total
        );
    }

    fn case_finished(&mut self, result: &BenchmarkResult) {
        eprintln!("{}", outcome_line(result));
    }

    fn note(&mut self, message: &str) {
        eprintln!("  {message}");
    }
}

#[derive(Default)]
struct BarProgress {
    benchmark: String,
    bar: Option<ProgressBar>,
    warmup: u64,
}

impl Progress for BarProgress {
    fn benchmark_started(&mut self, name: &str, kind: &str) {
        self.benchmark = name.to_string();
        eprintln!("{} {name} ({kind})", console::style("▶").cyan());
    }

    fn case_started(&mut self, label: &str, warmup: u32, iterations: u32) {
        let bar = ProgressBar::new(u64::from(warmup + iterations));
        let style = ProgressStyle::with_template(
            "  {prefix} [{bar:30}] {pos}/{len} {msg} {elapsed} elapsed, ~{eta} left",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(format!("{}[{label}]", self.benchmark));
        // The message names the iteration running now, not the last one done.
        bar.set_message(if warmup > 0 { "warm-up" } else { "timed" });
        self.warmup = u64::from(warmup);
        bar.enable_steady_tick(Duration::from_millis(200));
        self.bar = Some(bar);
    }

    fn iteration_done(&mut self) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
            bar.set_message(if bar.position() < self.warmup {
                "warm-up"
            } else {
                "timed"
            });
        }
    }

    fn case_finished(&mut self, result: &BenchmarkResult) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        eprintln!("{}", outcome_line(result));
    }

    fn note(&mut self, message: &str) {
        match &self.bar {
            Some(bar) => bar.println(format!("  {message}")),
            None => eprintln!("  {message}"),
        }
    }
}
