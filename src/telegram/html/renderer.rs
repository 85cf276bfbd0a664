//! The state machine behind [`super::render`]: Markdown events in, Telegram
//! HTML out, with block spacing, list markers and quotes kept lazily so no
//! element is left empty.

use pulldown_cmark::{CodeBlockKind, Event, LinkType, Tag, TagEnd};

use super::tokens::{push_escaped, to_plain_text};

/// Indentation of one level of list nesting.
const INDENT: &str = "   ";

/// The line a thematic break (`---`) becomes.
const RULE: &str = "──────────";

/// Whether Telegram accepts `url` as the target of an inline link.
fn is_linkable(url: &str) -> bool {
    ["http://", "https://", "tg://"].iter().any(|scheme| {
        let head = url.as_bytes().get(..scheme.len());
        head.is_some_and(|head| head.eq_ignore_ascii_case(scheme.as_bytes()))
    })
}

/// The language of a fenced code block as a safe class name, if it has one.
fn code_language(info: &str) -> Option<String> {
    let word = info.split_whitespace().next()?;
    let allowed = |c: &char| c.is_ascii_alphanumeric() || "+-#._".contains(*c);
    let language: String = word.chars().filter(allowed).collect();
    (!language.is_empty()).then_some(language)
}

/// An open inline element: where its content starts, how it closes, and
/// the URL shown as text if the element has no `<a>` or no content.
struct Span {
    content_start: usize,
    opening_start: usize,
    close: &'static str,
    url: Option<String>,
}

/// The state of one rendering; `out` is the HTML so far.
pub(super) struct Renderer {
    pub(super) out: String,
    /// Newlines owed before the next visible content.
    pending: usize,
    /// The next number of each open list (`None`: bullets).
    lists: Vec<Option<u64>>,
    /// A list marker was just written: the item's first block needs no break.
    at_item_start: bool,
    quote_depth: usize,
    /// Opening the `<blockquote>` waits for content, so code blocks can
    /// interrupt it (Telegram nests no entity in a quote's `pre`).
    quote_open: bool,
    spans: Vec<Span>,
    link_depth: usize,
    /// The open code block: its closing tags and where it starts.
    code_block: Option<(&'static str, usize)>,
    table_head: bool,
    table_cell: usize,
}

impl Renderer {
    pub(super) fn with_capacity(capacity: usize) -> Self {
        Renderer {
            out: String::with_capacity(capacity + capacity / 8),
            pending: 0,
            lists: Vec::new(),
            at_item_start: false,
            quote_depth: 0,
            quote_open: false,
            spans: Vec::new(),
            link_depth: 0,
            code_block: None,
            table_head: false,
            table_cell: 0,
        }
    }

    pub(super) fn event(&mut self, event: Event<'_>) {
        match event {
            Event::Start(tag) => self.start(tag),
            Event::End(tag) => self.end(tag),
            Event::Text(text) if self.code_block.is_some() => {
                push_escaped(&mut self.out, &text, false);
            }
            Event::Text(text)
            | Event::InlineMath(text)
            | Event::DisplayMath(text)
            | Event::InlineHtml(text) => self.text(&text),
            Event::Html(html) => self.html_line(&html),
            Event::Code(code) => self.inline_code(&code),
            Event::FootnoteReference(label) => self.text(&format!("[^{label}]")),
            Event::SoftBreak | Event::HardBreak => self.line(),
            Event::Rule => {
                self.block();
                self.text(RULE);
                self.block();
            }
            Event::TaskListMarker(done) => self.text(if done { "☑ " } else { "☐ " }),
        }
    }

    fn start(&mut self, tag: Tag<'_>) {
        match tag {
            Tag::Paragraph | Tag::HtmlBlock | Tag::Table(_) => self.block(),
            Tag::Heading { .. } => {
                self.block();
                self.open("<b>", "</b>");
            }
            Tag::BlockQuote(_) => {
                self.block();
                self.quote_depth += 1;
            }
            Tag::CodeBlock(kind) => self.open_code_block(kind),
            Tag::List(first) => {
                self.block();
                self.lists.push(first);
            }
            Tag::Item => self.open_item(),
            Tag::TableHead => {
                self.line();
                self.table_head = true;
                self.table_cell = 0;
            }
            Tag::TableRow => {
                self.line();
                self.table_cell = 0;
            }
            Tag::TableCell => self.open_cell(),
            Tag::Emphasis => self.open("<i>", "</i>"),
            Tag::Strong => self.open("<b>", "</b>"),
            Tag::Strikethrough => self.open("<s>", "</s>"),
            Tag::Link {
                link_type,
                dest_url,
                ..
            } => self.open_link(link_type, &dest_url),
            Tag::Image { dest_url, .. } => self.open_link(LinkType::Inline, &dest_url),
            _ => {}
        }
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::Paragraph | TagEnd::HtmlBlock | TagEnd::Table => self.block(),
            TagEnd::Heading(_) => {
                self.close();
                self.block();
            }
            TagEnd::BlockQuote(_) => self.close_quote(),
            TagEnd::CodeBlock => self.close_code_block(),
            TagEnd::List(_) => {
                self.lists.pop();
                self.block();
            }
            TagEnd::TableHead => self.table_head = false,
            TagEnd::TableCell if self.table_head => self.close(),
            TagEnd::Emphasis | TagEnd::Strong | TagEnd::Strikethrough => self.close(),
            TagEnd::Link | TagEnd::Image => {
                self.close();
                self.link_depth -= 1;
            }
            _ => {}
        }
    }

