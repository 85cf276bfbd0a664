//! The bot's own words: every error reply, note and summary a user can get,
//! in one place so they stay short and consistent. All of it is Telegram
//! HTML; anything that came from outside is escaped here.

use std::time::Duration;

use teloxide::types::UserId;

use super::html::escape;
use crate::agent::run::{RunError, RunOutcome};
use crate::agent::wire::PermissionDenial;
use crate::queue::{LiveRun, StopCause};
use crate::store::RunFigures;

/// How much of the CLI's own error text a reply quotes, in characters.
const QUOTED_ERROR_CHARS: usize = 400;
/// How much of what a user typed a reply repeats, in characters.
const SHOWN_INPUT_CHARS: usize = 120;

/// The one reply a stranger gets: their id, so the operator can add it.
pub fn refusal(user_id: UserId) -> String {
    format!(
        "⛔ This bot only works for the people its operator allowed.\n\
         Your Telegram user id is <code>{user_id}</code>: the operator can add it \
         to ALLOWED_USER_IDS."
    )
}

/// What `/help` and `/start` say.
pub fn help(directory: &str) -> String {
    format!(
        "🤖 I pass your messages to Claude Code, which works in this chat's directory \
         and can read, write and run things there. Any text that is not a command is \
         a prompt; the conversation continues until /new.\n\n\
         /new: forget the conversation (alias /reset)\n\
         /cd &lt;path&gt;: change directory, starts a new conversation (alias /setcwd)\n\
         /pwd: show the directory (alias /getcwd)\n\
         /searchcwd &lt;name&gt;: find directories in the workspace\n\
         /status: the current run, the queue, the last run's figures\n\
         /stop: stop the running agent; /stop all also clears the queue\n\n\
         📁 <code>{}</code>",
        escape(directory)
    )
}

/// The reply to a message that has no text (a photo, a sticker).
pub fn text_only() -> String {
    "I can only read text messages. Describe what you need in words.".to_owned()
}

pub fn unknown_command(name: &str) -> String {
    format!("Unknown command /{}. See /help.", shown(name))
}

/// The reply to a `/cd` that was refused; `why` repeats the user's path.
pub fn cd_refused(why: &str) -> String {
    format!("❌ {}. Nothing changed.", shown(why))
}

/// Something the user typed, cut to a readable length and escaped: a reply
/// that repeats a 4000-character argument would be too long to send.
fn shown(input: &str) -> String {
    let mut cut: String = input.chars().take(SHOWN_INPUT_CHARS).collect();
    if cut.len() < input.len() {
        cut.push('…');
    }
    escape(&cut)
}

/// The reply to `/new`.
pub fn new_conversation(directory: &str) -> String {
    format!(
        "🆕 New conversation. Still in <code>{}</code>.",
        escape(directory)
    )
}

/// The reply to a `/cd` that worked.
pub fn moved(directory: &str) -> String {
    format!(
        "📁 Now in <code>{}</code>. A new conversation begins here: Claude can only \
         continue a conversation in the directory where it started.",
        escape(directory)
    )
}

/// The reply to `/searchcwd`.
pub fn search_results(needle: &str, found: &[String], limit: usize) -> String {
    if found.is_empty() {
        return format!("No directory in the workspace matches “{}”.", shown(needle));
    }
    let mut text = format!("Directories matching “{}”:", shown(needle));
    for directory in found {
        let directory = escape(directory);
        text.push_str(&format!("\n📁 {directory}\n<code>/cd {directory}</code>"));
    }
    if found.len() >= limit {
        text.push_str(&format!("\n(first {limit} shown; be more specific)"));
    }
    text
}

/// The acknowledgement of a prompt that waits behind a running one.
pub fn queued(position: usize) -> String {
    format!("🕐 Queued (position {position}). It runs when the current one is done.")
}

/// The refusal when a chat's queue is full.
pub fn queue_full(limit: usize) -> String {
    format!(
        "✋ {limit} messages are already waiting. This one was not queued: send it again \
         later, or /stop all to clear the queue."
    )
}

