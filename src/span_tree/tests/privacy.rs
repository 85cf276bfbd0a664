//! What text reaches Sentry: nothing without PII; with it, scrubbed and
//! bounded text in a transaction Sentry will accept.

use super::*;
use crate::span_tree::text::VALUE_LIMIT;
use crate::telemetry::REDACTED;

const PII_KEYS: [&str; 4] = [
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result",
];

/// The prompt, answers and tool input and output of a run, long enough
/// not to turn up by chance.
fn texts_of(lines: &[Line]) -> Vec<String> {
    let mut texts = vec![PROMPT.to_owned()];
    for line in lines {
        match line {
            Line::Assistant(assistant) => {
                for block in &assistant.message.content {
                    match block {
                        ContentBlock::Text { text } => texts.push(text.clone()),
                        ContentBlock::ToolUse { input, .. } => {
                            let values = input.as_object().unwrap().values();
                            texts.extend(values.filter_map(|v| v.as_str()).map(String::from));
                        }
                        _ => {}
                    }
                }
            }
            Line::User(user) => {
                for block in user.message.content.blocks() {
                    if let ContentBlock::ToolResult { content, .. } = block {
                        texts.push(content.text());
                    }
                }
            }
            Line::Result(result) => texts.extend(result.result.clone()),
            _ => {}
        }
    }
    texts.retain(|text| text.len() >= 5);
    texts
}

/// Whether `text` was sent, raw or JSON-escaped once or twice.
fn was_sent(captured: &Captured, text: &str) -> bool {
    let once = serde_json::to_string(text).unwrap();
    let twice = serde_json::to_string(&once).unwrap();
    let forms = [text, &once[1..once.len() - 1], &twice[1..twice.len() - 1]];
    forms.iter().any(|form| captured.sent.contains(form))
}

const FIXTURES: [&str; 4] = [
    "b_bash",
    "g_partial_messages",
    "k3_parallel_tools",
    "d_denied_default_mode",
];

#[test]
fn sends_no_prompt_answer_or_tool_text_without_pii() {
    for name in FIXTURES {
        let lines = fixture(name);
        let texts = texts_of(&lines);
        assert!(texts.len() >= 3, "{name}: {texts:?}");
        let captured = trace(&lines, context(false), None);

        for text in texts {
            assert!(!was_sent(&captured, &text), "{name}: sent {text:?}");
        }
        for key in PII_KEYS {
            assert!(!captured.sent.contains(key), "{name}: sent {key}");
        }
    }
}

#[test]
fn sends_prompt_answer_and_tool_text_with_pii() {
    for name in FIXTURES {
        let lines = fixture(name);
        let captured = trace(&lines, context(true), None);
        for text in texts_of(&lines) {
            assert!(was_sent(&captured, &text), "{name}: did not send {text:?}");
        }
    }
}

#[test]
fn sends_texts_as_json_strings_in_their_own_attributes() {
    let lines = fixture("b_bash");
    let captured = trace(&lines, context(true), None);
    let agent = captured.sent_data(captured.agent());
    let parse = |value: &Value| -> Value { serde_json::from_str(value.as_str().unwrap()).unwrap() };

    let prompt = json!([{ "role": "user", "content": PROMPT }]);
    assert_eq!(parse(&agent["gen_ai.input.messages"]), prompt);
    let Some(Line::Result(result)) = lines.last() else {
        panic!("no result");
    };
    let answer = json!([{ "role": "assistant", "content": result.result }]);
    assert_eq!(parse(&agent["gen_ai.output.messages"]), answer);

    let tool = captured.sent_data(captured.with_op(EXECUTE_TOOL_OP)[0]);
    let Some((input, output)) = first_tool_call(&lines) else {
        panic!("no tool call");
    };
    assert_eq!(parse(&tool["gen_ai.tool.call.arguments"]), input);
    assert_eq!(tool["gen_ai.tool.call.result"], output.as_str());
}

fn first_tool_call(lines: &[Line]) -> Option<(Value, String)> {
    let input = lines.iter().find_map(|line| match line {
        Line::Assistant(a) => a.message.content.iter().find_map(|block| match block {
            ContentBlock::ToolUse { input, .. } => Some(input.clone()),
            _ => None,
        }),
        _ => None,
    })?;
    let output = lines.iter().find_map(|line| match line {
        Line::User(u) => u
            .message
            .content
            .blocks()
            .iter()
            .find_map(|block| match block {
                ContentBlock::ToolResult { content, .. } => Some(content.text()),
                _ => None,
            }),
        _ => None,
    })?;
    Some((input, output))
}

