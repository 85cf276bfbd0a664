//! The bot's configuration, read once from the environment at start.
//!
//! Every variable is checked before the bot starts, and all problems are
//! reported together in one [`ConfigError`] so an operator can fix them in
//! one go. Loading `.env` is left to the caller.

use std::collections::BTreeSet;
use std::fmt;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

pub const TELEGRAM_BOT_TOKEN: &str = "TELEGRAM_BOT_TOKEN";
/// Accepted in place of [`TELEGRAM_BOT_TOKEN`] when that one is unset.
pub const TELEGRAM_BOT_API_KEY: &str = "TELEGRAM_BOT_API_KEY";
pub const TELEGRAM_API_URL: &str = "TELEGRAM_API_URL";
pub const ALLOWED_USER_IDS: &str = "ALLOWED_USER_IDS";
pub const CLAUDE_BIN: &str = "CLAUDE_BIN";
pub const WORKING_DIRECTORY: &str = "WORKING_DIRECTORY";
pub const WORKSPACE_ROOT: &str = "WORKSPACE_ROOT";
pub const DATABASE_PATH: &str = "DATABASE_PATH";
pub const CLAUDE_MODEL: &str = "CLAUDE_MODEL";
pub const CLAUDE_ALLOWED_TOOLS: &str = "CLAUDE_ALLOWED_TOOLS";
pub const CLAUDE_PERMISSION_MODE: &str = "CLAUDE_PERMISSION_MODE";
pub const CLAUDE_MAX_TURNS: &str = "CLAUDE_MAX_TURNS";
pub const CLAUDE_TIMEOUT_SECS: &str = "CLAUDE_TIMEOUT_SECS";
pub const MAX_CONCURRENT_RUNS: &str = "MAX_CONCURRENT_RUNS";
pub const LONG_ANSWER_MESSAGES: &str = "LONG_ANSWER_MESSAGES";
pub const PROGRESS_EDIT_SECS: &str = "PROGRESS_EDIT_SECS";
pub const MAX_QUEUED_PER_CHAT: &str = "MAX_QUEUED_PER_CHAT";
pub const SHUTDOWN_GRACE_SECS: &str = "SHUTDOWN_GRACE_SECS";
pub const SENTRY_DSN: &str = "SENTRY_DSN";
pub const SENTRY_ENVIRONMENT: &str = "SENTRY_ENVIRONMENT";
pub const SENTRY_RELEASE: &str = "SENTRY_RELEASE";
pub const SENTRY_TRACES_SAMPLE_RATE: &str = "SENTRY_TRACES_SAMPLE_RATE";
pub const SENTRY_SEND_DEFAULT_PII: &str = "SENTRY_SEND_DEFAULT_PII";

/// Variables holding secrets: never passed on to the Claude CLI.
pub const SECRET_VARS: &[&str] = &[TELEGRAM_BOT_TOKEN, TELEGRAM_BOT_API_KEY, SENTRY_DSN];

const DEFAULT_API_URL: &str = "https://api.telegram.org";
const DEFAULT_DATABASE_PATH: &str = "./data/bot.sqlite3";
const DEFAULT_TOOLS: &[&str] = &["Read", "Write", "Edit", "Bash"];

/// Everything the bot needs to know from its environment.
///
/// `Debug` hides the Telegram token and the Sentry DSN.
#[derive(Clone)]
pub struct Config {
    pub telegram_token: String,
    pub telegram_api_url: String,
    /// Users who may talk to the bot; empty means nobody.
    pub allowed_user_ids: BTreeSet<u64>,
    /// The CLI as configured; a bare name is looked up on `PATH` at spawn.
    pub claude_bin: PathBuf,
    /// Canonical directory a chat starts in; always inside `workspace_root`.
    pub working_directory: PathBuf,
    /// Canonical directory that `/cd` cannot leave.
    pub workspace_root: PathBuf,
    /// As given; relative paths are relative to the process directory.
    pub database_path: PathBuf,
    pub claude_model: Option<String>,
    pub allowed_tools: Vec<String>,
    /// Passed to the CLI's `--permission-mode` unchecked.
    pub permission_mode: String,
    pub max_turns: Option<u32>,
    pub claude_timeout: Duration,
    pub max_concurrent_runs: usize,
    /// Answers longer than this many messages are sent as a file.
    pub long_answer_messages: usize,
    pub progress_edit_interval: Duration,
    /// Prompts that may wait behind the running one in a chat.
    pub max_queued_per_chat: usize,
    pub shutdown_grace: Duration,
    pub sentry: SentryConfig,
}