/// The reply to a prompt that arrives while the bot shuts down.
pub fn closed() -> String {
    "🔌 The bot is restarting; your message is saved and runs when it is back.".to_owned()
}

/// The reply to `/stop`.
pub fn stopped(running: bool, cleared: usize, waiting: usize) -> String {
    let mut text = match running {
        true => "⏹ Stopping the agent.".to_owned(),
        false => "Nothing is running.".to_owned(),
    };
    if cleared > 0 {
        text.push_str(&format!(" Cleared {cleared} queued message(s)."));
    }
    if waiting > 0 {
        text.push_str(&format!(
            " {waiting} queued message(s) will still run; /stop all clears them."
        ));
    }
    text
}

/// What `/status` shows.
pub struct StatusView<'a> {
    pub directory: &'a str,
    pub session: Option<&'a str>,
    pub model: &'a str,
    pub live: Option<&'a LiveRun>,
    pub waiting: usize,
    pub last_run: Option<&'a RunFigures>,
}

/// The reply to `/status`.
pub fn status(view: StatusView<'_>) -> String {
    let mut text = format!("📁 <code>{}</code>", escape(view.directory));
    match view.session {
        Some(id) => text.push_str(&format!("\n💬 Conversation <code>{}</code>", escape(id))),
        None => text.push_str("\n💬 No conversation yet"),
    }
    text.push_str(&format!("\n🧠 Model: {}", escape(view.model)));

    if let Some(live) = view.live {
        let tools = live.progress.lock().expect("progress lock").tool_names();
        text.push_str(&format!("\n⏳ Running for {}", duration(live.elapsed())));
        match tools.is_empty() {
            true => text.push_str(", no tools used yet"),
            false => text.push_str(&format!(", tools so far: {}", escape(&tools))),
        }
    }
    if view.waiting > 0 {
        text.push_str(&format!("\n🕐 {} message(s) waiting", view.waiting));
    }
    if let Some(run) = view.last_run {
        let input = run.input_tokens + run.cache_read_tokens + run.cache_creation_tokens;
        text.push_str(&format!(
            "\n📊 Last run: {} turn(s), {} input / {} output tokens, ${:.4}, {}",
            run.num_turns,
            input,
            run.output_tokens,
            run.cost_usd,
            duration(Duration::from_millis(run.duration_ms))
        ));
    }
    text
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
            format!(
                "⚠️ Claude reported an error:\n{}\n{NEW_HINT}",
                quote(message)
            )
        }
        RunError::Exited { code, stderr_tail } => format!(
            "⚠️ Claude exited with status {}.\n{}\n{NEW_HINT}",
            exit_status(*code),
            quote_or(stderr_tail, "(it printed nothing on stderr)")
        ),
        RunError::NoResult { code, stderr_tail } => format!(
            "⚠️ Claude stopped without an answer (status {}).\n{}\n{NEW_HINT}",
            exit_status(*code),
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
            _ => "⏹ Stopped. The conversation is kept: your next message continues it.".to_owned(),
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

/// The reply to a prompt a restart interrupted while it ran.
pub fn interrupted_by_restart() -> String {
    "🔌 The bot restarted while it worked on your last message, so that run was lost. \
     Please send it again."
        .to_owned()
}

/// The reply when the bot itself failed while handling a prompt.
pub fn internal_error() -> String {
    "⚠️ Something went wrong inside the bot while handling your message. \
     The operator can find the details in the log. Please try again."
        .to_owned()
}

/// The reply when the chat's directory no longer exists or left the workspace.
pub fn directory_gone(shown: &str) -> String {
    format!(
        "⚠️ This chat's directory <code>{}</code> no longer exists (or is outside the \
         workspace now). Use /cd to pick another one.",
        escape(shown)
    )
}

/// The plain-text reply when an answer could not be delivered.
pub fn undeliverable(reason: &str) -> String {
    let reason: String = reason.chars().take(QUOTED_ERROR_CHARS).collect();
    format!("⚠️ The answer is ready but Telegram refused it: {reason}")
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
        if failed {
            "⚠️ Ended after"
        } else {
            "✅ Done in"
        },
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

fn exit_status(code: Option<i32>) -> String {
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
