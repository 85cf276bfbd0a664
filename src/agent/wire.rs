//! The Claude Code CLI's `stream-json` output, one type per line shape.
//!
//! Only the fields the bot reads are declared; serde skips the rest, and line
//! types or subtypes this version does not know parse as `Unknown`/`Other`
//! so a newer CLI never breaks a run. The reading loop lives in
//! [`super::run`]; nothing here does I/O.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// One line of `--output-format stream-json --verbose` output.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Line {
    System(System),
    Assistant(Assistant),
    User(User),
    StreamEvent(StreamEvent),
    Result(RunResult),
    #[serde(other)]
    Unknown,
}

/// How a line of output failed to become a [`Line`].
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("line is not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    #[error("line does not have the expected shape: {0}")]
    Shape(#[source] serde_json::Error),
}

/// Parses one output line (without its newline).
pub fn parse(line: &str) -> Result<Line, ParseError> {
    serde_json::from_str(line).map_err(|error| {
        if error.is_data() {
            ParseError::Shape(error)
        } else {
            ParseError::NotJson(error)
        }
    })
}

/// `type: system` lines, by `subtype`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "subtype", rename_all = "snake_case")]
pub enum System {
    Init(Init),
    ApiRetry(ApiRetry),
    #[serde(other)]
    Other,
}

/// The first line of a run: the session and what the agent may use.
#[derive(Debug, Clone, Deserialize)]
pub struct Init {
    pub session_id: String,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub cwd: String,
    #[serde(default)]
    pub tools: Vec<String>,
    #[serde(default, rename = "permissionMode")]
    pub permission_mode: String,
}

/// The CLI announces each retry of a failed API call.
#[derive(Debug, Clone, Deserialize)]
pub struct ApiRetry {
    #[serde(default)]
    pub attempt: u32,
    #[serde(default)]
    pub max_retries: u32,
    #[serde(default)]
    pub error_status: Option<u16>,
    #[serde(default)]
    pub error: Option<String>,
}

/// A complete content block of a model response. One model call can yield
/// several of these lines, one per block, all with the same `message.id`.
#[derive(Debug, Clone, Deserialize)]
pub struct Assistant {
    pub message: AssistantMessage,
    #[serde(default)]
    pub parent_tool_use_id: Option<String>,
    /// Set on the synthetic message the CLI writes when the API failed.
    #[serde(default)]
    pub error: Option<String>,
}

/// The model's message as the CLI echoes it.
#[derive(Debug, Clone, Deserialize)]
pub struct AssistantMessage {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub content: Vec<ContentBlock>,
}

/// What the CLI sends back to the model: tool results, mostly.
#[derive(Debug, Clone, Deserialize)]
pub struct User {
    pub message: UserMessage,
    #[serde(default)]
    pub parent_tool_use_id: Option<String>,
}

/// A user turn's content, which the wire gives as a string or as blocks.
#[derive(Debug, Clone, Deserialize)]
pub struct UserMessage {
    #[serde(default)]
    pub content: Content,
}

/// Message content in either of its wire forms.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Blocks(Vec<ContentBlock>),
}

impl Default for Content {
    fn default() -> Self {
        Content::Blocks(Vec::new())
    }
}

impl Content {
    /// The blocks of this content; plain text has none.
    pub fn blocks(&self) -> &[ContentBlock] {
        match self {
            Content::Text(_) => &[],
            Content::Blocks(blocks) => blocks,
        }
    }

