//! Live progress of a run: what the agent did so far (kept by an observer of
//! its lines), the status message that shows it (edited at a bounded rate,
//! best effort), and the "typing…" indicator. None of it may delay or lose
//! the answer, which is delivered elsewhere.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use teloxide::types::MessageId;
use tokio::time::sleep;
use tokio_util::sync::CancellationToken;

use super::delivery::{Effort, Outbox};
use super::html::escape;
use crate::agent::run::RunObserver;
use crate::agent::wire::{ContentBlock, Line, System};

/// How many tool lines the status message shows; older ones are counted.
const SHOWN_TOOLS: usize = 12;
/// How long one tool line's input summary may be, in characters.
const SUMMARY_CHARS: usize = 80;
/// How often the reporter looks whether a run got under way.
const STARTING_POLL: Duration = Duration::from_millis(100);
/// Telegram shows "typing…" for about five seconds.
const TYPING_EVERY: Duration = Duration::from_secs(4);

/// What a run has done so far, shared by its observer, its status message
/// and `/status`.
#[derive(Debug, Clone)]
pub struct Progress {
    pub started: Instant,
    /// One entry per tool call: its name and a one-line summary of its input.
    pub tools: Vec<(String, String)>,
    /// The CLI's current API retry, as (attempt, max).
    pub retry: Option<(u32, u32)>,
    /// The CLI has named its session (and the bot has saved it).
    pub under_way: bool,
}

impl Progress {
    pub fn new() -> Self {
        Progress {
            started: Instant::now(),
            tools: Vec::new(),
            retry: None,
            under_way: false,
        }
    }

    /// The status message's HTML.
    pub fn render(&self) -> String {
        let elapsed = self.started.elapsed().as_secs();
        let mut text = format!("⏳ Working… {elapsed}s");
        let hidden = self.tools.len().saturating_sub(SHOWN_TOOLS);
        if hidden > 0 {
            text.push_str(&format!("\n… {hidden} earlier tool calls"));
        }
        for (name, summary) in &self.tools[hidden..] {
            text.push_str(&format!("\n🔧 {}", escape(name)));
            if !summary.is_empty() {
                text.push_str(&format!(": <code>{}</code>", escape(summary)));
            }
        }
        if let Some((attempt, max)) = self.retry {
            text.push_str(&format!("\n🔁 API error, retrying ({attempt}/{max})"));
        }
        text
    }

    /// "Bash ×2, Read": the tools used, in first-use order.
    pub fn tool_names(&self) -> String {
        tool_counts(self.tools.iter().map(|(name, _)| name.as_str()))
    }
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

/// Counts tool names in first-use order: "Bash ×2, Read".
pub fn tool_counts<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for name in names {
        match counts.iter_mut().find(|(seen, _)| *seen == name) {
            Some((_, count)) => *count += 1,
            None => counts.push((name, 1)),
        }
    }
    let parts: Vec<String> = counts
        .into_iter()
        .map(|(name, count)| match count {
            1 => name.to_owned(),
            _ => format!("{name} ×{count}"),
        })
        .collect();
    parts.join(", ")
}

/// Keeps a run's [`Progress`] up to date as its lines arrive.
pub struct ProgressObserver {
    pub progress: Arc<Mutex<Progress>>,
}

impl RunObserver for ProgressObserver {
    fn observe(&mut self, line: &Line) {
        let mut progress = self.progress.lock().expect("progress lock");
        match line {
            Line::System(System::Init(_)) => progress.under_way = true,
            Line::System(System::ApiRetry(retry)) => {
                progress.retry = Some((retry.attempt, retry.max_retries));
            }
            Line::Assistant(assistant) => {
                progress.retry = None;
                for block in &assistant.message.content {
                    if let ContentBlock::ToolUse { name, input, .. } = block {
                        progress
                            .tools
                            .push((name.clone(), input_summary(name, input)));
                    }
                }
            }
            _ => {}
        }
    }
}

