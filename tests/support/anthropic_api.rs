//! `AnthropicApi`: a double of the Anthropic Messages API that the real
//! Claude Code CLI talks to.
//!
//! Each test queues [`Reply`] values; every `POST /v1/messages` takes the next
//! one and answers it as Server-Sent Events (or plain JSON when the request
//! says `stream: false`). Request bodies are recorded as JSON.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::anthropic_answer::Answer;
use super::{serve, wait_for};

/// Token counts a reply reports; `input_tokens` excludes cache reads and writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    pub input_tokens: u64,
    pub cache_read_input_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub output_tokens: u64,
}

impl Default for Usage {
    fn default() -> Self {
        Self {
            input_tokens: 10,
            cache_read_input_tokens: 0,
            cache_creation_input_tokens: 0,
            output_tokens: 5,
        }
    }
}

/// One content block of a reply.
#[derive(Clone, Debug)]
pub(super) enum Block {
    Text(String),
    ToolUse { name: String, input: Value },
}

/// An API error answer: HTTP status, error `type` and message.
#[derive(Clone, Debug)]
struct ApiError {
    status: u16,
    kind: String,
    message: String,
}

/// One scripted answer to one Messages API request.
#[derive(Clone, Debug)]
pub struct Reply {
    pub(super) blocks: Vec<Block>,
    error: Option<ApiError>,
    delay: Duration,
    pub(super) pause: Duration,
    pub(super) break_after: Option<usize>,
    pub(super) usage: Usage,
}

impl Reply {
    fn with_blocks(blocks: Vec<Block>) -> Self {
        Self {
            blocks,
            error: None,
            delay: Duration::ZERO,
            pause: Duration::ZERO,
            break_after: None,
            usage: Usage::default(),
        }
    }

    /// The model answers `text` and ends its turn.
    pub fn text(text: &str) -> Self {
        Self::with_blocks(vec![Block::Text(text.to_owned())])
    }

    /// The model calls tool `name` with `input` (stop reason `tool_use`).
    pub fn tool_use(name: &str, input: Value) -> Self {
        Self::with_blocks(Vec::new()).and_tool_use(name, input)
    }

    /// The API fails: e.g. `(400, "invalid_request_error", ..)` is not retried
    /// by the CLI, `(500, "api_error", ..)` is, for minutes by default.
    pub fn error(status: u16, kind: &str, message: &str) -> Self {
        let error = ApiError {
            status,
            kind: kind.to_owned(),
            message: message.to_owned(),
        };
        Self {
            error: Some(error),
            ..Self::with_blocks(Vec::new())
        }
    }

    /// Appends a text block, e.g. after another one or before a tool call.
    pub fn and_text(mut self, text: &str) -> Self {
        self.blocks.push(Block::Text(text.to_owned()));
        self
    }

    /// Appends another tool call to the same message.
    pub fn and_tool_use(mut self, name: &str, input: Value) -> Self {
        self.blocks.push(Block::ToolUse {
            name: name.to_owned(),
            input,
        });
        self
    }

    /// Waits this long before answering at all.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Waits this long between two stream events, for runs that take a while.
    pub fn pause_between_events(mut self, pause: Duration) -> Self {
        self.pause = pause;
        self
    }

    /// Cuts the connection after this many stream events.
    pub fn break_after_events(mut self, events: usize) -> Self {
        self.break_after = Some(events);
        self
    }

    pub fn usage(mut self, usage: Usage) -> Self {
        self.usage = usage;
        self
    }
}

/// Handle on a running Messages API double; clones share the same server.
#[derive(Clone)]
pub struct AnthropicApi {
    url: String,
    shared: Arc<Mutex<Recorded>>,
}

#[derive(Default)]
struct Recorded {
    replies: VecDeque<Reply>,
    requests: Vec<Value>,
    routes: Vec<String>,
}

impl AnthropicApi {
    /// Starts the double on a fresh loopback port.
    pub async fn start() -> Self {
        let shared = Arc::new(Mutex::new(Recorded::default()));
        let router = Router::new().fallback(handle).with_state(shared.clone());
        let url = serve(router).await;
        Self { url, shared }
    }

    fn lock(&self) -> MutexGuard<'_, Recorded> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The value for ANTHROPIC_BASE_URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Queues the answer to a later request; answers go out in queue order.
    pub fn enqueue(&self, reply: Reply) {
        self.lock().replies.push_back(reply);
    }

    /// Bodies of every `POST /v1/messages`, in arrival order.
    pub fn requests(&self) -> Vec<Value> {
        self.lock().requests.clone()
    }

