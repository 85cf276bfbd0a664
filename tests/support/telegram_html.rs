//! Telegram's HTML parse mode as the Bot API checks it: which tags exist,
//! how they must be closed, which character entities are known, and what
//! visible text and formatting entities remain.
//!
//! Stricter than Telegram in one way: a bare `>` is refused too, since the
//! bot is meant to escape all three of `<`, `>` and `&`.

use serde_json::{Value, json};

/// One formatting entity; offsets count UTF-16 code units, like the Bot API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entity {
    pub kind: &'static str,
    pub offset: usize,
    pub length: usize,
    pub url: Option<String>,
    pub language: Option<String>,
}

impl Entity {
    /// The entity as a Bot API `MessageEntity` object.
    pub fn to_json(&self) -> Value {
        let mut entity = json!({
            "type": self.kind, "offset": self.offset, "length": self.length,
        });
        if let Some(url) = &self.url {
            entity["url"] = json!(url);
        }
        if let Some(language) = &self.language {
            entity["language"] = json!(language);
        }
        entity
    }
}

/// What a user sees of a message: its text and formatting entities.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Formatted {
    pub text: String,
    pub entities: Vec<Entity>,
}

/// Length of `text` in UTF-16 code units, the unit of Telegram's limits.
pub fn utf16_len(text: &str) -> usize {
    text.encode_utf16().count()
}

/// Parses `html` like the Bot API's HTML parse mode.
///
/// The error is the detail Telegram puts after `can't parse entities: `.
/// Entities nested in `code` or `pre` are dropped, as Telegram does, except
/// `<pre><code class="language-x">`, which gives the `pre` its language.
pub fn parse(html: &str) -> Result<Formatted, String> {
    let mut parser = Parser {
        html,
        pos: 0,
        units: 0,
        ..Parser::default()
    };
    while let Some(c) = html[parser.pos..].chars().next() {
        match c {
            '<' => parser.tag()?,
            '&' => {
                let (decoded, len) = entity_at(&html[parser.pos..], parser.pos)?;
                parser.push(decoded);
                parser.pos += len;
            }
            '>' => {
                return Err(format!(
                    "character '>' is reserved and must be escaped at byte offset {}",
                    parser.pos
                ));
            }
            _ => {
                parser.push(c);
                parser.pos += c.len_utf8();
            }
        }
    }

    if let Some(open) = parser.open.last() {
        let name = &open.name;
        return Err(format!(
            "Can't find end tag corresponding to start tag \"{name}\""
        ));
    }
    let mut formatted = parser.out;
    formatted
        .entities
        .sort_by_key(|e| (e.offset, usize::MAX - e.length));
    Ok(formatted)
}

/// A start tag waiting for its end tag.
#[derive(Default)]
struct Open {
    name: String,
    kind: Option<&'static str>,
    start: usize,
    url: Option<String>,
    language: Option<String>,
}

#[derive(Default)]
struct Parser<'a> {
    html: &'a str,
    pos: usize,
    units: usize,
    open: Vec<Open>,
    out: Formatted,
}

impl Parser<'_> {
    fn push(&mut self, c: char) {
        self.out.text.push(c);
        self.units += c.len_utf16();
    }

    /// Reads one start or end tag at `self.pos`.
    fn tag(&mut self) -> Result<(), String> {
        let offset = self.pos;
        let rest = &self.html[offset..];
        let Some(end) = tag_end(rest) else {
            return Err(format!("Unclosed start tag at byte offset {offset}"));
        };
        self.pos += end + 1;

        let inner = &rest[1..end];
        match inner.strip_prefix('/') {
            Some(name) => self.close(&name.trim_end().to_ascii_lowercase(), offset),
            None => self.open(inner, offset),
        }
    }

    fn open(&mut self, inner: &str, offset: usize) -> Result<(), String> {
        let name_len = inner
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .unwrap_or(inner.len());
        let name = inner[..name_len].to_ascii_lowercase();
        let unsupported = || format!("Unsupported start tag \"{name}\" at byte offset {offset}");
        if name.is_empty() || inner.ends_with('/') {
            return Err(unsupported());
        }
        let attributes = attributes(&inner[name_len..], offset)?;
        let attribute = |key: &str| {
            let found = attributes.iter().find(|(k, _)| k == key);
            found.map(|(_, value)| value.clone())
        };

        let mut open = Open {
            name: name.clone(),
            start: self.units,
            ..Open::default()
        };
        open.kind = match name.as_str() {
            "b" | "strong" => Some("bold"),
            "i" | "em" => Some("italic"),
            "u" | "ins" => Some("underline"),
            "s" | "strike" | "del" => Some("strikethrough"),
            "tg-spoiler" => Some("spoiler"),
            "code" => Some("code"),
            "pre" => Some("pre"),
            "blockquote" if attribute("expandable").is_some() => Some("expandable_blockquote"),
            "blockquote" => Some("blockquote"),
            "a" => {
                open.url = attribute("href");
                open.url.as_ref().map(|_| "text_link")
            }
            "span" if attribute("class").as_deref() == Some("tg-spoiler") => Some("spoiler"),
            "span" => return Err("Tag \"span\" must have class \"tg-spoiler\"".to_owned()),
            _ => return Err(unsupported()),
        };

        // Inside code and pre nothing else is formatted; the one exception
        // names the language of a pre block.
        let verbatim = self
            .open
            .iter()
            .any(|o| matches!(o.name.as_str(), "code" | "pre"));
        let parent = self.open.last_mut();
        if let Some(pre) = parent.filter(|o| o.name == "pre" && name == "code") {
            let class = attribute("class").unwrap_or_default();
            pre.language = class.strip_prefix("language-").map(str::to_owned);
        }
        if verbatim {
            open.kind = None;
        }
        self.open.push(open);
        Ok(())
    }

    fn close(&mut self, name: &str, offset: usize) -> Result<(), String> {
        let Some(open) = self.open.pop() else {
            return Err(format!("Unexpected end tag at byte offset {offset}"));
        };
        if open.name != name {
            let expected = &open.name;
            return Err(format!(
                "Unmatched end tag at byte offset {offset}, expected \"</{expected}>\", \
                 found \"</{name}>\""
            ));
        }

        let length = self.units - open.start;
        if let (Some(kind), true) = (open.kind, length > 0) {
            self.out.entities.push(Entity {
                kind,
                offset: open.start,
                length,
                url: open.url,
                language: open.language,
            });
        }
        Ok(())
    }
}

