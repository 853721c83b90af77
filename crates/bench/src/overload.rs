//! `haven-bench overload`: how a server degrades when it is offered more than it can do (issue 9).
//!
//! Why this shape: a server that queues everything collapses under overload (every request waits
//! behind the others until clients time out and retry); one that sheds load keeps its goodput and
//! answers the excess at once with ThrottlingException, which SDKs retry with backoff. To see
//! which, the offered load must not slow down when the server does, so after measuring the peak
//! the requests are sent open loop: each at its intended time, on a free connection (up to
//! `--max-connections` of them), whether or not earlier requests were answered (as many independent
//! clients would).
//!
//! Phases: peak (closed loop: the goodput `--connections` busy clients reach), then open loop at
//! multiples of that peak: 0.5x (the unloaded reference), `--factor`x for `--overload-secs`, 1x
//! (recovery), 0.5x. Reported per phase: goodput, accepted latency (from the intended send time,
//! so a client-side backlog counts, and from the actual send), refused latency from the actual
//! send (the time the server took to say no); per second: goodput, refusals, errors and the
//! server's RSS (`--server-pid`); and how long refusals went on after the overload ended.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::client::{Answer, Connection, Endpoint};
use crate::keys::Rng;
use crate::requests::Call;
use crate::stats::{histogram, summary};
use crate::workload::{Plan, run_connection};

/// One open-loop phase: a name, the offered rate as a multiple of the peak, and its length.
struct Phase {
    name: &'static str,
    factor: f64,
    length: Duration,
}

/// How a request ended.
enum Outcome {
    Accepted,
    Throttled,
    Failed(String),
}

/// A request the client could not send within this long of its intended time is dropped, as a
/// client with a timeout would give up; otherwise a client backlog would delay every later phase
/// and hide the recovery.
const GIVE_UP_AFTER: Duration = Duration::from_secs(1);