    /// Every request as `METHOD /path?query`, the CLI's `HEAD /` included.
    pub fn routes(&self) -> Vec<String> {
        self.lock().routes.clone()
    }

    /// How many queued replies no request has taken yet.
    pub fn remaining(&self) -> usize {
        self.lock().replies.len()
    }

    /// Waits until at least `n` Messages requests arrived.
    pub async fn wait_for_requests(&self, n: usize, timeout: Duration) -> Vec<Value> {
        wait_for(&format!("{n} Messages API requests"), timeout, || {
            let requests = self.requests();
            if requests.len() >= n {
                return Ok(requests);
            }
            Err(format!(
                "{} requests; routes: {:?}",
                requests.len(),
                self.routes()
            ))
        })
        .await
    }

    /// The environment under which the real CLI talks to this double only.
    ///
    /// `home` becomes HOME and holds the config dir; PATH is passed on so the
    /// CLI's tools find a shell. Retries are off: a 500 fails at once.
    pub fn claude_env(&self, home: &Path) -> Vec<(String, String)> {
        let config = home.join(".claude");
        std::fs::create_dir_all(&config).expect("creating the CLI config dir");
        let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".to_owned());

        let mut env = vec![
            ("ANTHROPIC_BASE_URL", self.url.clone()),
            ("ANTHROPIC_API_KEY", "sk-ant-test-double".to_owned()),
            ("HOME", home.display().to_string()),
            ("CLAUDE_CONFIG_DIR", config.display().to_string()),
            ("PATH", path),
            ("CLAUDE_CODE_MAX_RETRIES", "0".to_owned()),
        ];
        for switch in [
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC",
            "DISABLE_TELEMETRY",
            "DISABLE_ERROR_REPORTING",
            "DISABLE_AUTOUPDATER",
            "DISABLE_BUG_COMMAND",
            "DISABLE_COST_WARNINGS",
            "DISABLE_GROWTHBOOK",
        ] {
            env.push((switch, "1".to_owned()));
        }
        env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }
}

/// The pinned Claude Code CLI installed by `npm ci`.
pub fn claude_cli() -> PathBuf {
    let cli = Path::new(env!("CARGO_MANIFEST_DIR")).join("node_modules/.bin/claude");
    assert!(cli.exists(), "{} is missing: run npm ci", cli.display());
    cli
}

/// The `tool_result` blocks in a recorded request's messages.
pub fn tool_results(request: &Value) -> Vec<Value> {
    let messages = request["messages"].as_array().into_iter().flatten();
    let blocks = messages.flat_map(|m| m["content"].as_array().into_iter().flatten());
    blocks
        .filter(|b| b["type"] == "tool_result")
        .cloned()
        .collect()
}

async fn handle(
    State(shared): State<Arc<Mutex<Recorded>>>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    let lock = || shared.lock().unwrap_or_else(PoisonError::into_inner);
    lock().routes.push(format!("{method} {uri}"));
    if method == Method::HEAD {
        return StatusCode::OK.into_response();
    }
    if method != Method::POST || uri.path() != "/v1/messages" {
        let message = format!("test double does not serve {method} {}", uri.path());
        return error_response(404, "not_found_error", &message, 0);
    }

    let request: Value = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => return error_response(400, "invalid_request_error", &e.to_string(), 0),
    };
    let (number, reply) = {
        let mut recorded = lock();
        recorded.requests.push(request.clone());
        (recorded.requests.len(), recorded.replies.pop_front())
    };
    let Some(reply) = reply else {
        let message = "test double has no scripted reply";
        return error_response(400, "invalid_request_error", message, number);
    };

    tokio::time::sleep(reply.delay).await;
    if let Some(e) = &reply.error {
        return error_response(e.status, &e.kind, &e.message, number);
    }
    let model = request["model"].as_str().unwrap_or("claude-test-double");
    let answer = Answer {
        number,
        model,
        reply: &reply,
    };
    if request["stream"] == json!(true) {
        return answer.stream();
    }
    let request_id = format!("req_double_{number}");
    let headers = [(header::HeaderName::from_static("request-id"), request_id)];
    (headers, axum::Json(answer.message())).into_response()
}

fn error_response(status: u16, kind: &str, message: &str, number: usize) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = json!({"type": "error", "error": {"type": kind, "message": message}});
    let request_id = format!("req_double_{number}");
    let headers = [(header::HeaderName::from_static("request-id"), request_id)];
    (status, headers, axum::Json(body)).into_response()
}
