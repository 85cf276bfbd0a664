//! Splitting Telegram HTML into messages that each fit Telegram's limit.
//!
//! The limit counts visible text in UTF-16 code units, as Telegram does after
//! parsing entities. Cuts fall at a blank line, a line end or a space when
//! one is far enough in, else between two characters; tags open at a cut
//! are closed in one chunk and reopened in the next.

use super::html::{Token, tokens};

/// Telegram's limit on the text of one message, in UTF-16 code units.
pub const MESSAGE_LIMIT: usize = 4096;

/// Splits `html` into chunks of at most `limit` visible UTF-16 code units.
///
/// At each cut the run of newlines or the single space cut at is dropped;
/// so is a stretch of only whitespace that would fill a chunk on its own.
/// No chunk is empty or whitespace only. A character wider than `limit`
/// still gets a chunk of its own.
pub fn split(html: &str, limit: usize) -> Vec<String> {
    chunks(html, limit).collect()
}

/// The chunks of [`split`], made one at a time.
pub fn chunks(html: &str, limit: usize) -> Chunks<'_> {
    Chunks {
        html,
        pos: 0,
        open: Vec::new(),
        limit,
    }
}

/// Length of the visible text of `html` in UTF-16 code units.
pub fn visible_len(html: &str) -> usize {
    tokens(html)
        .map(|(_, token)| match token {
            Token::Char(c) => c.len_utf16(),
            Token::Tag(_) => 0,
        })
        .sum()
}

/// Iterator over the chunks of one HTML text; see [`split`].
pub struct Chunks<'a> {
    html: &'a str,
    pos: usize,
    /// The opening tags in force at `pos`, outermost first.
    open: Vec<&'a str>,
    limit: usize,
}

/// Where a chunk ends and where the next one starts.
#[derive(Clone, Copy)]
struct Cut {
    end: usize,
    resume: usize,
}

impl<'a> Iterator for Chunks<'a> {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        loop {
            self.skip_closing_tags();
            match self.find_cut() {
                Scan::End => return None,
                Scan::Blank(end) => self.advance(end),
                Scan::Cut(cut) => return Some(self.take(cut)),
            }
        }
    }
}

/// What a scan from the current position found.
enum Scan {
    /// Nothing visible is left.
    End,
    /// Only whitespace up to this offset, then the limit: skip it.
    Blank(usize),
    Cut(Cut),
}

/// The best place seen so far for each kind of cut, with the visible
/// length the chunk would have.
#[derive(Default)]
struct Candidates {
    paragraph: Option<(Cut, usize)>,
    line: Option<(Cut, usize)>,
    space: Option<(Cut, usize)>,
}

impl Candidates {
    /// Prefers a blank line, then a line end, then a space, among those
    /// that fill at least half the chunk; else the latest of any kind.
    fn choose(&self, limit: usize) -> Option<Cut> {
        let kinds = [self.paragraph, self.line, self.space];
        let full_enough = kinds.iter().flatten().find(|(_, len)| *len >= limit / 2);
        let latest = kinds.iter().flatten().max_by_key(|(cut, _)| cut.end);
        full_enough.or(latest).map(|(cut, _)| *cut)
    }
}

impl<'a> Chunks<'a> {
    /// Scans from `pos` until the limit is passed or the text ends.
    fn find_cut(&self) -> Scan {
        let rest = &self.html[self.pos..];
        let mut units = 0;
        let mut has_text = false;
        let mut text_end = 0;
        let mut start = 0;
        let mut candidates = Candidates::default();

        for (end, token) in tokens(rest) {
            let Token::Char(c) = token else {
                start = end;
                continue;
            };
            // A cut at this character leaves it out, so it may be the one
            // that no longer fits.
            if has_text {
                let cut = |resume| Cut {
                    end: self.pos + start,
                    resume: self.pos + resume,
                };
                if c == ' ' {
                    candidates.space = Some((cut(end), units));
                } else if c == '\n' && !rest[..start].ends_with('\n') {
                    let run = rest[start..].bytes().take_while(|&b| b == b'\n').count();
                    let candidate = Some((cut(start + run), units));
                    if run > 1 {
                        candidates.paragraph = candidate;
                    } else {
                        candidates.line = candidate;
                    }
                }
            }

            let width = c.len_utf16();
            if units + width > self.limit && units > 0 {
                let at = |offset: usize| self.pos + offset;
                if !has_text {
                    return Scan::Blank(at(text_end));
                }
                let hard = Cut {
                    end: at(text_end),
                    resume: at(text_end),
                };
                let cut = candidates.choose(self.limit).unwrap_or(hard);
                return Scan::Cut(cut);
            }
            units += width;
            has_text |= !c.is_whitespace();
            text_end = end;
            start = end;
        }

        if !has_text {
            return Scan::End;
        }
        let end = self.html.len();
        Scan::Cut(Cut { end, resume: end })
    }

    /// Builds the chunk up to `cut`: reopened tags, the text, closing tags.
    fn take(&mut self, cut: Cut) -> String {
        let body = &self.html[self.pos..cut.end];
        let mut chunk = String::with_capacity(body.len() + 64);
        for tag in &self.open {
            chunk.push_str(tag);
        }
        chunk.push_str(body);
        self.advance(cut.end);

        // Tags opened right before the cut wait for the next chunk.
        let mut still_open = self.open.len();
        while still_open > 0 && chunk.ends_with(self.open[still_open - 1]) {
            let tag = self.open[still_open - 1];
            chunk.truncate(chunk.len() - tag.len());
            still_open -= 1;
        }
        for tag in self.open[..still_open].iter().rev() {
            chunk.push_str("</");
            chunk.push_str(tag_name(tag));
            chunk.push('>');
        }

        self.pos = cut.resume;
        chunk
    }

    /// Moves `pos` to `end`, keeping track of the tags open there.
    fn advance(&mut self, end: usize) {
        let html = self.html;
        for (_, token) in tokens(&html[self.pos..end]) {
            if let Token::Tag(tag) = token {
                self.apply(tag);
            }
        }
        self.pos = end;
    }

    /// Drops closing tags at `pos` whose opening tag is in force, so no
    /// chunk starts with an empty element.
    fn skip_closing_tags(&mut self) {
        let html = self.html;
        while let Some((len, Token::Tag(tag))) = tokens(&html[self.pos..]).next() {
            let Some(name) = tag.strip_prefix("</") else {
                return;
            };
            let name = name.trim_end_matches('>').trim();
            if !self.open.iter().any(|open| tag_name(open) == name) {
                return;
            }
            self.apply(tag);
            self.pos += len;
        }
    }

    /// Updates the open tags with one tag read from the text.
    fn apply(&mut self, tag: &'a str) {
        let Some(closing) = tag.strip_prefix("</") else {
            self.open.push(tag);
            return;
        };
        let name = closing.trim_end_matches('>').trim();
        if let Some(index) = self.open.iter().rposition(|t| tag_name(t) == name) {
            self.open.truncate(index);
        }
    }
}

/// The name of an opening tag: `pre` for `<pre>`, `a` for `<a href="…">`.
fn tag_name(tag: &str) -> &str {
    let inner = tag.trim_start_matches('<').trim_end_matches('>');
    inner.split_whitespace().next().unwrap_or(inner)
}

#[cfg(test)]
mod tests;
