//! `BotProcess`: the real bot binary, started with a clean environment
//! against the test doubles, its output captured for the test to read.
//!
//! Each bot gets a temp dir that holds its cwd, HOME, working directory,
//! workspace root and database; a restart keeps the dir, so state survives.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tempfile::TempDir;

use super::anthropic_api::{AnthropicApi, claude_cli};
use super::fake_claude::FakeClaude;
use super::sentry_api::SentryApi;
use super::telegram_api::BotApi;
use super::wait_for;

const BOT_BIN: &str = env!("CARGO_BIN_EXE_claude-telegram-bot");

/// How long [`BotBuilder::run_to_exit`] lets the bot run.
const RUN_TO_EXIT_TIMEOUT: Duration = Duration::from_secs(30);

/// The environment of a bot to start; `.env` overrides any default.
pub struct BotBuilder {
    root: TempDir,
    env: BTreeMap<String, String>,
}

impl BotBuilder {
    /// Sets one environment variable of the bot.
    pub fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env.insert(key.to_owned(), value.into());
        self
    }

    /// Leaves a default variable unset, for configuration-error tests.
    pub fn without_env(mut self, key: &str) -> Self {
        self.env.remove(key);
        self
    }

    /// Points the bot at the Bot API double, with its token.
    pub fn telegram(self, api: &BotApi) -> Self {
        self.env("TELEGRAM_BOT_TOKEN", api.token())
            .env("TELEGRAM_API_URL", api.url())
    }

    pub fn allowed_users(self, ids: &[i64]) -> Self {
        let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
        self.env("ALLOWED_USER_IDS", ids.join(","))
    }

    /// Runs the fake CLI as `claude`.
    pub fn fake_claude(self, fake: &FakeClaude) -> Self {
        self.env("CLAUDE_BIN", fake.bin().display().to_string())
    }

    /// Runs the real pinned CLI, talking only to the Messages API double.
    pub fn real_claude(mut self, api: &AnthropicApi) -> Self {
        let home = self.root.path().join("home");
        for (key, value) in api.claude_env(&home) {
            self.env.insert(key, value);
        }
        self.env("CLAUDE_BIN", claude_cli().display().to_string())
    }

    pub fn sentry(self, sentry: &SentryApi) -> Self {
        self.env("SENTRY_DSN", sentry.dsn())
    }

    /// Starts the bot; it is killed when the returned value drops.
    pub fn start(self) -> BotProcess {
        let mut bot = BotProcess {
            root: self.root,
            env: self.env,
            child: None,
            log: Log::default(),
        };
        bot.spawn();
        bot
    }

    /// Runs the bot until it exits by itself: its status and stderr.
    ///
    /// Panics if it still runs after 30 s.
    pub async fn run_to_exit(self) -> (ExitStatus, String) {
        let mut command = tokio::process::Command::new(BOT_BIN);
        command
            .env_clear()
            .envs(&self.env)
            .current_dir(self.root.path());
        command.stdin(Stdio::null()).kill_on_drop(true);
        let output = tokio::time::timeout(RUN_TO_EXIT_TIMEOUT, command.output()).await;
        let output = output.expect("the bot did not exit within 30 s");
        let output = output.expect("starting the bot binary");
        (
            output.status,
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }
}

/// Everything the bot printed, stdout and stderr interleaved by line.
type Log = Arc<Mutex<String>>;

/// The running bot binary; killed with SIGKILL on drop.
pub struct BotProcess {
    root: TempDir,
    env: BTreeMap<String, String>,
    child: Option<Child>,
    log: Log,
}

