//! One agent run: the CLI's arguments, the loop that reads its stdout into
//! [`Line`]s for observers, the timeout and cancellation, and the verdict on
//! how the run ended. What the lines mean to a user or to Sentry is left to
//! the observers.

use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::process::{AgentProcess, Invocation, SpawnError};
use super::wire::{self, ContentBlock, Init, Line, ParseError, RunResult, System};

/// How long the CLI gets after SIGINT to write its result before SIGKILL.
const INTERRUPT_GRACE: Duration = Duration::from_secs(3);
/// How long stdout may stay open after the CLI exited (a tool child that
/// inherited it) before the run stops reading.
const EXIT_DRAIN: Duration = Duration::from_secs(1);
/// How long the CLI may linger after its result line before the run stops
/// reading: some versions hang there (an MCP server, a stuck hook), and the
/// answer is complete already.
const RESULT_LINGER: Duration = Duration::from_secs(2);
/// The CLI's words when `--resume` names a conversation it does not have.
const NO_CONVERSATION: &str = "No conversation found with session ID";

/// How every run of this bot invokes the CLI.
#[derive(Debug, Clone)]
pub struct AgentSettings {
    pub program: PathBuf,
    pub model: Option<String>,
    pub allowed_tools: Vec<String>,
    pub permission_mode: String,
    pub max_turns: Option<u32>,
    pub timeout: Duration,
    /// The bot's own secrets, removed from the CLI's environment.
    pub env_remove: Vec<String>,
}

/// What one run is asked to do.
#[derive(Debug, Clone)]
pub struct Prompt {
    pub text: String,
    pub cwd: PathBuf,
    /// The CLI session to continue, if the chat has one.
    pub resume: Option<String>,
}

/// Something that watches a run line by line, as the lines arrive.
///
/// Observers run inside the reading loop, so they must be quick; anything
/// slow (a Telegram call) belongs on a task of the observer's own.
pub trait RunObserver: Send {
    fn observe(&mut self, line: &Line);
}

/// Why a run did not produce an answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RunError {
    #[error("the claude cli was not found at {program}")]
    NotFound { program: PathBuf },
    #[error("could not start claude at {program}: {reason}")]
    Spawn { program: PathBuf, reason: String },
    #[error("conversation {session_id} no longer exists")]
    ResumeNotFound { session_id: String },
    #[error("claude reported an error: {message}")]
    Reported { message: String },
    #[error("claude exited with {}", exit_status(*code))]
    Exited {
        code: Option<i32>,
        stderr_tail: String,
    },
    #[error("claude ended without a result ({})", exit_status(*code))]
    NoResult {
        code: Option<i32>,
        stderr_tail: String,
    },
    #[error("claude ran longer than {}s", after.as_secs())]
    TimedOut { after: Duration },
    #[error("the run was stopped")]
    Cancelled,
}

/// "status 1", or "a signal" when no exit code came.
fn exit_status(code: Option<i32>) -> String {
    code.map_or_else(|| "a signal".to_owned(), |code| format!("status {code}"))
}

/// Everything a finished run left behind, successful or not.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub init: Option<Init>,
    pub result: Option<RunResult>,
    /// Names of the tools called, in call order.
    pub tool_calls: Vec<String>,
    pub exit_code: Option<i32>,
    pub stderr_tail: String,
    /// `None` when the run answered.
    pub failure: Option<RunError>,
}

impl RunOutcome {
    /// The CLI session this run belongs to, as soon as the CLI named it.
    pub fn session_id(&self) -> Option<&str> {
        let from_init = self.init.as_ref().map(|init| init.session_id.as_str());
        let from_result = self.result.as_ref().map(|r| r.session_id.as_str());
        from_init.or(from_result).filter(|id| !id.is_empty())
    }

    /// The answer text of a successful run.
    pub fn answer(&self) -> Option<&str> {
        if self.failure.is_some() {
            return None;
        }
        self.result
            .as_ref()
            .map(|r| r.result.as_deref().unwrap_or(""))
    }
}