/// Replaces the text of every tool result.
fn with_tool_output(mut lines: Vec<Line>, output: &str) -> Vec<Line> {
    for line in &mut lines {
        let Line::User(user) = line else { continue };
        let wire::Content::Blocks(blocks) = &mut user.message.content else {
            continue;
        };
        for block in blocks {
            if let ContentBlock::ToolResult { content, .. } = block {
                *content = wire::Content::Text(output.to_owned());
            }
        }
    }
    lines
}

#[test]
fn scrubs_secrets_even_with_pii() {
    let key = "sk-ant-api03-Zm9vYmFyYmF6cXV4cXV1eDEyMzQ1Njc4OTA";
    let token = "123456789:AAHfiqksKZ8WmR2zSjiQ7_v4TMAKdiHm9T0";
    let pem =
        "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----";
    let lines = with_tool_output(fixture("b_bash"), &format!("BOT={token}\n{pem}"));
    let mut context = context(true);
    context.prompt = format!("use ANTHROPIC_API_KEY={key} please");
    let captured = trace(&lines, context, None);

    for secret in [key, token, "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"] {
        assert!(!was_sent(&captured, secret), "sent {secret}");
    }
    assert!(was_sent(
        &captured,
        &format!("ANTHROPIC_API_KEY={REDACTED} please")
    ));
    assert!(was_sent(&captured, &format!("BOT={REDACTED}")));
}

#[test]
fn cuts_long_texts_with_a_marker() {
    let long_output = "0123456789".repeat(10_000);
    let lines = with_tool_output(fixture("b_bash"), &long_output);
    let mut context = context(true);
    context.prompt = "a long prompt ".repeat(5_000);
    let captured = trace(&lines, context, None);

    let agent = captured.sent_data(captured.agent());
    let prompt = agent["gen_ai.input.messages"].as_str().unwrap();
    assert!(prompt.contains("[truncated"), "{prompt}");
    assert!(prompt.len() < VALUE_LIMIT + 100);
    let tool = captured.sent_data(captured.with_op(EXECUTE_TOOL_OP)[0]);
    let output = tool["gen_ai.tool.call.result"].as_str().unwrap();
    assert!(output.starts_with("0123456789"));
    assert!(
        output.ends_with(&format!("of {} bytes]", long_output.len())),
        "{output}"
    );
    assert!(output.len() < VALUE_LIMIT + 100);
}

/// A run of `calls` model calls, each running one tool with `size` bytes of
/// input and of output.
fn busy_run(calls: usize, size: usize) -> Vec<Line> {
    let recorded = fixture("b_bash");
    let mut lines = vec![recorded[0].clone()];
    for i in 0..calls {
        let id = format!("toolu_{i:05}");
        lines.push(line(json!({
            "type": "assistant",
            "message": {"id": format!("msg_{i:05}"), "model": "claude-opus-4-8",
                "content": [{"type": "tool_use", "id": id, "name": "Bash",
                    "input": {"command": "i".repeat(size)}}]},
        })));
        lines.push(line(json!({
            "type": "user",
            "message": {"role": "user", "content": [{"type": "tool_result",
                "tool_use_id": id, "content": "o".repeat(size), "is_error": false}]},
        })));
    }
    lines.extend(recorded[recorded.len() - 2..].iter().cloned());
    lines
}

#[test]
fn caps_the_spans_of_a_run_and_counts_the_rest() {
    let lines = busy_run(600, 10);
    let captured = trace_with(&lines, context(false), Ok(outcome(&lines, None)), |_| {});

    let wanted = 600 * 2 + 1;
    assert_eq!(captured.transaction.spans.len(), MAX_RUN_SPANS + 1);
    let agent = captured.sent_data(captured.agent());
    assert_eq!(agent["spans_dropped"], wanted - MAX_RUN_SPANS);
}

#[test]
fn a_run_with_hundreds_of_large_tool_calls_stays_well_under_one_megabyte() {
    let lines = busy_run(MAX_RUN_SPANS / 2, 30_000);
    let mut context = context(true);
    context.prompt = "p".repeat(100_000);
    let captured = trace_with(&lines, context, Ok(outcome(&lines, None)), |_| {});

    assert_eq!(captured.with_op(EXECUTE_TOOL_OP).len(), MAX_RUN_SPANS / 2);
    assert!(
        captured.sent.len() < 800_000,
        "{} bytes",
        captured.sent.len()
    );
    let last = captured.with_op(EXECUTE_TOOL_OP).pop().unwrap();
    let output = captured.sent_data(last)["gen_ai.tool.call.result"].clone();
    assert!(
        output.as_str().unwrap().starts_with("…[truncated"),
        "{output}"
    );
}