    /// The text of this content, blocks joined by newlines.
    pub fn text(&self) -> String {
        match self {
            Content::Text(text) => text.clone(),
            Content::Blocks(blocks) => blocks
                .iter()
                .filter_map(|block| match block {
                    ContentBlock::Text { text } => Some(text.as_str()),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }
}

/// A block of message content, by its `type`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentBlock {
    Text {
        #[serde(default)]
        text: String,
    },
    Thinking {
        #[serde(default)]
        thinking: String,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
    },
    ToolResult {
        tool_use_id: String,
        #[serde(default)]
        content: Content,
        /// Absent on success in some tools' results.
        #[serde(default)]
        is_error: Option<bool>,
    },
    #[serde(other)]
    Other,
}

/// A raw Messages API streaming event, passed through by
/// `--include-partial-messages`.
#[derive(Debug, Clone, Deserialize)]
pub struct StreamEvent {
    pub event: ApiEvent,
    #[serde(default)]
    pub parent_tool_use_id: Option<String>,
}

/// The Messages API's server-sent events, by `type`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ApiEvent {
    /// Opens one model call; carries its input and cache token counts.
    MessageStart {
        message: StartedMessage,
    },
    ContentBlockStart {
        #[serde(default)]
        index: usize,
    },
    ContentBlockDelta {
        #[serde(default)]
        index: usize,
        delta: Delta,
    },
    ContentBlockStop {
        #[serde(default)]
        index: usize,
    },
    /// Closes a call's content; carries its real output token count.
    MessageDelta {
        #[serde(default)]
        delta: MessageDeltaBody,
        #[serde(default)]
        usage: Usage,
    },
    MessageStop,
    #[serde(other)]
    Other,
}

/// The message announced by `message_start`.
#[derive(Debug, Clone, Deserialize)]
pub struct StartedMessage {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub usage: Usage,
}

/// A piece of streamed content.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Delta {
    TextDelta {
        #[serde(default)]
        text: String,
    },
    #[serde(other)]
    Other,
}

/// The body of `message_delta`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct MessageDeltaBody {
    #[serde(default)]
    pub stop_reason: Option<String>,
}

/// Token counts as the API reports them. `input_tokens` excludes cache reads
/// and cache writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    #[serde(default)]
    pub cache_read_input_tokens: u64,
    #[serde(default)]
    pub cache_creation_input_tokens: u64,
}

impl Usage {
    /// All input tokens, cached or not, as Sentry counts them.
    pub fn all_input_tokens(&self) -> u64 {
        self.input_tokens + self.cache_read_input_tokens + self.cache_creation_input_tokens
    }
}

/// The last line of a run: the answer and the CLI's own figures.
#[derive(Debug, Clone, Deserialize)]
pub struct RunResult {
    #[serde(default)]
    pub subtype: String,
    #[serde(default)]
    pub is_error: bool,
    /// The final text; absent on the `error_*` subtypes.
    #[serde(default)]
    pub result: Option<String>,
    #[serde(default)]
    pub session_id: String,
    #[serde(default)]
    pub num_turns: u32,
    #[serde(default)]
    pub duration_ms: u64,
    #[serde(default)]
    pub duration_api_ms: u64,
    #[serde(default)]
    pub total_cost_usd: f64,
    #[serde(default)]
    pub usage: Usage,
    #[serde(default, rename = "modelUsage")]
    pub model_usage: BTreeMap<String, Value>,
    #[serde(default)]
    pub permission_denials: Vec<PermissionDenial>,
    #[serde(default)]
    pub api_error_status: Option<u16>,
    #[serde(default)]
    pub terminal_reason: Option<String>,
    /// Error texts of `error_during_execution`, e.g. a failed `--resume`.
    #[serde(default)]
    pub errors: Vec<String>,
}

/// A tool call the permission mode refused.
#[derive(Debug, Clone, Deserialize)]
pub struct PermissionDenial {
    pub tool_name: String,
    #[serde(default)]
    pub tool_use_id: String,
    #[serde(default)]
    pub tool_input: Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture_lines(name: &str) -> Vec<Line> {
        let path = format!("{}/tests/fixtures/{name}.jsonl", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).expect("fixture exists");
        text.lines()
            .map(|line| parse(line).unwrap_or_else(|e| panic!("{name}: {e}")))
            .collect()
    }