fn outcome(result: anyhow::Result<Answer>) -> Outcome {
    match result {
        Ok(answer) if answer.status.is_success() => Outcome::Accepted,
        Ok(answer)
            if answer.status == http::StatusCode::BAD_REQUEST
                && answer.body.windows(19).any(|w| w == b"ThrottlingException") =>
        {
            Outcome::Throttled
        }
        Ok(answer) => Outcome::Failed(format!(
            "{} {}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        )),
        Err(error) => Outcome::Failed(format!("{error:#}")),
    }
}

/// What one phase measured.
struct PhaseStats {
    name: &'static str,
    offered_rate: f64,
    length: Duration,
    /// Accepted requests, latency from the intended send time.
    accepted: Histogram<u64>,
    /// Accepted requests, latency from the actual send.
    accepted_from_send: Histogram<u64>,
    /// Refused requests (ThrottlingException), latency from the actual send.
    refused: Histogram<u64>,
    /// How late requests were sent: the client's own backlog (its CPU or --max-connections).
    send_lag: Histogram<u64>,
    errors: u64,
    first_error: Option<String>,
    /// Requests not sent: the client was more than [`GIVE_UP_AFTER`] behind its schedule.
    abandoned: u64,
}

/// Counts for one second of the run (by completion time).
#[derive(Clone, Default)]
struct Second {
    accepted: u64,
    refused: u64,
    errors: u64,
    rss_kb: Option<u64>,
}

/// Everything the request tasks and the RSS sampler record into.
struct Recorder {
    start: Instant,
    phases: Vec<PhaseStats>,
    seconds: Vec<Second>,
    /// The intended send time of the latest refused request.
    last_refusal: Option<Instant>,
}

impl Recorder {
    fn second(&mut self, at: Instant) -> &mut Second {
        let index = at.duration_since(self.start).as_secs() as usize;
        if self.seconds.len() <= index {
            self.seconds.resize(index + 1, Second::default());
        }
        &mut self.seconds[index]
    }

    fn record(&mut self, phase: usize, intended: Instant, sent: Instant, outcome: Outcome) {
        let now = Instant::now();
        let nanos = |d: Duration| (d.as_nanos() as u64).clamp(1, 60_000_000_000);
        let stats = &mut self.phases[phase];
        stats.send_lag.saturating_record(nanos(sent - intended));
        match outcome {
            Outcome::Accepted => {
                stats.accepted.saturating_record(nanos(now - intended));
                stats
                    .accepted_from_send
                    .saturating_record(nanos(now - sent));
                self.second(now).accepted += 1;
            }
            Outcome::Throttled => {
                stats.refused.saturating_record(nanos(now - sent));
                self.last_refusal = self.last_refusal.max(Some(intended));
                self.second(now).refused += 1;
            }
            Outcome::Failed(message) => {
                stats.errors += 1;
                stats.first_error.get_or_insert(message);
                self.second(now).errors += 1;
            }
        }
    }
}

/// A request due to be sent: its intended time and the phase it belongs to.
type Due = (Instant, usize);

/// The requests due and not yet taken by a sender, oldest first, shared by the senders.
type Backlog = Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Due>>>;

/// One of `--max-connections` senders, each with a connection of its own (opened when first
/// needed, and again after a failure): takes the oldest request due, gives it up if the client is
/// more than [`GIVE_UP_AFTER`] behind it, else builds and sends it and records the outcome.
///
/// Why a fixed set of senders rather than a task per request: at three times the server's capacity
/// most requests wait for a free connection and are given up, and a task, a request body and a
/// signature for each of them would take the client's core, slowing the requests it does send and
/// inflating every latency it measures.
async fn sender(id: usize, plan: Arc<Plan>, backlog: Backlog, recorder: Arc<Mutex<Recorder>>) {
    let mut rng = Rng::new(plan.seed.wrapping_add(id as u64 * 104_729));
    let mut connection: Option<Connection> = None;
    loop {
        let Some((intended, phase)) = backlog.lock().await.recv().await else {
            return;
        };
        if intended.elapsed() > GIVE_UP_AFTER {
            recorder.lock().unwrap().phases[phase].abandoned += 1;
            continue;
        }
        let (_, call) = plan
            .next_call(&mut rng)
            .expect("checked: one call per step");
        let (sent, outcome) = send(&plan.endpoint, &mut connection, call).await;
        recorder
            .lock()
            .unwrap()
            .record(phase, intended, sent, outcome);
    }
}

/// Sends `call` on `connection`, opening it first if there is none; a connection that failed is
/// dropped. Returns when the request was sent and its outcome.
async fn send(
    endpoint: &Endpoint,
    connection: &mut Option<Connection>,
    call: Call,
) -> (Instant, Outcome) {
    if connection.is_none() {
        match Connection::open(endpoint).await {
            Ok(opened) => *connection = Some(opened),
            Err(error) => return (Instant::now(), Outcome::Failed(format!("{error:#}"))),
        }
    }
    let sent = Instant::now();
    let result = connection.as_mut().expect("opened above").send(call).await;
    if result.is_err() {
        *connection = None;
    }
    (sent, outcome(result))
}

/// The overload run's settings (see `haven-bench overload --help`).
pub struct Settings {
    pub factor: f64,
    pub overload: Duration,
    pub phase: Duration,
    pub max_connections: usize,
    pub server_pid: Option<u32>,
}

/// Measures the peak, then runs the open-loop phases; returns the report as JSON.
pub async fn run(peak_plan: Arc<Plan>, settings: &Settings) -> anyhow::Result<Value> {
    let peak = measure_peak(&peak_plan).await?;
    anyhow::ensure!(peak > 0.0, "nothing succeeded while measuring the peak");
    let phases = [
        Phase {
            name: "unloaded (0.5x)",
            factor: 0.5,
            length: settings.phase,
        },
        Phase {
            name: "overload",
            factor: settings.factor,
            length: settings.overload,
        },
        Phase {
            name: "recovery (1x)",
            factor: 1.0,
            length: settings.phase,
        },
        Phase {
            name: "0.5x",
            factor: 0.5,
            length: settings.phase,
        },
    ];
    let recorder = Arc::new(Mutex::new(Recorder {
        start: Instant::now(),
        phases: phases
            .iter()
            .map(|p| PhaseStats {
                name: p.name,
                offered_rate: p.factor * peak,
                length: p.length,
                accepted: histogram(),
                accepted_from_send: histogram(),
                refused: histogram(),
                send_lag: histogram(),
                errors: 0,
                first_error: None,
                abandoned: 0,
            })
            .collect(),
        seconds: Vec::new(),
        last_refusal: None,
    }));
    let sampler = settings
        .server_pid
        .map(|pid| tokio::spawn(sample_rss(pid, recorder.clone())));
    let (due, backlog) = mpsc::unbounded_channel();
    let backlog: Backlog = Arc::new(tokio::sync::Mutex::new(backlog));
    let senders: Vec<_> = (0..settings.max_connections)
        .map(|id| {
            let sending = sender(id, peak_plan.clone(), backlog.clone(), recorder.clone());
            tokio::spawn(sending)
        })
        .collect();
    let overload_end = offer(&phases, peak, due).await;
    // The schedule is over (`due` is dropped): let the last requests finish.
    for sender in senders {
        sender.await?;
    }
    if let Some(sampler) = sampler {
        sampler.abort();
    }
    let recorder = recorder.lock().unwrap();
    Ok(report(peak, &peak_plan, settings, &recorder, overload_end))
}

/// Closed loop: every connection sends its next request when the previous one is answered.
async fn measure_peak(plan: &Arc<Plan>) -> anyhow::Result<f64> {
    let tasks: Vec<_> = (0..plan.connections)
        .map(|id| tokio::spawn(run_connection(plan.clone(), id)))
        .collect();
    let mut succeeded = 0;
    for task in tasks {
        let stats = task.await??;
        succeeded += stats.overall().len() - stats.errors;
    }
    Ok(succeeded as f64 / plan.duration.as_secs_f64())
}

/// Releases each phase's requests to the senders at their intended times; returns when the
/// overload phase ended.
async fn offer(phases: &[Phase], peak: f64, due: mpsc::UnboundedSender<Due>) -> Instant {
    let mut phase_start = Instant::now();
    let mut overload_end = phase_start;
    // Requests are released in 1 ms ticks: sleeping once per request would cost more than
    // sending it at tens of thousands per second.
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    for (index, phase) in phases.iter().enumerate() {
        let interval = Duration::from_secs_f64(1.0 / (phase.factor * peak));
        let end = phase_start + phase.length;
        let mut next = phase_start;
        while next < end {
            tick.tick().await;
            let now = Instant::now();
            while next <= now && next < end {
                due.send((next, index))
                    .expect("the senders outlive the schedule");
                next += interval;
            }
        }
        phase_start = end;
        if index == 1 {
            overload_end = end;
        }
    }
    overload_end
}

/// Reads the server's resident memory once a second.
async fn sample_rss(pid: u32, recorder: Arc<Mutex<Recorder>>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let Some(kb) = rss_kb(pid) else { return };
        recorder.lock().unwrap().second(Instant::now()).rss_kb = Some(kb);
    }
}

/// VmRSS of process `pid` in kB, from /proc.
fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn ms(nanos: u64) -> f64 {
    (nanos as f64 / 10_000.0).round() / 100.0
}

fn report(
    peak: f64,
    plan: &Plan,
    settings: &Settings,
    recorder: &Recorder,
    overload_end: Instant,
) -> Value {
    let phases: Vec<Value> = recorder
        .phases
        .iter()
        .map(|p| {
            let seconds = p.length.as_secs_f64();
            json!({
                "phase": p.name,
                "offered_per_sec": p.offered_rate.round(),
                "goodput_per_sec": (p.accepted.len() as f64 / seconds).round(),
                "refused_per_sec": (p.refused.len() as f64 / seconds).round(),
                "errors": p.errors,
                "abandoned_by_client": p.abandoned,
                "first_error": p.first_error,
                "accepted": summary(&p.accepted),
                "accepted_from_send": summary(&p.accepted_from_send),
                "refused": summary(&p.refused),
                "client_send_lag": summary(&p.send_lag),
            })
        })
        .collect();
    let [unloaded, overload, ..] = &recorder.phases[..] else {
        unreachable!("four phases")
    };
    let refused = &overload.refused;
    let rss: Vec<u64> = recorder.seconds.iter().filter_map(|s| s.rss_kb).collect();
    json!({
        "workload": format!("{:?}", plan.workload).to_lowercase(),
        "peak_connections": plan.connections,
        "peak_goodput_per_sec": peak.round(),
        "factor": settings.factor,
        "phases": phases,
        "overload_goodput_share_of_peak":
            ((overload.accepted.len() as f64 / overload.length.as_secs_f64() / peak) * 1000.0).round() / 1000.0,
        "accepted_p99_ratio_to_unloaded": ratio(
            overload.accepted.value_at_quantile(0.99),
            unloaded.accepted.value_at_quantile(0.99),
        ),
        "refused_max_ms": ms(refused.max()),
        "refused_share_under_5ms": if refused.is_empty() { 1.0 } else {
            refused.count_between(0, 5_000_000) as f64 / refused.len() as f64
        },
        "refusals_continued_after_overload_ms": recorder
            .last_refusal
            .filter(|&t| t > overload_end)
            .map_or(0.0, |t| (t - overload_end).as_secs_f64() * 1000.0).round(),
        "rss_mb": {
            "min": rss.iter().min().map(|kb| kb / 1024),
            "max": rss.iter().max().map(|kb| kb / 1024),
        },
        "per_second": recorder.seconds.iter().map(|s| json!([s.accepted, s.refused, s.errors, s.rss_kb.map(|kb| kb / 1024)])).collect::<Vec<_>>(),
        "per_second_columns": ["accepted", "refused", "errors", "rss_mb"],
    })
}

fn ratio(a: u64, b: u64) -> f64 {
    ((a as f64 / b.max(1) as f64) * 10.0).round() / 10.0
}

/// The report as text: a table of phases, the verdict figures, and the per-second timeline.
pub fn to_text(report: &Value) -> String {
    let mut out = format!(
        "workload {}  peak (closed loop, {} connections): {:.0} ok/s\n",
        report["workload"],
        report["peak_connections"],
        report["peak_goodput_per_sec"].as_f64().unwrap_or(0.0)
    );
    out += &format!(
        "{:<16}{:>10}{:>10}{:>10}{:>8}{:>10}{:>12}{:>12}{:>12}{:>12}{:>12}{:>12}\n",
        "phase",
        "offered/s",
        "ok/s",
        "refused/s",
        "errors",
        "gave up",
        "ok p50 ms",
        "ok p99 ms",
        "p99 sent",
        "ref p99 ms",
        "ref max ms",
        "lag p99 ms"
    );
    for p in report["phases"].as_array().into_iter().flatten() {
        let n = |v: &Value| v.as_f64().unwrap_or(0.0);
        out += &format!(
            "{:<16}{:>10.0}{:>10.0}{:>10.0}{:>8.0}{:>10.0}{:>12.2}{:>12.2}{:>12.2}{:>12.2}{:>12.2}{:>12.2}\n",
            p["phase"].as_str().unwrap_or(""),
            n(&p["offered_per_sec"]),
            n(&p["goodput_per_sec"]),
            n(&p["refused_per_sec"]),
            n(&p["errors"]),
            n(&p["abandoned_by_client"]),
            n(&p["accepted"]["p50_us"]) / 1000.0,
            n(&p["accepted"]["p99_us"]) / 1000.0,
            n(&p["accepted_from_send"]["p99_us"]) / 1000.0,
            n(&p["refused"]["p99_us"]) / 1000.0,
            n(&p["refused"]["max_us"]) / 1000.0,
            n(&p["client_send_lag"]["p99_us"]) / 1000.0,
        );
        if let Some(error) = p["first_error"].as_str() {
            out += &format!("  first error: {error}\n");
        }
    }
    out += &format!(
        "overload goodput / peak: {}  accepted p99 / unloaded p99: {}x  refused: max {} ms, share under 5 ms {:.4}\n",
        report["overload_goodput_share_of_peak"],
        report["accepted_p99_ratio_to_unloaded"],
        report["refused_max_ms"],
        report["refused_share_under_5ms"].as_f64().unwrap_or(0.0),
    );
    out += &format!(
        "refusals went on {} ms after the overload ended; server RSS {}..{} MB\n",
        report["refusals_continued_after_overload_ms"],
        report["rss_mb"]["min"],
        report["rss_mb"]["max"],
    );
    out += "second: accepted refused errors rss_mb\n";
    for (second, row) in report["per_second"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        out += &format!("{second:>4}: {row}\n");
    }
    out
}
