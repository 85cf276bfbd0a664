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

/// The message a long answer whose start shows no text begins with.
pub const SEE_DOCUMENT: &str = "<i>(The answer is in the file below.)</i>";

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
    /// Bytes of Markdown rendered first; each further try renders 4 times
    /// as many, up to `max_rendered`.
    first_rendered: usize,
    max_rendered: usize,
}

const TELEGRAM: Limits = Limits {
    message: MESSAGE_LIMIT,
    upload: UPLOAD_LIMIT,
    first_rendered: 256 * 1024,
    max_rendered: 4 * 1024 * 1024,
};

/// Plans the delivery of `markdown`: more than `long_answer_messages`
/// messages makes it a document (so 0 makes every answer one).
///
/// A whitespace-only answer, or one that renders to no visible text, becomes
/// [`EMPTY_ANSWER`]. Parsing Markdown takes many times its size in memory,
/// so a long answer is judged, and its first message made, from a rendered
/// start of at most 4 MiB: an answer longer than that is a document even if
/// it shows little text (its Markdown is then mostly link targets or blank
/// lines), and its first message may show a reference link unresolved.
pub fn plan(markdown: &str, long_answer_messages: usize) -> AnswerPlan {
    plan_within(markdown, long_answer_messages, TELEGRAM)
}

fn plan_within(markdown: &str, max_messages: usize, limits: Limits) -> AnswerPlan {
    if markdown.trim().is_empty() {
        return AnswerPlan::Messages(vec![EMPTY_ANSWER.to_owned()]);
    }

    // One message past the threshold is enough to know.
    let wanted = max_messages.saturating_add(1);
    let mut rendered_len = limits.first_rendered;
    let first = loop {
        let start = leading_part(markdown, rendered_len);
        let mut messages = render_messages(start, wanted, limits.message);
        if messages.len() > max_messages {
            messages.truncate(1);
            break messages.pop();
        }
        if start.len() == markdown.len() {
            if messages.is_empty() {
                messages.push(EMPTY_ANSWER.to_owned());
            }
            return AnswerPlan::Messages(messages);
        }
        if rendered_len >= limits.max_rendered {
            break messages.into_iter().next();
        }
        rendered_len = rendered_len.saturating_mul(4).min(limits.max_rendered);
    };

    let (contents, truncated) = document(markdown, limits.upload);
    AnswerPlan::Document {
        first: first.unwrap_or_else(|| SEE_DOCUMENT.to_owned()),
        file_name: DOCUMENT_NAME.to_owned(),
        contents,
        truncated,
    }
}

/// Renders `markdown` and makes at most `count` messages of it.
fn render_messages(markdown: &str, count: usize, limit: usize) -> Vec<String> {
    let rendered = html::render(markdown);
    chunks::chunks(&rendered, limit).take(count).collect()
}

