//! The delivery plan of one answer: the Telegram messages to send, or, for a
//! long answer, its first message and the whole Markdown as a document.
//! Sending the plan is left to the caller.

use super::chunks::{self, MESSAGE_LIMIT};
use super::html;

/// Name of the document a long answer arrives as.
pub const DOCUMENT_NAME: &str = "answer.md";

/// Telegram's limit on a file a bot uploads: 50 MB, read as decimal
/// megabytes to stay on the safe side.
pub const UPLOAD_LIMIT: usize = 50_000_000;

/// The message an answer without text becomes.
pub const EMPTY_ANSWER: &str = "<i>(The answer has no text.)</i>";

/// What separates an appended line from the message before it.
const LINE_SEPARATOR: &str = "\n\n";

/// How one answer reaches the chat.
#[derive(Debug, Clone, PartialEq)]
pub enum AnswerPlan {
    /// Telegram HTML messages, in order; never empty.
    Messages(Vec<String>),
    /// The first message, then the original Markdown as a file; `contents`
    /// is cut and ends with a note when the answer passes [`UPLOAD_LIMIT`].
    Document {
        first: String,
        file_name: String,
        contents: Vec<u8>,
        truncated: bool,
    },
}

/// The limits a plan is made under.
#[derive(Clone, Copy)]
struct Limits {
    message: usize,
    upload: usize,
}

const TELEGRAM: Limits = Limits {
    message: MESSAGE_LIMIT,
    upload: UPLOAD_LIMIT,
};

/// Plans the delivery of `markdown`: more than `long_answer_messages`
/// messages makes it a document (so 0 makes every answer one).
///
/// A whitespace-only answer, or one that renders to no visible text, becomes
/// [`EMPTY_ANSWER`].
pub fn plan(markdown: &str, long_answer_messages: usize) -> AnswerPlan {
    plan_within(markdown, long_answer_messages, TELEGRAM)
}

fn plan_within(markdown: &str, max_messages: usize, limits: Limits) -> AnswerPlan {
    if markdown.trim().is_empty() {
        return AnswerPlan::Messages(vec![EMPTY_ANSWER.to_owned()]);
    }

    // Only one message past the threshold is ever made; the rendering is
    // dropped before the document is copied, to keep the peak low.
    let mut messages: Vec<String> = {
        let rendered = html::render(markdown);
        let chunks = chunks::chunks(&rendered, limits.message);
        chunks.take(max_messages.saturating_add(1)).collect()
    };
    if messages.is_empty() {
        return AnswerPlan::Messages(vec![EMPTY_ANSWER.to_owned()]);
    }
    if messages.len() <= max_messages {
        return AnswerPlan::Messages(messages);
    }

    messages.truncate(1);
    let first = messages.pop().unwrap_or_default();
    let (contents, truncated) = document(markdown, limits.upload);
    AnswerPlan::Document {
        first,
        file_name: DOCUMENT_NAME.to_owned(),
        contents,
        truncated,
    }
}

/// The bytes of the document, cut at a character boundary with a closing
/// note when `markdown` is longer than `limit`.
fn document(markdown: &str, limit: usize) -> (Vec<u8>, bool) {
    if markdown.len() <= limit {
        return (markdown.as_bytes().to_vec(), false);
    }

    let note = format!(
        "\n\n---\n\n✂ The answer was cut here: it is {} bytes, and Telegram \
         takes files of up to {limit} bytes from a bot.\n",
        markdown.len()
    );
    let end = markdown.floor_char_boundary(limit.saturating_sub(note.len()));
    let mut contents = Vec::with_capacity(end + note.len());
    contents.extend_from_slice(&markdown.as_bytes()[..end]);
    contents.extend_from_slice(note.as_bytes());
    (contents, true)
}

impl AnswerPlan {
    /// Appends a line of Telegram HTML (already escaped, e.g. a tool
    /// summary) after a blank line at the end of the answer's messages.
    ///
    /// A line that does not fit the last message becomes messages of its
    /// own. For a document the line goes under the first message, whose end
    /// is cut to make room: the document still holds that text.
    pub fn append_line(&mut self, line: &str) {
        self.append_line_within(line, MESSAGE_LIMIT);
    }

    fn append_line_within(&mut self, line: &str, limit: usize) {
        if html::to_plain_text(line).trim().is_empty() {
            return;
        }
        let separator = chunks::visible_len(LINE_SEPARATOR);

        match self {
            AnswerPlan::Messages(messages) => {
                let needed = separator + chunks::visible_len(line);
                if let Some(last) = messages.last_mut()
                    && chunks::visible_len(last) + needed <= limit
                {
                    last.push_str(LINE_SEPARATOR);
                    last.push_str(line);
                    return;
                }
                messages.extend(chunks::split(line, limit));
            }
            AnswerPlan::Document { first, .. } => {
                let mut line = chunks::chunks(line, limit / 2);
                let line = line.next().unwrap_or_default();
                let room = limit.saturating_sub(separator + chunks::visible_len(&line));
                if chunks::visible_len(first) > room {
                    let shortened = chunks::chunks(first, room).next();
                    *first = shortened.unwrap_or_default();
                }
                first.push_str(LINE_SEPARATOR);
                first.push_str(&line);
            }
        }
    }
}
