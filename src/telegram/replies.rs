//! The bot's own words: every error reply, note and summary a user can get,
//! in one place so they stay short and consistent. All of it is Telegram
//! HTML; anything that came from outside is escaped here.

use std::time::Duration;

use teloxide::types::UserId;

use super::html::escape;
use crate::agent::run::{RunError, RunOutcome};
use crate::agent::wire::PermissionDenial;
use crate::queue::StopCause;

/// How much of the CLI's own error text a reply quotes, in characters.
const QUOTED_ERROR_CHARS: usize = 400;

/// The one reply a stranger gets: their id, so the operator can add it.
pub fn refusal(user_id: UserId) -> String {
    format!(
        "⛔ This bot only works for the people its operator allowed.\n\
         Your Telegram user id is <code>{user_id}</code>: the operator can add it \
         to ALLOWED_USER_IDS."
    )
}

/// The error reply for a run that gave no answer. `program` is CLAUDE_BIN.
pub fn failure(error: &RunError, stop: Option<StopCause>) -> String {
    const NEW_HINT: &str = "Send it again, or /new to start a fresh conversation.";
    match error {
        RunError::NotFound { program } => format!(
            "⚠️ The Claude CLI was not found at <code>{}</code>. The operator must install \
             it there or point CLAUDE_BIN at it.",
            escape(&program.display().to_string())
        ),
        RunError::Spawn { program, reason } => format!(
            "⚠️ Could not start the Claude CLI at <code>{}</code>: {}",
            escape(&program.display().to_string()),
            quote(reason)
        ),
        RunError::ResumeNotFound { .. } => {
            format!("⚠️ The conversation could not be resumed. {NEW_HINT}")
        }
        RunError::Reported { message } => {
            format!("⚠️ Claude reported an error:\n{}\n{NEW_HINT}", quote(message))
        }
        RunError::Exited { code, stderr_tail } => format!(
            "⚠️ Claude exited with status {}.\n{}\n{NEW_HINT}",
            status(*code),
            quote_or(stderr_tail, "(it printed nothing on stderr)")
        ),
        RunError::NoResult { code, stderr_tail } => format!(
            "⚠️ Claude stopped without an answer (status {}).\n{}\n{NEW_HINT}",
            status(*code),
            quote_or(stderr_tail, "(it printed nothing on stderr)")
        ),
        RunError::TimedOut { after } => format!(
            "⏱ The agent ran longer than {} and was stopped. The conversation is kept: \
             ask for a smaller step, or /new.",
            duration(*after)
        ),
        RunError::Cancelled => match stop {
            Some(StopCause::Shutdown) => "🔌 The bot is restarting and interrupted this run. \
                 Please send your message again in a moment."
                .to_owned(),
            _ => "⏹ Stopped. The conversation is kept: your next message continues it."
                .to_owned(),
        },
    }
}

/// The note that tells which tools the permission mode refused.
pub fn denials(denials: &[PermissionDenial]) -> Option<String> {
    if denials.is_empty() {
        return None;
    }
    let mut names: Vec<&str> = denials.iter().map(|d| d.tool_name.as_str()).collect();
    names.dedup();
    Some(format!(
        "🚫 Not permitted: {}. The operator can allow tools with CLAUDE_ALLOWED_TOOLS \
         (or CLAUDE_PERMISSION_MODE).",
        escape(&names.join(", "))
    ))
}

/// The note after a `--resume` that found no conversation.
pub fn new_conversation_began() -> String {
    "ℹ️ The previous conversation could not be resumed, so a new one began.".to_owned()
}

/// The line naming the tools an answer used.
pub fn tools_line(tools: &str) -> Option<String> {
    (!tools.is_empty()).then(|| format!("🔧 {}", escape(tools)))
}

/// What the status message says once the run is over.
pub fn status_summary(outcome: Option<&RunOutcome>, elapsed: Duration, tools: &str) -> String {
    let failed = outcome.is_none_or(|o| o.failure.is_some());
    let mut parts = vec![format!(
        "{} {}",
        if failed { "⚠️ Ended after" } else { "✅ Done in" },
        duration(elapsed)
    )];
    if !tools.is_empty() {
        parts.push(escape(tools));
    }
    if let Some(result) = outcome.and_then(|o| o.result.as_ref()) {
        parts.push(format!("${:.4}", result.total_cost_usd));
    }
    parts.join(" · ")
}

/// "2m 5s", "48s".
pub fn duration(elapsed: Duration) -> String {
    let seconds = elapsed.as_secs();
    match seconds {
        0..60 => format!("{seconds}s"),
        _ => format!("{}m {}s", seconds / 60, seconds % 60),
    }
}

fn status(code: Option<i32>) -> String {
    code.map_or_else(|| "killed by a signal".to_owned(), |code| code.to_string())
}

fn quote_or(text: &str, empty: &str) -> String {
    match text.trim() {
        "" => empty.to_owned(),
        text => quote(text),
    }
}

/// An outside error text, cut and escaped, in a preformatted block.
fn quote(text: &str) -> String {
    let text = text.trim();
    let count = text.chars().count();
    let mut cut: String = match count > QUOTED_ERROR_CHARS {
        // The end of an error text says the most (stderr ends with the cause).
        true => text.chars().skip(count - QUOTED_ERROR_CHARS).collect(),
        false => text.to_owned(),
    };
    if count > QUOTED_ERROR_CHARS {
        cut.insert(0, '…');
    }
    format!("<pre>{}</pre>", escape(&cut))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_the_end_of_a_long_error_escaped() {
        let stderr = format!("{}<the cause>", "x".repeat(2000));
        let error = RunError::Exited {
            code: Some(1),
            stderr_tail: stderr,
        };
        let text = failure(&error, None);
        assert!(text.contains("status 1"));
        assert!(text.contains("&lt;the cause&gt;</pre>"));
        assert!(text.chars().count() < QUOTED_ERROR_CHARS + 200);
        assert!(text.contains("/new"));
    }

    #[test]
    fn tells_a_stop_from_a_restart() {
        let stopped = failure(&RunError::Cancelled, Some(StopCause::User));
        assert!(stopped.contains("Stopped"));
        let restart = failure(&RunError::Cancelled, Some(StopCause::Shutdown));
        assert!(restart.contains("send your message again"));
    }

    #[test]
    fn formats_durations() {
        assert_eq!(duration(Duration::from_secs(48)), "48s");
        assert_eq!(duration(Duration::from_secs(125)), "2m 5s");
    }
}