impl AgentSettings {
    /// The CLI's arguments for one prompt; the prompt itself goes to stdin.
    pub fn args(&self, resume: Option<&str>) -> Vec<String> {
        let mut args: Vec<String> = [
            "-p",
            "--output-format",
            "stream-json",
            "--verbose",
            "--include-partial-messages",
        ]
        .map(String::from)
        .into();
        if let Some(session_id) = resume {
            args.extend(["--resume".into(), session_id.into()]);
        }
        if let Some(model) = &self.model {
            args.extend(["--model".into(), model.clone()]);
        }
        if !self.allowed_tools.is_empty() {
            args.extend(["--allowedTools".into(), self.allowed_tools.join(",")]);
        }
        args.extend(["--permission-mode".into(), self.permission_mode.clone()]);
        if let Some(max_turns) = self.max_turns {
            args.extend(["--max-turns".into(), max_turns.to_string()]);
        }
        args
    }
}

/// Runs the CLI once and reads it to the end.
///
/// Returns `Err` only when the CLI could not be started; every other failure
/// is in [`RunOutcome::failure`], beside whatever figures the run produced.
/// Cancelling `cancel` interrupts the run as the timeout does: SIGINT to the
/// process group, SIGKILL after a grace period.
pub async fn run(
    settings: &AgentSettings,
    prompt: &Prompt,
    cancel: &CancellationToken,
    observers: &mut [&mut dyn RunObserver],
) -> Result<RunOutcome, RunError> {
    let invocation = Invocation {
        program: settings.program.clone(),
        args: settings.args(prompt.resume.as_deref()),
        cwd: prompt.cwd.clone(),
        stdin: prompt.text.clone(),
        env_remove: settings.env_remove.clone(),
    };
    let (mut process, stdout) = AgentProcess::spawn(invocation).map_err(|error| match error {
        SpawnError::NotFound { program } => RunError::NotFound { program },
        SpawnError::Io { program, source } => RunError::Spawn {
            program,
            reason: source.to_string(),
        },
    })?;

    let mut reader = BufReader::with_capacity(64 * 1024, stdout);
    let mut buffer = Vec::new();
    let mut transcript = Transcript::default();
    let deadline = Instant::now() + settings.timeout;
    let mut stop: Option<(RunError, Instant)> = None;
    let mut exited: Option<Instant> = None;
    let mut answered: Option<Instant> = None;
    let far_future = deadline + Duration::from_secs(86_400);

    loop {
        let kill_at = stop.as_ref().map_or(far_future, |(_, at)| *at);
        let drain_until = exited.unwrap_or(far_future);
        let linger_until = answered.unwrap_or(far_future);
        // Once the result is in, a stop or the timeout could only throw a
        // finished answer away; the linger limit ends the run instead.
        let stoppable = stop.is_none() && answered.is_none();
        tokio::select! {
            // `read_until` keeps partial input in `buffer` when another branch
            // wins, so the buffer is only cleared after a whole line.
            read = reader.read_until(b'\n', &mut buffer) => match read {
                Ok(0) => break,
                Ok(_) => {
                    transcript.take(&buffer, observers);
                    buffer.clear();
                    if answered.is_none() && transcript.result.is_some() {
                        answered = Some(Instant::now() + RESULT_LINGER);
                    }
                }
                Err(error) => {
                    warn!(%error, "could not read claude output");
                    break;
                }
            },
            _ = cancel.cancelled(), if stoppable => {
                info!("stopping claude");
                process.signal(Signal::SIGINT);
                stop = Some((RunError::Cancelled, Instant::now() + INTERRUPT_GRACE));
            }
            _ = sleep_until(deadline), if stoppable => {
                warn!(timeout_secs = settings.timeout.as_secs(), "claude timed out");
                process.signal(Signal::SIGINT);
                let error = RunError::TimedOut { after: settings.timeout };
                stop = Some((error, Instant::now() + INTERRUPT_GRACE));
            }
            _ = sleep_until(kill_at), if stop.is_some() => {
                warn!("claude ignored SIGINT, killing it");
                break;
            }
            _ = process.exited(), if exited.is_none() => {
                exited = Some(Instant::now() + EXIT_DRAIN);
            }
            _ = sleep_until(drain_until), if exited.is_some() => {
                debug!("claude exited but its output stayed open");
                break;
            }
            _ = sleep_until(linger_until), if answered.is_some() => {
                debug!("claude lingers after its result, ending the run");
                break;
            }
        }
    }
    if !buffer.is_empty() {
        transcript.take(&buffer, observers);
    }
    // Output ends a moment before the process does: let it exit by itself,
    // so that its own exit status, not our SIGKILL, is what gets judged.
    if exited.is_none() && stop.is_none() {
        let _ = tokio::time::timeout(EXIT_DRAIN, process.exited()).await;
    }

    let (exit_code, stderr_tail) = process.reap().await;
    let failure = match stop {
        Some((error, _)) => Some(error),
        None => transcript.verdict(prompt, exit_code, &stderr_tail),
    };
    info!(
        exit_code,
        ok = failure.is_none(),
        tools = transcript.tool_calls.len(),
        "claude finished"
    );
    Ok(RunOutcome {
        init: transcript.init,
        result: transcript.result,
        tool_calls: transcript.tool_calls,
        exit_code,
        stderr_tail,
        failure,
    })
}