    #[test]
    fn every_recorded_line_parses() {
        let dir = format!("{}/tests/fixtures", env!("CARGO_MANIFEST_DIR"));
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|ext| ext == "jsonl") {
                let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
                fixture_lines(&name);
            }
        }
    }

    #[test]
    fn reads_the_session_and_model_from_init() {
        let lines = fixture_lines("a_text");
        let Line::System(System::Init(init)) = &lines[0] else {
            panic!("first line is not init: {:?}", lines[0]);
        };
        assert_eq!(init.session_id, "0755fcc5-7c4f-4edf-b130-f38176bf0389");
        assert_eq!(init.model, "claude-opus-4-8[1m]");
        assert!(init.tools.iter().any(|tool| tool == "Bash"));
    }

    #[test]
    fn reads_tool_calls_and_their_results() {
        let lines = fixture_lines("k3_parallel_tools");
        let uses: Vec<_> = lines
            .iter()
            .filter_map(|line| match line {
                Line::Assistant(a) => Some(a.message.content.clone()),
                _ => None,
            })
            .flatten()
            .filter(|block| matches!(block, ContentBlock::ToolUse { .. }))
            .collect();
        assert_eq!(uses.len(), 2);

        let errors: Vec<_> = lines
            .iter()
            .filter_map(|line| match line {
                Line::User(u) => Some(u.message.content.blocks().to_vec()),
                _ => None,
            })
            .flatten()
            .filter_map(|block| match block {
                ContentBlock::ToolResult { is_error, .. } => Some(is_error),
                _ => None,
            })
            .collect();
        assert_eq!(errors, vec![Some(false), Some(true)]);
    }

    #[test]
    fn reads_the_figures_of_the_result() {
        let lines = fixture_lines("b_bash");
        let Some(Line::Result(result)) = lines.last() else {
            panic!("last line is not a result");
        };
        assert!(!result.is_error);
        assert_eq!(result.num_turns, 2);
        assert_eq!(result.total_cost_usd, 0.03855);
        assert_eq!(result.usage.input_tokens, 350);
        assert_eq!(result.usage.cache_read_input_tokens, 5000);
        assert_eq!(result.usage.all_input_tokens(), 350 + 5000 + 5200);
        assert_eq!(result.result.as_deref(), Some("The command printed: hi"));
    }

    #[test]
    fn reads_real_output_tokens_from_message_delta() {
        let deltas: Vec<u64> = fixture_lines("g_partial_messages")
            .iter()
            .filter_map(|line| match line {
                Line::StreamEvent(StreamEvent {
                    event: ApiEvent::MessageDelta { usage, .. },
                    ..
                }) => Some(usage.output_tokens),
                _ => None,
            })
            .collect();
        assert_eq!(deltas, vec![60, 12]);
    }

    #[test]
    fn reads_denials_and_resume_errors() {
        let denied = fixture_lines("d_denied_default_mode");
        let Some(Line::Result(result)) = denied.last() else {
            panic!("no result");
        };
        assert_eq!(result.permission_denials[0].tool_name, "Bash");

        let resume = fixture_lines("f3_resume_other_cwd");
        let Some(Line::Result(result)) = resume.last() else {
            panic!("no result");
        };
        assert!(result.errors[0].starts_with("No conversation found"));
        assert_eq!(result.result, None);
    }

    #[test]
    fn skips_unknown_types_and_fields() {
        let line = parse(r#"{"type":"rate_limit_event","whatever":1}"#).unwrap();
        assert!(matches!(line, Line::Unknown));
        let line = parse(r#"{"type":"system","subtype":"brand_new","x":[]}"#).unwrap();
        assert!(matches!(line, Line::System(System::Other)));
    }

    #[test]
    fn tells_garbage_from_a_wrong_shape() {
        assert!(matches!(parse("not json"), Err(ParseError::NotJson(_))));
        let wrong = parse(r#"{"type":"assistant","message":42}"#);
        assert!(matches!(wrong, Err(ParseError::Shape(_))));
    }
}
