//! How a scripted [`Reply`](super::anthropic_api::Reply) goes out: as one
//! Messages API message, or as the Server-Sent Events of a streamed one, in
//! the order and shape the real API uses.

use std::io;

use axum::body::Body;
use axum::http::header;
use axum::response::Response;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::anthropic_api::{Block, Reply};

/// One reply rendered for the request number `number`, echoing its model.
pub(super) struct Answer<'a> {
    pub(super) number: usize,
    pub(super) model: &'a str,
    pub(super) reply: &'a Reply,
}

impl Answer<'_> {
    fn stop_reason(&self) -> &'static str {
        let calls_tool = self
            .reply
            .blocks
            .iter()
            .any(|b| matches!(b, Block::ToolUse { .. }));
        if calls_tool { "tool_use" } else { "end_turn" }
    }

    fn block_json(&self, index: usize, block: &Block) -> Value {
        match block {
            Block::Text(text) => json!({"type": "text", "text": text}),
            Block::ToolUse { name, input } => json!({
                "type": "tool_use", "id": format!("toolu_double_{}_{index}", self.number),
                "name": name, "input": input,
            }),
        }
    }

    /// The whole message, as a non-streaming request gets it.
    pub(super) fn message(&self) -> Value {
        let blocks = self.reply.blocks.iter().enumerate();
        let content: Vec<Value> = blocks.map(|(i, b)| self.block_json(i, b)).collect();
        let mut message = self.message_head(self.reply.usage.output_tokens);
        message["content"] = json!(content);
        message["stop_reason"] = json!(self.stop_reason());
        message
    }

    fn message_head(&self, output_tokens: u64) -> Value {
        let usage = self.reply.usage;
        json!({
            "id": format!("msg_double_{}", self.number), "type": "message",
            "role": "assistant", "model": self.model, "content": [],
            "stop_reason": null, "stop_sequence": null,
            "usage": {
                "input_tokens": usage.input_tokens,
                "cache_creation_input_tokens": usage.cache_creation_input_tokens,
                "cache_read_input_tokens": usage.cache_read_input_tokens,
                "output_tokens": output_tokens,
            },
        })
    }

    /// The events of a streamed message, in the order the real API sends them.
    fn events(&self) -> Vec<Value> {
        let mut events = vec![
            json!({"type": "message_start", "message": self.message_head(1)}),
            json!({"type": "ping"}),
        ];
        for (index, block) in self.reply.blocks.iter().enumerate() {
            let (start, deltas) = match block {
                Block::Text(text) => {
                    let start = json!({"type": "text", "text": ""});
                    let deltas = chunks(text).map(|t| json!({"type": "text_delta", "text": t}));
                    (start, deltas.collect::<Vec<_>>())
                }
                Block::ToolUse { input, .. } => {
                    let mut start = self.block_json(index, block);
                    start["input"] = json!({});
                    let partial = input.to_string();
                    let deltas = chunks(&partial)
                        .map(|p| json!({"type": "input_json_delta", "partial_json": p}));
                    (start, deltas.collect())
                }
            };
            let open =
                json!({"type": "content_block_start", "index": index, "content_block": start});
            events.push(open);
            let deltas = deltas.into_iter();
            events.extend(
                deltas.map(|d| json!({"type": "content_block_delta", "index": index, "delta": d})),
            );
            events.push(json!({"type": "content_block_stop", "index": index}));
        }
        events.push(json!({
            "type": "message_delta",
            "delta": {"stop_reason": self.stop_reason(), "stop_sequence": null},
            "usage": {"output_tokens": self.reply.usage.output_tokens},
        }));
        events.push(json!({"type": "message_stop"}));
        events
    }

    /// Sends the events as SSE, pausing or breaking off as the reply says.
    pub(super) fn stream(&self) -> Response {
        let events = self.events();
        let pause = self.reply.pause;
        let break_after = self.reply.break_after;
        let (sender, receiver) = mpsc::channel::<io::Result<String>>(8);

        tokio::spawn(async move {
            for (sent, event) in events.into_iter().enumerate() {
                if break_after == Some(sent) {
                    let broken = io::Error::other("stream broken by the test");
                    let _ = sender.send(Err(broken)).await;
                    return;
                }
                if sent > 0 {
                    tokio::time::sleep(pause).await;
                }
                let kind = event["type"].as_str().unwrap_or_default().to_owned();
                let frame = format!("event: {kind}\ndata: {event}\n\n");
                if sender.send(Ok(frame)).await.is_err() {
                    return;
                }
            }
        });

        let request_id = format!("req_double_{}", self.number);
        Response::builder()
            .header(header::CONTENT_TYPE, "text/event-stream")
            .header(header::CACHE_CONTROL, "no-cache")
            .header("request-id", request_id)
            .body(Body::from_stream(ReceiverStream::new(receiver)))
            .expect("building an SSE response")
    }
}

/// Splits `text` into pieces of up to 8 characters, like streamed deltas.
fn chunks(text: &str) -> impl Iterator<Item = String> + '_ {
    let chars: Vec<char> = text.chars().collect();
    let pieces: Vec<String> = chars.chunks(8).map(|c| c.iter().collect()).collect();
    pieces.into_iter()
}