/// Byte index of the `>` that ends the tag opening `rest`, skipping quotes.
fn tag_end(rest: &str) -> Option<usize> {
    let mut quote = None;
    for (i, c) in rest.char_indices().skip(1) {
        match (quote, c) {
            (Some(q), _) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '>') => return Some(i),
            (None, '<') => return None,
            (None, _) => {}
        }
    }
    None
}

/// Parses `name="value"` pairs; values may be quoted either way or bare.
fn attributes(mut rest: &str, offset: usize) -> Result<Vec<(String, String)>, String> {
    let mut found = Vec::new();
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            return Ok(found);
        }
        let name_len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .unwrap_or(rest.len());
        if name_len == 0 {
            return Err(format!("Expected attribute name at byte offset {offset}"));
        }
        let name = rest[..name_len].to_ascii_lowercase();
        rest = rest[name_len..].trim_start();

        let mut raw = "";
        if let Some(after) = rest.strip_prefix('=') {
            let after = after.trim_start();
            let quote = after.chars().next().filter(|q| *q == '"' || *q == '\'');
            let (value, tail) = match quote {
                Some(q) => match after[1..].find(q) {
                    Some(close) => (&after[1..=close], &after[close + 2..]),
                    None => {
                        return Err(format!("Unclosed attribute value at byte offset {offset}"));
                    }
                },
                None => after.split_at(after.find(char::is_whitespace).unwrap_or(after.len())),
            };
            raw = value;
            rest = tail;
        }
        found.push((name, decode(raw, offset)?));
    }
}

/// Replaces the character entities in an attribute value.
fn decode(raw: &str, offset: usize) -> Result<String, String> {
    let mut decoded = String::with_capacity(raw.len());
    let mut pos = 0;
    while let Some(c) = raw[pos..].chars().next() {
        if c != '&' {
            decoded.push(c);
            pos += c.len_utf8();
            continue;
        }
        let (c, len) = entity_at(&raw[pos..], offset)?;
        decoded.push(c);
        pos += len;
    }
    Ok(decoded)
}

/// Decodes the character entity opening `rest`: the four named ones Telegram
/// knows, or a numeric one. Returns the character and the entity's byte length.
fn entity_at(rest: &str, offset: usize) -> Result<(char, usize), String> {
    let window: String = rest.chars().take(12).collect();
    let Some(end) = window.find(';') else {
        return Err(format!(
            "character '&' is reserved and must be escaped at byte offset {offset}"
        ));
    };

    let name = &window[1..end];
    let decoded = match name {
        "lt" => Some('<'),
        "gt" => Some('>'),
        "amp" => Some('&'),
        "quot" => Some('"'),
        _ => match name.strip_prefix('#') {
            Some(hex) if hex.starts_with(['x', 'X']) => u32::from_str_radix(&hex[1..], 16).ok(),
            Some(decimal) => decimal.parse().ok(),
            None => None,
        }
        .and_then(char::from_u32),
    };
    match decoded {
        Some(c) => Ok((c, end + 1)),
        None => Err(format!(
            "Unsupported HTML entity \"&{name};\" at byte offset {offset}"
        )),
    }
}
