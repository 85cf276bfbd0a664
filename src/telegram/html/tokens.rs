//! Reading and writing the text of Telegram HTML: escaping, the token
//! stream (whole tags, or characters with entities decoded) and plain text.

/// One piece of Telegram HTML: a whole tag, or one character of text with
/// its entity already decoded.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Token<'a> {
    Tag(&'a str),
    Char(char),
}

/// The tokens of `html`, each with the byte offset where it ends.
///
/// A `<` that starts no tag and an `&` that starts no known entity are text.
pub(crate) fn tokens(html: &str) -> impl Iterator<Item = (usize, Token<'_>)> {
    let mut pos = 0;
    std::iter::from_fn(move || {
        let (token, len) = next_token(&html[pos..])?;
        pos += len;
        Some((pos, token))
    })
}

/// Strips the tags of Telegram HTML and decodes its entities.
pub fn to_plain_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    for (_, token) in tokens(html) {
        if let Token::Char(c) = token {
            out.push(c);
        }
    }
    out
}

/// Escapes text for use between Telegram HTML tags.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    push_escaped(&mut out, text, false);
    out
}

/// Appends `text` escaped; `attribute` also escapes the double quote.
pub(crate) fn push_escaped(out: &mut String, text: &str, attribute: bool) {
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' if attribute => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
}

/// The first token of `html` and its length in bytes.
fn next_token(html: &str) -> Option<(Token<'_>, usize)> {
    let c = html.chars().next()?;
    if c == '<'
        && let Some(len) = tag_len(html)
    {
        return Some((Token::Tag(&html[..len]), len));
    }
    if c == '&'
        && let Some((decoded, len)) = entity(html)
    {
        return Some((Token::Char(decoded), len));
    }
    Some((Token::Char(c), c.len_utf8()))
}

/// Length of the tag that starts `html`, if it starts with one.
fn tag_len(html: &str) -> Option<usize> {
    let after = *html.as_bytes().get(1)?;
    if !(after.is_ascii_alphabetic() || after == b'/') {
        return None;
    }
    // Stopping at the next `<` keeps a run of lone `<` linear to read.
    let end = html[1..].find(['<', '>'])? + 1;
    (html.as_bytes()[end] == b'>').then_some(end + 1)
}

/// The character an entity at the start of `html` stands for, and its length.
fn entity(html: &str) -> Option<(char, usize)> {
    let head = &html.as_bytes()[..html.len().min(12)];
    let end = head.iter().position(|&b| b == b';')?;
    let decoded = match &html[1..end] {
        "lt" => '<',
        "gt" => '>',
        "amp" => '&',
        "quot" => '"',
        "apos" => '\'',
        name => {
            let number = name.strip_prefix('#')?;
            let code = match number.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => number.parse().ok()?,
            };
            char::from_u32(code)?
        }
    };
    Some((decoded, end + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_drops_tags_and_decodes_entities() {
        let html = "<b>a &lt;b&gt;</b> &amp; <a href=\"x?a=1&amp;b\">&#x1F600;&#65;</a>";
        assert_eq!(to_plain_text(html), "a <b> & 😀A");
    }

    #[test]
    fn plain_text_keeps_what_only_looks_like_markup() {
        let html = "1 < 2 && 3 <4 &unknown; &#xZZ; a&b";
        assert_eq!(to_plain_text(html), html);
    }

    #[test]
    fn escaping_then_reading_gives_the_text_back() {
        let text = "if a < b && c > d { \"quoted\" } <b>not bold</b> &amp;";
        let escaped = escape(text);
        assert!(!escaped.contains('<') && !escaped.contains('>'));
        assert_eq!(to_plain_text(&escaped), text);
    }

    #[test]
    fn tokens_end_where_each_piece_ends() {
        let ends: Vec<usize> = tokens("<i>é&amp;</i>").map(|(end, _)| end).collect();
        assert_eq!(ends, [3, 5, 10, 14]);
    }
}
