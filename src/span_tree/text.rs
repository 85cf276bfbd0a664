//! The texts a run records when PII is on: prompt, answers, tool arguments
//! and results. Each is scrubbed of secrets, cut to [`VALUE_LIMIT`], and all
//! but the prompt and final answer share a per-run budget, so a transaction
//! stays far below Sentry's 1 MB limit however many tools ran.

use serde_json::{Value, json};

use crate::telemetry::redact;

/// The most bytes one recorded text keeps before its cut marker.
pub(super) const VALUE_LIMIT: usize = 8 * 1024;
/// The bytes of text all chat and tool spans of one run may record together.
pub(super) const RUN_BUDGET: usize = 160 * 1024;
/// How far past the limit a text is scrubbed before it is cut, so a secret
/// that starts before the cut is scrubbed whole. Longer secrets (private
/// key blocks) are scrubbed to the end of the text when their end is cut.
const SCRUB_MARGIN: usize = 4 * 1024;

/// Decides what text a run records and keeps the run's budget.
#[derive(Debug)]
pub(super) struct TextRecorder {
    enabled: bool,
    left: usize,
}

impl TextRecorder {
    /// A recorder that records nothing unless `enabled`.
    pub(super) fn new(enabled: bool) -> Self {
        TextRecorder {
            enabled,
            left: RUN_BUDGET,
        }
    }

    /// Whether texts are recorded at all.
    pub(super) fn enabled(&self) -> bool {
        self.enabled
    }

    /// `text` as a one-message JSON list, outside the run budget: for the
    /// prompt and the final answer, which matter most.
    pub(super) fn message(&self, role: &str, text: &str) -> Option<Value> {
        self.enabled
            .then(|| message_list(role, &bounded(text, VALUE_LIMIT)))
    }

    /// `text` as a one-message JSON list, charged to the run budget.
    pub(super) fn budgeted_message(&mut self, role: &str, text: &str) -> Option<Value> {
        if !self.enabled {
            return None;
        }
        let limit = self.left.min(VALUE_LIMIT);
        let value = message_list(role, &bounded(text, limit));
        self.charge(&value);
        Some(value)
    }

    /// `text` as it is (already JSON, or plain output), charged to the run
    /// budget.
    pub(super) fn budgeted_text(&mut self, text: &str) -> Option<Value> {
        if !self.enabled {
            return None;
        }
        let limit = self.left.min(VALUE_LIMIT);
        let value = Value::String(bounded(text, limit));
        self.charge(&value);
        Some(value)
    }

    fn charge(&mut self, value: &Value) {
        let used = value.as_str().map_or(0, str::len);
        self.left = self.left.saturating_sub(used);
    }
}

/// Sentry wants message lists as JSON text, not as nested objects.
fn message_list(role: &str, content: &str) -> Value {
    Value::String(json!([{ "role": role, "content": content }]).to_string())
}

/// `text` scrubbed of secrets and cut to `limit` bytes. Only the part that
/// can be kept is scrubbed: tool output may run to megabytes.
fn bounded(text: &str, limit: usize) -> String {
    let window = &text[..text.floor_char_boundary(limit.saturating_add(SCRUB_MARGIN))];
    let scrubbed = redact(window);
    if window.len() == text.len() {
        return clip(&scrubbed, limit, scrubbed.len());
    }
    clip(&scrubbed, limit, text.len())
}

/// `text` cut to at most `limit` bytes (on a character boundary), with a
/// marker saying how much of `total` bytes was cut. Under the limit it is
/// kept whole.
fn clip(text: &str, limit: usize, total: usize) -> String {
    if text.len() <= limit && total <= limit {
        return text.to_owned();
    }
    let kept = &text[..text.floor_char_boundary(limit)];
    let cut = total.saturating_sub(kept.len());
    format!("{kept}…[truncated {cut} of {total} bytes]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_short_text_whole() {
        assert_eq!(bounded("hello", 5), "hello");
    }

    #[test]
    fn cuts_long_text_on_a_character_boundary_and_says_so() {
        let text = "é".repeat(10);
        let clipped = bounded(&text, 5);
        assert!(clipped.starts_with("éé…"), "{clipped}");
        assert!(clipped.ends_with("[truncated 16 of 20 bytes]"), "{clipped}");
    }

    #[test]
    fn scrubs_a_secret_that_straddles_the_cut() {
        let key = "sk-ant-api03-c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0";
        let text = format!("{} {key} {}", "a".repeat(90), "b".repeat(20_000));
        let clipped = bounded(&text, 100);
        assert!(
            clipped.starts_with(&format!("{} [redac", "a".repeat(90))),
            "{clipped}"
        );
        assert!(
            clipped.ends_with(&format!("of {} bytes]", text.len())),
            "{clipped}"
        );
    }

    #[test]
    fn records_nothing_when_disabled() {
        let mut recorder = TextRecorder::new(false);
        assert_eq!(recorder.message("user", "hi"), None);
        assert_eq!(recorder.budgeted_text("hi"), None);
        assert_eq!(recorder.budgeted_message("assistant", "hi"), None);
    }

    #[test]
    fn message_lists_stay_valid_json_when_cut() {
        let recorder = TextRecorder::new(true);
        let long = "\"quoted\" ".repeat(2000);
        let value = recorder.message("user", &long).unwrap();
        let parsed: Value = serde_json::from_str(value.as_str().unwrap()).unwrap();
        let content = parsed[0]["content"].as_str().unwrap();
        assert_eq!(parsed[0]["role"], "user");
        assert!(content.contains("[truncated"), "{content}");
        assert!(content.len() < VALUE_LIMIT + 64);
    }

    #[test]
    fn shares_one_budget_between_values() {
        let mut recorder = TextRecorder::new(true);
        let big = "x".repeat(VALUE_LIMIT * 2);
        let mut total = 0;
        for _ in 0..(RUN_BUDGET / VALUE_LIMIT + 10) {
            total += recorder
                .budgeted_text(&big)
                .unwrap()
                .as_str()
                .unwrap()
                .len();
        }
        assert!(total <= RUN_BUDGET + 64 * (RUN_BUDGET / VALUE_LIMIT + 10));
        let spent = recorder.budgeted_text(&big).unwrap();
        assert!(
            spent.as_str().unwrap().starts_with("…[truncated"),
            "{spent}"
        );
    }
}
