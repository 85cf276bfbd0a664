//! What Sentry monitoring costs the bot: the same workload through two real
//! bot binaries, one reporting to a local Sentry double and one with
//! monitoring off, prompt by prompt in alternation so that both see the same
//! machine. Prints each one's wall time per prompt (prompt queued to answer
//! sent) and the bot process's own CPU time, then the ratios.
//!
//! `cargo bench --bench overhead`; `BENCH_PROMPTS=N` changes the number of
//! measured prompts per bot (default 200).

#[path = "../tests/support/mod.rs"]
mod support;

use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

use support::bot_process::BotProcess;
use support::fake_claude::FakeClaude;
use support::sentry_api::SentryApi;
use support::telegram_api::BotApi;
use support::wait_for;

/// A recorded run with streamed output and a tool call, like real use.
const TRANSCRIPT: &str = "g_partial_messages";
/// The recording's answer, as the bot sends it.
const ANSWER: &str = "The command printed: hi";
const USER: i64 = 4242;
const DEFAULT_PROMPTS: usize = 200;
/// Prompts each bot answers before measuring starts (connections, the
/// state file, first-use allocations).
const WARM_UP: usize = 3;
const WAIT: Duration = Duration::from_secs(30);

/// How the bot under test reports to Sentry.
#[derive(Clone, Copy, PartialEq)]
enum Monitoring {
    Off,
    On,
    /// Also records prompts, answers and tool input and output.
    WithPii,
}

/// One bot under test, with its own doubles.
struct Subject {
    name: &'static str,
    telegram: BotApi,
    sentry: Option<SentryApi>,
    bot: BotProcess,
    fake: FakeClaude,
    /// Answers seen so far.
    answered: usize,
    walls: Vec<Duration>,
}

impl Subject {
    async fn start(name: &'static str, monitoring: Monitoring) -> Subject {
        let telegram = BotApi::start().await;
        let fake = FakeClaude::new();
        fake.default_script(FakeClaude::fixture(TRANSCRIPT));
        let sentry = match monitoring {
            Monitoring::Off => None,
            _ => Some(SentryApi::start().await),
        };
        let mut builder = BotProcess::builder()
            .telegram(&telegram)
            .allowed_users(&[USER])
            .fake_claude(&fake)
            // Logging at debug would measure the log, not the monitoring.
            .env("RUST_LOG", "info");
        if let Some(sentry) = &sentry {
            builder = builder.sentry(sentry);
        }
        if monitoring == Monitoring::WithPii {
            builder = builder.env("SENTRY_SEND_DEFAULT_PII", "true");
        }
        let bot = builder.start();
        Subject {
            name,
            telegram,
            sentry,
            bot,
            fake,
            answered: 0,
            walls: Vec::new(),
        }
    }

    /// Sends one prompt and waits for its answer (and, when monitored, for
    /// its transaction, so no work spills into the next prompt).
    async fn prompt(&mut self, measured: bool) {
        let sent = Instant::now();
        self.telegram.push_text(USER, USER, "run echo hi");
        self.answered += 1;
        let n = self.answered;
        let answer_at = wait_for(&format!("answer {n}"), WAIT, || {
            let calls = self.telegram.calls_to("sendMessage");
            let mut answers = calls.iter().filter(|call| {
                let text = call.params["text"].as_str().unwrap_or("");
                text.contains(ANSWER)
            });
            let answer = answers.nth(n - 1).map(|call| call.at);
            answer.ok_or_else(|| format!("{} sendMessage calls", calls.len()))
        })
        .await;
        if let Some(sentry) = &self.sentry {
            sentry.wait_for_transactions(n, WAIT).await;
        }
        if measured {
            self.walls.push(answer_at.duration_since(sent));
        }
        self.forget_calls();
    }

    /// Removes the stand-in CLI's records of past runs. It numbers each
    /// run by trying `mkdir` from 1 up, a process per try: without this,
    /// every prompt would cost a millisecond more than the one before.
    fn forget_calls(&self) {
        let calls = self.fake.dir().join("calls");
        for entry in fs::read_dir(&calls).expect("reading the fake's calls") {
            let path = entry.expect("a calls entry").path();
            fs::remove_dir_all(&path).expect("removing a finished call");
        }
    }