/// Sentry settings; monitoring is off when `dsn` is `None`.
#[derive(Clone)]
pub struct SentryConfig {
    pub dsn: Option<String>,
    pub environment: String,
    pub release: String,
    pub traces_sample_rate: f32,
    pub send_default_pii: bool,
}

/// Every problem found in the environment, each naming its variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration:\n  - {}", .problems.join("\n  - "))]
pub struct ConfigError {
    pub problems: Vec<String>,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads variables through `lookup`; empty values count as unset.
    ///
    /// Relative directories are resolved against the process directory.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mut env = Reader {
            lookup,
            problems: Vec::new(),
        };

        let telegram_token = env.token();
        let (working_directory, workspace_root) = env.directories();
        let sentry = env.sentry();
        let config = Config {
            telegram_token,
            telegram_api_url: env.api_url(),
            allowed_user_ids: env.user_ids(),
            claude_bin: env.text(CLAUDE_BIN, "claude").into(),
            working_directory,
            workspace_root,
            database_path: env.text(DATABASE_PATH, DEFAULT_DATABASE_PATH).into(),
            claude_model: env.get(CLAUDE_MODEL),
            allowed_tools: env.tools(),
            permission_mode: env.text(CLAUDE_PERMISSION_MODE, "default"),
            max_turns: env.max_turns(),
            claude_timeout: Duration::from_secs(env.number(CLAUDE_TIMEOUT_SECS, 900, 1)),
            max_concurrent_runs: env.number(MAX_CONCURRENT_RUNS, 4, 1),
            long_answer_messages: env.number(LONG_ANSWER_MESSAGES, 8, 1),
            progress_edit_interval: env.interval(PROGRESS_EDIT_SECS, 1.5),
            max_queued_per_chat: env.number(MAX_QUEUED_PER_CHAT, 5, 0),
            shutdown_grace: Duration::from_secs(env.number(SHUTDOWN_GRACE_SECS, 20, 0)),
            sentry,
        };

        if !env.problems.is_empty() {
            return Err(ConfigError {
                problems: env.problems,
            });
        }
        Ok(config)
    }

    /// Whether this Telegram user may use the bot.
    pub fn allows(&self, user_id: u64) -> bool {
        self.allowed_user_ids.contains(&user_id)
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("telegram_token", &"<redacted>")
            .field("telegram_api_url", &self.telegram_api_url)
            .field("allowed_user_ids", &self.allowed_user_ids)
            .field("claude_bin", &self.claude_bin)
            .field("working_directory", &self.working_directory)
            .field("workspace_root", &self.workspace_root)
            .field("database_path", &self.database_path)
            .field("claude_model", &self.claude_model)
            .field("allowed_tools", &self.allowed_tools)
            .field("permission_mode", &self.permission_mode)
            .field("max_turns", &self.max_turns)
            .field("claude_timeout", &self.claude_timeout)
            .field("max_concurrent_runs", &self.max_concurrent_runs)
            .field("long_answer_messages", &self.long_answer_messages)
            .field("progress_edit_interval", &self.progress_edit_interval)
            .field("max_queued_per_chat", &self.max_queued_per_chat)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("sentry", &self.sentry)
            .finish()
    }
}