/// One line saying what a tool call works on: the command for Bash, the
/// path for file tools, the pattern for searches.
pub fn input_summary(tool: &str, input: &Value) -> String {
    let field = |name: &str| input.get(name).and_then(Value::as_str);
    let text = match tool {
        "Bash" => field("command"),
        "Read" | "Write" | "Edit" | "MultiEdit" => field("file_path"),
        "NotebookEdit" => field("notebook_path"),
        "Grep" | "Glob" => field("pattern"),
        "WebFetch" => field("url"),
        "WebSearch" => field("query"),
        "Task" | "Agent" => field("description"),
        _ => None,
    };
    let text = text.or_else(|| {
        let object = input.as_object()?;
        object.values().find_map(Value::as_str)
    });
    one_line(text.unwrap_or(""), SUMMARY_CHARS)
}

/// The first line of `text`, cut to `max` characters with an ellipsis.
fn one_line(text: &str, max: usize) -> String {
    let first = text.lines().next().unwrap_or("").trim();
    let mut line: String = first.chars().take(max).collect();
    if line.len() < first.len() || text.trim().lines().nth(1).is_some() {
        line.push('…');
    }
    line
}

/// Posts the status message once the run is under way and edits it at most
/// once per `interval`, only when its text changed. Returns the message, if
/// one could be posted, when `done` is cancelled.
///
/// "Under way" means the CLI named its session, which the session observer
/// saved before this sees it: no Telegram message of a run goes out before
/// its conversation is safe.
pub async fn report(
    outbox: Outbox,
    progress: Arc<Mutex<Progress>>,
    interval: Duration,
    done: CancellationToken,
) -> Option<MessageId> {
    let mut message: Option<MessageId> = None;
    let mut shown = String::new();
    let mut wait = Duration::ZERO;
    loop {
        tokio::select! {
            _ = done.cancelled() => return message,
            _ = sleep(wait) => {}
        }
        let (under_way, text) = {
            let progress = progress.lock().expect("progress lock");
            (progress.under_way, progress.render())
        };
        if !under_way {
            wait = STARTING_POLL;
            continue;
        }
        wait = interval;
        if text == shown {
            continue;
        }

        let effort = match message {
            None => match outbox.post_html(&text).await {
                Ok(id) => {
                    message = Some(id);
                    Effort::Done
                }
                Err(effort) => effort,
            },
            Some(id) => outbox.edit_html(id, &text).await,
        };
        match effort {
            Effort::Done => shown = text,
            Effort::Throttled(retry_after) => wait = retry_after.max(interval),
            // Deleted by the user: they don't want it, so it stays gone.
            Effort::Gone => {
                done.cancelled().await;
                return None;
            }
            Effort::Failed => {}
        }
    }
}

/// Shows "typing…" until `done` is cancelled.
pub async fn keep_typing(outbox: Outbox, done: CancellationToken) {
    loop {
        let wait = match outbox.typing().await {
            Effort::Throttled(retry_after) => retry_after.max(TYPING_EVERY),
            _ => TYPING_EVERY,
        };
        tokio::select! {
            _ = done.cancelled() => return,
            _ = sleep(wait) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn summarises_tool_inputs_in_one_line() {
        let bash = json!({"command": "cargo test\ncargo build", "description": "x"});
        assert_eq!(input_summary("Bash", &bash), "cargo test…");
        let read = json!({"file_path": "/w/src/main.rs"});
        assert_eq!(input_summary("Read", &read), "/w/src/main.rs");
        let grep = json!({"pattern": "fn main", "path": "src"});
        assert_eq!(input_summary("Grep", &grep), "fn main");
        let other = json!({"n": 1, "name": "thing"});
        assert_eq!(input_summary("Mystery", &other), "thing");
        let long = json!({"command": "x".repeat(500)});
        assert_eq!(
            input_summary("Bash", &long).chars().count(),
            SUMMARY_CHARS + 1
        );
    }

    #[test]
    fn renders_tools_escaped_and_counts_hidden_ones() {
        let mut progress = Progress::new();
        for i in 0..20 {
            progress.tools.push(("Bash".into(), format!("echo <{i}>")));
        }
        progress.retry = Some((2, 10));
        let text = progress.render();
        assert!(text.contains("… 8 earlier tool calls"));
        assert!(text.contains("<code>echo &lt;19&gt;</code>"));
        assert!(!text.contains("&lt;7&gt;"));
        assert!(text.ends_with("retrying (2/10)"));
    }

    #[test]
    fn counts_tools_in_first_use_order() {
        let names = ["Bash", "Read", "Bash", "Write", "Bash"];
        assert_eq!(tool_counts(names.into_iter()), "Bash ×3, Read, Write");
    }
}