    /// What the bot sent to Sentry, per prompt; checks every prompt was
    /// traced.
    fn sent_kib_per_prompt(&self) -> f64 {
        let Some(sentry) = &self.sentry else {
            return 0.0;
        };
        let transactions = sentry.transactions().len();
        assert_eq!(
            transactions, self.answered,
            "{}: a transaction a prompt",
            self.name
        );
        let bytes: usize = sentry.posts().iter().map(|p| p.body.len()).sum();
        bytes as f64 / 1024.0 / transactions as f64
    }

    fn cpu(&self) -> Duration {
        cpu_time(self.bot.pid().expect("the bot runs"))
    }
}

/// utime + stime of one process (all its threads, none of its children).
fn cpu_time(pid: u32) -> Duration {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("reading /proc/PID/stat");
    // The command name may hold spaces; the fields after it are fixed.
    let (_, fields) = stat.rsplit_once(')').expect("a stat line");
    let fields: Vec<&str> = fields.split_whitespace().collect();
    // Fields 14 and 15 of stat(5); `fields` starts at field 3.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_secs_f64(ticks as f64 / clock_ticks() as f64)
}

fn clock_ticks() -> u64 {
    let output = Command::new("getconf").arg("CLK_TCK").output();
    let text = output.map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    text.ok().and_then(|t| t.trim().parse().ok()).unwrap_or(100)
}

/// Mean, median and 90th percentile, in milliseconds.
fn summary(walls: &[Duration]) -> (f64, f64, f64) {
    let mut ms: Vec<f64> = walls.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    let mean = ms.iter().sum::<f64>() / ms.len() as f64;
    let at = |share: f64| ms[((ms.len() - 1) as f64 * share).round() as usize];
    (mean, at(0.5), at(0.9))
}

fn main() {
    let prompts = std::env::var("BENCH_PROMPTS").ok();
    let prompts = prompts
        .and_then(|n| n.parse().ok())
        .unwrap_or(DEFAULT_PROMPTS);
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    runtime.block_on(measure(prompts));
}

async fn measure(prompts: usize) {
    let mut subjects = vec![
        Subject::start("monitoring off", Monitoring::Off).await,
        Subject::start("monitoring on", Monitoring::On).await,
        Subject::start("on, with PII", Monitoring::WithPii).await,
    ];
    for _ in 0..WARM_UP {
        for subject in &mut subjects {
            subject.prompt(false).await;
        }
    }

    let before: Vec<Duration> = subjects.iter().map(Subject::cpu).collect();
    for round in 0..prompts {
        // Rotate who goes first, so no bot always follows the same one.
        let count = subjects.len();
        for turn in 0..count {
            subjects[(round + turn) % count].prompt(true).await;
        }
    }
    let cpu: Vec<Duration> = subjects
        .iter()
        .zip(before)
        .map(|(s, b)| s.cpu() - b)
        .collect();

    println!("transcript {TRANSCRIPT}, {prompts} prompts per bot after {WARM_UP} warm-up");
    println!(
        "{:<16}{:>9}{:>9}{:>9}{:>12}{:>12}{:>12}",
        "", "mean ms", "median", "p90", "CPU ms", "CPU/prompt", "KiB/prompt"
    );
    let mut rows = Vec::new();
    for (subject, cpu) in subjects.iter().zip(cpu) {
        let (mean, median, p90) = summary(&subject.walls);
        let cpu_ms = cpu.as_secs_f64() * 1000.0;
        let per_prompt = cpu_ms / prompts as f64;
        let kib = subject.sent_kib_per_prompt();
        println!(
            "{:<16}{mean:>9.1}{median:>9.1}{p90:>9.1}{cpu_ms:>12.0}{per_prompt:>12.2}{kib:>12.1}",
            subject.name
        );
        rows.push((subject.name, mean, median, cpu_ms));
    }
    let (_, off_mean, off_median, off_cpu) = rows[0];
    for (name, mean, median, cpu_ms) in &rows[1..] {
        println!(
            "{name} / off: mean wall {:.3}, median wall {:.3}, CPU {:.3}",
            mean / off_mean,
            median / off_median,
            cpu_ms / off_cpu
        );
    }
}