impl fmt::Debug for SentryConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dsn = self.dsn.as_ref().map(|_| "<redacted>");
        f.debug_struct("SentryConfig")
            .field("dsn", &dsn)
            .field("environment", &self.environment)
            .field("release", &self.release)
            .field("traces_sample_rate", &self.traces_sample_rate)
            .field("send_default_pii", &self.send_default_pii)
            .finish()
    }
}

/// Looks variables up and collects what is wrong with them.
struct Reader<F> {
    lookup: F,
    problems: Vec<String>,
}

impl<F: Fn(&str) -> Option<String>> Reader<F> {
    fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|value| !value.trim().is_empty())
    }

    fn text(&self, name: &str, default: &str) -> String {
        self.get(name).unwrap_or_else(|| default.to_owned())
    }

    fn problem(&mut self, problem: String) {
        self.problems.push(problem);
    }

    fn token(&mut self) -> String {
        let token = self.get(TELEGRAM_BOT_TOKEN);
        if let Some(token) = token.or_else(|| self.get(TELEGRAM_BOT_API_KEY)) {
            return token.trim().to_owned();
        }
        self.problem(format!(
            "{TELEGRAM_BOT_TOKEN} is not set: put the bot token from \
             @BotFather in it (or in {TELEGRAM_BOT_API_KEY})"
        ));
        String::new()
    }

    fn api_url(&mut self) -> String {
        let Some(url) = self.get(TELEGRAM_API_URL) else {
            return DEFAULT_API_URL.to_owned();
        };
        let url = url.trim().trim_end_matches('/').to_owned();
        let scheme = reqwest::Url::parse(&url).map(|parsed| parsed.scheme().to_owned());
        if !matches!(scheme.as_deref(), Ok("http" | "https")) {
            self.problem(format!(
                "{TELEGRAM_API_URL}: {url:?} is not an http(s) URL; leave it \
                 empty for {DEFAULT_API_URL}"
            ));
        }
        url
    }

    fn user_ids(&mut self) -> BTreeSet<u64> {
        let Some(list) = self.get(ALLOWED_USER_IDS) else {
            return BTreeSet::new();
        };
        let mut ids = BTreeSet::new();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match item.parse() {
                Ok(id) => {
                    ids.insert(id);
                }
                Err(_) => self.problem(format!(
                    "{ALLOWED_USER_IDS}: {item:?} is not a numeric Telegram \
                     user id; list ids separated by commas"
                )),
            }
        }
        ids
    }

    fn tools(&self) -> Vec<String> {
        let Some(list) = self.get(CLAUDE_ALLOWED_TOOLS) else {
            return DEFAULT_TOOLS.iter().map(|&tool| tool.to_owned()).collect();
        };
        let tools = list.split(',').map(str::trim).filter(|s| !s.is_empty());
        tools.map(str::to_owned).collect()
    }

    /// `name` parsed as a `T` that passes `valid`, or `default` when unset.
    ///
    /// `wanted` completes the problem's sentence "NAME: "x" is not ...".
    fn parsed<T: FromStr>(
        &mut self,
        name: &str,
        default: T,
        valid: impl Fn(&T) -> bool,
        wanted: &str,
    ) -> T {
        let Some(text) = self.get(name) else {
            return default;
        };
        match text.trim().parse::<T>() {
            Ok(value) if valid(&value) => value,
            _ => {
                self.problem(format!("{name}: {text:?} is not {wanted}"));
                default
            }
        }
    }

    /// A whole number of at least `min`, or `default` when unset.
    fn number<T>(&mut self, name: &str, default: T, min: T) -> T
    where
        T: FromStr + PartialOrd + fmt::Display + Copy,
    {
        let wanted = format!(
            "a whole number of at least {min}; leave it empty for the \
             default {default}"
        );
        self.parsed(name, default, |&n| n >= min, &wanted)
    }

    fn max_turns(&mut self) -> Option<u32> {
        let wanted = "a whole number of at least 1; leave it empty for no limit";
        self.get(CLAUDE_MAX_TURNS)?;
        Some(self.parsed(CLAUDE_MAX_TURNS, 1, |&n| n >= 1, wanted))
    }

    /// A positive number of seconds, fractions allowed.
    fn interval(&mut self, name: &str, default: f64) -> Duration {
        let wanted = format!(
            "a positive number of seconds; leave it empty for the default \
             {default}"
        );
        let valid = |&secs: &f64| secs > 0.0 && secs < 1e9;
        Duration::from_secs_f64(self.parsed(name, default, valid, &wanted))
    }

    fn sample_rate(&mut self) -> f32 {
        let wanted = "a number from 0.0 to 1.0 (the share of runs traced)";
        let valid = |rate: &f32| (0.0..=1.0).contains(rate);
        self.parsed(SENTRY_TRACES_SAMPLE_RATE, 1.0, valid, wanted)
    }

    fn flag(&mut self, name: &str, default: bool) -> bool {
        let Some(value) = self.get(name) else {
            return default;
        };
        match value.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => true,
            "false" | "0" | "no" => false,
            _ => {
                self.problem(format!(
                    "{name}: {value:?} is not a boolean; use true or false"
                ));
                default
            }
        }
    }

    fn sentry(&mut self) -> SentryConfig {
        let default_release = concat!("claude-telegram-bot@", env!("CARGO_PKG_VERSION"));
        SentryConfig {
            dsn: self.dsn(),
            environment: self.text(SENTRY_ENVIRONMENT, "production"),
            release: self.text(SENTRY_RELEASE, default_release),
            traces_sample_rate: self.sample_rate(),
            send_default_pii: self.flag(SENTRY_SEND_DEFAULT_PII, false),
        }
    }

    /// The Sentry DSN, checked the way the SDK will read it.
    fn dsn(&mut self) -> Option<String> {
        let dsn = self.get(SENTRY_DSN)?.trim().to_owned();
        if let Err(error) = dsn.parse::<sentry::types::Dsn>() {
            self.problem(format!(
                "{SENTRY_DSN}: not a valid DSN ({error}); copy it from the Sentry \
                 project's Client Keys page, or leave it empty to turn monitoring off"
            ));
        }
        Some(dsn)
    }

    /// The canonical working directory and workspace root, checked.
    fn directories(&mut self) -> (PathBuf, PathBuf) {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        let working = self.get(WORKING_DIRECTORY).map_or(cwd, PathBuf::from);
        let working = self.directory(WORKING_DIRECTORY, &working);
        let root = match self.get(WORKSPACE_ROOT) {
            Some(root) => self.directory(WORKSPACE_ROOT, Path::new(&root)),
            None => working.clone(),
        };

        if let (Some(root), Some(working)) = (&root, &working)
            && !working.starts_with(root)
        {
            self.problem(format!(
                "{WORKING_DIRECTORY}: {} is outside {WORKSPACE_ROOT} {}; \
                 choose a directory inside it or widen the root",
                working.display(),
                root.display()
            ));
        }
        (working.unwrap_or_default(), root.unwrap_or_default())
    }

    /// The canonical form of an existing directory, or a problem.
    fn directory(&mut self, name: &str, path: &Path) -> Option<PathBuf> {
        let shown = path.display();
        match path.canonicalize() {
            Ok(canonical) if canonical.is_dir() => Some(canonical),
            Ok(_) => {
                self.problem(format!(
                    "{name}: {shown} is not a directory; point it at one"
                ));
                None
            }
            Err(err) if err.kind() == ErrorKind::NotFound => {
                self.problem(format!(
                    "{name}: {shown} does not exist; point it at an existing \
                     directory"
                ));
                None
            }
            Err(err) => {
                self.problem(format!(
                    "{name}: {shown} cannot be used ({err}); point it at a \
                     readable directory"
                ));
                None
            }
        }
    }
}

#[cfg(test)]
mod tests;