/// What the reading loop keeps of the lines it passes on.
#[derive(Default)]
struct Transcript {
    init: Option<Init>,
    result: Option<RunResult>,
    tool_calls: Vec<String>,
    /// The text of the last synthetic error message, for error reports.
    last_error_text: Option<String>,
}

impl Transcript {
    /// Parses one raw line, keeps what the verdict needs, and shows it to
    /// the observers. Lines that do not parse are skipped.
    fn take(&mut self, raw: &[u8], observers: &mut [&mut dyn RunObserver]) {
        let text = String::from_utf8_lossy(raw);
        let text = text.trim();
        if text.is_empty() {
            return;
        }
        let line = match wire::parse(text) {
            Ok(line) => line,
            Err(error @ ParseError::NotJson(_)) => {
                warn!(%error, bytes = text.len(), "skipping a line that is not json");
                return;
            }
            Err(error @ ParseError::Shape(_)) => {
                warn!(%error, bytes = text.len(), "skipping a line of unexpected shape");
                return;
            }
        };

        match &line {
            Line::System(System::Init(init)) => self.init = Some(init.clone()),
            Line::Assistant(assistant) => {
                for block in &assistant.message.content {
                    match block {
                        ContentBlock::ToolUse { name, .. } => self.tool_calls.push(name.clone()),
                        ContentBlock::Text { text } if assistant.error.is_some() => {
                            self.last_error_text = Some(text.clone());
                        }
                        _ => {}
                    }
                }
            }
            Line::Result(result) => self.result = Some(result.clone()),
            Line::Unknown => debug!(bytes = text.len(), "skipping an unknown line type"),
            _ => {}
        }
        for observer in observers.iter_mut() {
            observer.observe(&line);
        }
    }

    /// Decides whether a run that ended by itself answered. `code` is `None`
    /// when a signal ended the process, which after a result line is this
    /// bot ending a CLI that lingered: the answer stands.
    fn verdict(&self, prompt: &Prompt, code: Option<i32>, stderr: &str) -> Option<RunError> {
        let Some(result) = &self.result else {
            return Some(RunError::NoResult {
                code,
                stderr_tail: stderr.to_owned(),
            });
        };

        let resume_failed = result.errors.iter().any(|e| e.contains(NO_CONVERSATION))
            || stderr.contains(NO_CONVERSATION);
        if let (true, Some(session_id)) = (resume_failed, &prompt.resume) {
            let session_id = session_id.clone();
            return Some(RunError::ResumeNotFound { session_id });
        }

        if result.is_error {
            let message = self.error_message(result);
            return Some(RunError::Reported { message });
        }
        if code.is_some_and(|code| code != 0) {
            return Some(RunError::Exited {
                code,
                stderr_tail: stderr.to_owned(),
            });
        }
        None
    }

    /// The CLI's own words for an error result.
    fn error_message(&self, result: &RunResult) -> String {
        if result.subtype == "error_max_turns" {
            return format!("the agent used all {} turns it may take", result.num_turns);
        }
        let text = result.result.clone().filter(|text| !text.is_empty());
        let errors = Some(result.errors.join("; ")).filter(|text| !text.is_empty());
        text.or(errors)
            .or_else(|| self.last_error_text.clone())
            .unwrap_or_else(|| result.subtype.replace('_', " "))
    }
}