/// The start of `markdown` up to about `len` bytes, ending at a blank line
/// (else a line end) so that little Markdown is cut open.
fn leading_part(markdown: &str, len: usize) -> &str {
    if markdown.len() <= len {
        return markdown;
    }
    let head = &markdown[..markdown.floor_char_boundary(len)];
    let paragraph = head.rfind("\n\n").filter(|&end| end > 0);
    match paragraph.or_else(|| head.rfind('\n')) {
        Some(end) => &head[..end + 1],
        None => head,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telegram::chunks::visible_len;

    const SMALL: Limits = Limits {
        message: 100,
        upload: 1000,
        first_rendered: 300,
        max_rendered: 5000,
    };

    fn paragraphs(count: usize) -> String {
        let words = "Words of the answer, **some bold**, `some code`.";
        (0..count).map(|i| format!("{i}: {words}\n\n")).collect()
    }

    fn messages(plan: &AnswerPlan) -> &[String] {
        match plan {
            AnswerPlan::Messages(messages) => messages,
            AnswerPlan::Document { .. } => panic!("a document: {plan:?}"),
        }
    }

    #[test]
    fn sends_a_short_answer_as_one_message() {
        let plan = plan("Hello **there**", 8);
        assert_eq!(messages(&plan), ["Hello <b>there</b>"]);
    }

    #[test]
    fn says_so_when_the_answer_has_no_text() {
        for markdown in ["", " \n\t\n", "&nbsp;"] {
            assert_eq!(messages(&plan(markdown, 8)), [EMPTY_ANSWER], "{markdown:?}");
        }
    }

    #[test]
    fn sends_an_answer_of_up_to_the_threshold_as_messages() {
        let plan = plan_within(&paragraphs(12), 8, SMALL);
        let messages = messages(&plan);
        assert!((2..=8).contains(&messages.len()), "{}", messages.len());
        assert!(messages.iter().all(|m| visible_len(m) <= SMALL.message));
    }

    #[test]
    fn sends_a_longer_answer_as_its_first_message_and_a_document() {
        let markdown = paragraphs(15);
        assert!(markdown.len() < SMALL.upload);
        let plan = plan_within(&markdown, 3, SMALL);
        let AnswerPlan::Document {
            first,
            file_name,
            contents,
            truncated,
        } = plan
        else {
            panic!("messages: {plan:?}");
        };

        let all = chunks::split(&html::render(&markdown), SMALL.message);
        assert!(all.len() > 3);
        assert_eq!(first, all[0]);
        assert_eq!(file_name, "answer.md");
        assert_eq!(String::from_utf8_lossy(&contents), markdown);
        assert!(!truncated);
    }

    #[test]
    fn cuts_a_document_past_the_upload_limit_at_a_character_with_a_note() {
        let markdown = "é".repeat(1000);
        let plan = plan_within(&markdown, 1, SMALL);
        let AnswerPlan::Document {
            contents,
            truncated,
            ..
        } = plan
        else {
            panic!("messages: {plan:?}");
        };

        assert!(truncated);
        assert!(contents.len() <= SMALL.upload);
        let text = String::from_utf8(contents).expect("cut between characters");
        let (kept, note) = text.split_once("\n\n---\n\n").expect("a note");
        assert!(markdown.starts_with(kept) && kept.len() > 800);
        assert!(note.contains("2000 bytes"), "{note}");
    }

    #[test]
    fn renders_all_of_an_answer_that_fits_past_the_first_try() {
        let markdown = paragraphs(8);
        assert!(markdown.len() > SMALL.first_rendered);
        let plan = plan_within(&markdown, 8, SMALL);
        let all = chunks::split(&html::render(&markdown), SMALL.message);
        assert_eq!(messages(&plan), all);
    }

    #[test]
    fn sends_a_huge_answer_showing_little_text_as_a_document() {
        let link = "[a](https://example.org/a/long/path/to/somewhere)\n\n";
        let markdown = link.repeat(SMALL.max_rendered / link.len() + 10);
        let plan = plan_within(&markdown, 8, SMALL);
        let AnswerPlan::Document { first, .. } = plan else {
            panic!("messages: {plan:?}");
        };
        assert!(
            first.starts_with("<a href=\"https://example.org/"),
            "{first}"
        );
    }

    #[test]
    fn appends_a_summary_line_to_the_last_message() {
        let mut plan = plan("Done.", 8);
        plan.append_line("🔧 Bash ×2, Read");
        assert_eq!(messages(&plan), ["Done.\n\n🔧 Bash ×2, Read"]);
    }

    #[test]
    fn sends_a_summary_line_that_does_not_fit_on_its_own() {
        let mut plan = plan_within(&"x".repeat(95), 8, SMALL);
        plan.append_line_within("<i>🔧 Bash ×2</i>", SMALL.message);
        assert_eq!(
            messages(&plan),
            ["x".repeat(95), "<i>🔧 Bash ×2</i>".into()]
        );
    }

    #[test]
    fn makes_room_for_a_summary_line_under_the_first_message() {
        let mut plan = plan_within(&paragraphs(30), 3, SMALL);
        let line = "🔧 Bash ×2, Read, Edit ×3";
        plan.append_line_within(line, SMALL.message);
        let AnswerPlan::Document { first, .. } = plan else {
            panic!("messages: {plan:?}");
        };
        assert!(first.ends_with(&format!("\n\n{line}")), "{first}");
        assert!(visible_len(&first) <= SMALL.message);
    }
}