impl BotProcess {
    /// A bot with RUST_LOG=debug, PATH, and a fresh dir for HOME,
    /// WORKING_DIRECTORY, WORKSPACE_ROOT and DATABASE_PATH.
    pub fn builder() -> BotBuilder {
        let root = tempfile::tempdir().expect("creating the bot's temp dir");
        for dir in ["home", "work", "workspaces"] {
            std::fs::create_dir(root.path().join(dir)).expect("creating a bot dir");
        }
        let at = |name: &str| root.path().join(name).display().to_string();
        let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".to_owned());

        let env = BTreeMap::from([
            ("PATH".to_owned(), path),
            ("HOME".to_owned(), at("home")),
            ("RUST_LOG".to_owned(), "debug".to_owned()),
            ("WORKING_DIRECTORY".to_owned(), at("work")),
            ("WORKSPACE_ROOT".to_owned(), at("workspaces")),
            ("DATABASE_PATH".to_owned(), at("bot.db")),
        ]);
        BotBuilder { root, env }
    }

    fn spawn(&mut self) {
        let mut child = Command::new(BOT_BIN)
            .env_clear()
            .envs(&self.env)
            .current_dir(self.root.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting the bot binary");
        capture(child.stdout.take().expect("piped stdout"), self.log.clone());
        capture(child.stderr.take().expect("piped stderr"), self.log.clone());
        self.child = Some(child);
    }

    /// The bot's temp dir (its cwd).
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// The value of one of the bot's environment variables.
    pub fn env_value(&self, key: &str) -> Option<&str> {
        self.env.get(key).map(String::as_str)
    }

    pub fn working_dir(&self) -> PathBuf {
        PathBuf::from(&self.env["WORKING_DIRECTORY"])
    }

    pub fn database_path(&self) -> PathBuf {
        PathBuf::from(&self.env["DATABASE_PATH"])
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// What the current process printed so far; a restart starts afresh.
    pub fn log(&self) -> String {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Waits until the log contains `needle`; returns the log.
    pub async fn wait_for_log(&self, needle: &str, timeout: Duration) -> String {
        wait_for(&format!("{needle:?} in the bot log"), timeout, || {
            let log = self.log();
            if log.contains(needle) {
                return Ok(log);
            }
            Err(tail(&log))
        })
        .await
    }

    /// Sends `signal` to the bot, if it still runs.
    pub fn signal(&self, signal: Signal) {
        let Some(pid) = self.pid() else { return };
        // The bot may have exited already; that is what the test is after.
        let _ = kill(Pid::from_raw(pid as i32), signal);
    }

    /// SIGTERM: what a service manager sends to stop the bot.
    pub fn terminate(&self) {
        self.signal(Signal::SIGTERM);
    }

    /// SIGKILL, like a crash or power loss; waits until it is gone.
    pub fn kill(&mut self) {
        let Some(child) = self.child.as_mut() else {
            return;
        };
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Waits for the bot to exit by itself; panics with its log if it does not.
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let child = self.child.as_mut().expect("the bot was started");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().expect("polling the bot process") {
                return status;
            }
            if Instant::now() >= deadline {
                let log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
                panic!("the bot still runs after {timeout:?}; log:\n{}", tail(&log));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills the bot if it runs, then starts it again with the same env and dir.
    pub fn restart(&mut self) {
        self.kill();
        self.log = Log::default();
        self.spawn();
    }
}

impl Drop for BotProcess {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "--- bot log ---\n{}--- end of bot log ---",
                tail(&self.log())
            );
        }
    }
}

/// Copies `stream` into `log` line by line on its own thread, until EOF.
fn capture(stream: impl Read + Send + 'static, log: Log) {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut line = Vec::new();
        while reader
            .read_until(b'\n', &mut line)
            .is_ok_and(|read| read > 0)
        {
            let text = String::from_utf8_lossy(&line);
            log.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push_str(&text);
            line.clear();
        }
    });
}

/// The last 20 000 characters of a log, for panic messages.
fn tail(log: &str) -> String {
    const KEEP: usize = 20_000;
    let skip = log.chars().count().saturating_sub(KEEP);
    match log.char_indices().nth(skip) {
        Some((start, _)) if skip > 0 => format!("...{}", &log[start..]),
        _ => log.to_owned(),
    }
}