    /// Asks for a blank line (a newline inside lists) before what comes next.
    fn block(&mut self) {
        let newlines = if self.lists.is_empty() { 2 } else { 1 };
        self.owe(newlines);
    }

    fn line(&mut self) {
        self.owe(1);
    }

    fn owe(&mut self, newlines: usize) {
        if !self.at_item_start {
            self.pending = self.pending.max(newlines);
        }
    }

    /// Writes the owed newlines and opens a waiting quote; `true` when
    /// a newline was written.
    fn flush_lines(&mut self) -> bool {
        let wrote = self.pending > 0 && !self.out.is_empty();
        if wrote {
            self.out.extend(std::iter::repeat_n('\n', self.pending));
        }
        self.pending = 0;
        if self.quote_depth > 0 && !self.quote_open {
            self.out.push_str("<blockquote>");
            self.quote_open = true;
        }
        wrote
    }

    /// Prepares for inline content: owed newlines, then the indentation
    /// that continues the current list item.
    fn flush(&mut self) {
        if self.flush_lines() && !self.at_item_start {
            for _ in 0..self.lists.len() {
                self.out.push_str(INDENT);
            }
        }
        self.at_item_start = false;
    }

    fn text(&mut self, text: &str) {
        self.flush();
        push_escaped(&mut self.out, text, false);
    }

    fn html_line(&mut self, html: &str) {
        let line = html.strip_suffix('\n');
        self.text(line.unwrap_or(html));
        if line.is_some() {
            self.line();
        }
    }

    fn inline_code(&mut self, code: &str) {
        // Telegram cannot put a code entity inside a link.
        if self.link_depth > 0 {
            return self.text(code);
        }
        self.flush();
        self.out.push_str("<code>");
        push_escaped(&mut self.out, code, false);
        self.out.push_str("</code>");
    }

    fn open(&mut self, opening: &str, close: &'static str) {
        self.flush();
        let opening_start = self.out.len();
        self.out.push_str(opening);
        self.spans.push(Span {
            content_start: self.out.len(),
            opening_start,
            close,
            url: None,
        });
    }

    /// Closes the innermost span; an empty one is removed, or shows its URL.
    fn close(&mut self) {
        let Some(span) = self.spans.pop() else { return };
        let empty = self.out.len() == span.content_start;
        let Some(url) = span.url else {
            if empty {
                self.out.truncate(span.opening_start);
            } else {
                self.out.push_str(span.close);
            }
            return;
        };

        let shown = to_plain_text(&self.out[span.content_start..]);
        if empty {
            push_escaped(&mut self.out, &url, false);
        } else if span.close.is_empty() && shown != url {
            self.out.push_str(" (");
            push_escaped(&mut self.out, &url, false);
            self.out.push(')');
        }
        self.out.push_str(span.close);
    }

    /// Opens a link as `<a>` when Telegram can follow it, else as text that
    /// will be followed by its URL.
    fn open_link(&mut self, link_type: LinkType, url: &str) {
        let linkable = self.link_depth == 0 && is_linkable(url);
        self.link_depth += 1;
        if link_type == LinkType::Email || !linkable {
            self.open("", "");
        } else {
            let mut opening = String::from("<a href=\"");
            push_escaped(&mut opening, url, true);
            opening.push_str("\">");
            self.open(&opening, "</a>");
        }
        if let Some(span) = self.spans.last_mut() {
            span.url = Some(url.to_owned());
        }
    }

    fn open_item(&mut self) {
        // An empty item before this one still ends its line.
        self.at_item_start = false;
        self.line();
        self.flush_lines();
        for _ in 1..self.lists.len() {
            self.out.push_str(INDENT);
        }
        match self.lists.last_mut() {
            Some(Some(number)) => {
                self.out.push_str(&format!("{number}. "));
                *number += 1;
            }
            _ => self.out.push_str("• "),
        }
        self.at_item_start = true;
    }

    fn open_cell(&mut self) {
        self.flush();
        if self.table_cell > 0 {
            self.out.push_str(" | ");
        }
        self.table_cell += 1;
        if self.table_head {
            self.open("<b>", "</b>");
        }
    }

    fn open_code_block(&mut self, kind: CodeBlockKind<'_>) {
        if self.quote_open {
            self.out.push_str("</blockquote>");
            self.quote_open = false;
        }
        let start = self.out.len();
        self.block();
        self.flush_newlines_only();

        let language = match kind {
            CodeBlockKind::Fenced(info) => code_language(&info),
            CodeBlockKind::Indented => None,
        };
        let close = match language {
            Some(language) => {
                self.out.push_str("<pre><code class=\"language-");
                self.out.push_str(&language);
                self.out.push_str("\">");
                "</code></pre>"
            }
            None => {
                self.out.push_str("<pre>");
                "</pre>"
            }
        };
        self.code_block = Some((close, start));
    }

    fn flush_newlines_only(&mut self) {
        if self.pending > 0 && !self.out.is_empty() {
            self.out.extend(std::iter::repeat_n('\n', self.pending));
        }
        self.pending = 0;
        self.at_item_start = false;
    }

    fn close_code_block(&mut self) {
        let Some((close, start)) = self.code_block.take() else {
            return;
        };
        while self.out.ends_with('\n') {
            self.out.pop();
        }
        if self.out.ends_with('>') {
            // Only the opening tags: an empty block is left out.
            self.out.truncate(start);
        } else {
            self.out.push_str(close);
        }
        self.block();
    }

    fn close_quote(&mut self) {
        self.quote_depth -= 1;
        if self.quote_depth == 0 && self.quote_open {
            self.out.push_str("</blockquote>");
            self.quote_open = false;
        }
        self.pending = 0;
        self.block();
    }
}
