//! Splitting checked the way Telegram checks a message.

use super::*;
use crate::telegram::html::{render, to_plain_text};

/// Checks what Telegram checks: known tags, properly nested and closed,
/// no quote in a quote, visible text within the limit and not blank.
fn assert_sendable(chunk: &str, limit: usize) {
    let known = ["b", "i", "u", "s", "code", "pre", "a", "blockquote"];
    let mut open: Vec<&str> = Vec::new();
    for (_, token) in tokens(chunk) {
        let Token::Tag(tag) = token else { continue };
        match tag.strip_prefix("</") {
            Some(name) => {
                let name = name.trim_end_matches('>');
                assert_eq!(open.pop(), Some(name), "misnested in {chunk:?}");
            }
            None => {
                let name = tag_name(tag);
                assert!(known.contains(&name), "unknown tag in {chunk:?}");
                let quoted = name == "blockquote" && open.contains(&name);
                assert!(!quoted, "nested quote in {chunk:?}");
                open.push(name);
            }
        }
    }
    assert!(open.is_empty(), "unclosed {open:?} in {chunk:?}");
    assert!(visible_len(chunk) <= limit, "too long: {chunk:?}");
    assert!(!to_plain_text(chunk).trim().is_empty(), "blank: {chunk:?}");
}

/// Checks that the chunks' plain texts are `whole` in order, missing
/// at most a run of newlines or one space at each cut.
fn assert_pieces_of(whole: &str, chunks: &[String]) {
    let mut rest = whole;
    for chunk in chunks {
        let plain = to_plain_text(chunk);
        let gap = if rest.starts_with(&plain) {
            0
        } else if rest.starts_with(' ') && rest[1..].starts_with(&plain) {
            1
        } else {
            let newlines = rest.len() - rest.trim_start_matches('\n').len();
            assert!(newlines > 0, "{plain:?} is not next in {rest:?}");
            newlines
        };
        rest = &rest[gap..];
        assert!(
            rest.starts_with(&plain),
            "{plain:?} is not next in {rest:?}"
        );
        rest = &rest[plain.len()..];
    }
    assert!(rest.trim().is_empty(), "left over: {rest:?}");
}

fn assert_split_well(html: &str, limit: usize) -> Vec<String> {
    let chunks = split(html, limit);
    for chunk in &chunks {
        assert_sendable(chunk, limit);
    }
    assert_pieces_of(&to_plain_text(html), &chunks);
    chunks
}

fn sample_markdown(paragraphs: usize) -> String {
    let mut markdown = String::new();
    for i in 0..paragraphs {
        markdown.push_str(&format!(
            "## Part {i}\n\nSome **bold {i}** and *italic* text with `code` \
             and [a link](https://example.org/?i={i}&x=\"y\"), then \
             more words: a < b & c > d.\n\n- item one\n- item *two*\n  \
             1. nested\n\n> quoted line {i}\n> second line\n\n\
             ```rust\nfn f{i}() -> u32 {{\n    {i}\n}}\n```\n\n"
        ));
    }
    markdown
}

#[test]
fn keeps_a_short_text_in_one_chunk() {
    assert_eq!(split("<b>hi</b> there", MESSAGE_LIMIT), ["<b>hi</b> there"]);
}

#[test]
fn makes_no_chunk_of_blank_text() {
    assert!(split("", 10).is_empty());
    assert!(split(" \n\n <b> </b>\n", 10).is_empty());
}

#[test]
fn cuts_a_long_line_without_losing_text() {
    let line: String = ('a'..='z').cycle().take(5000).collect();
    let chunks = assert_split_well(&line, MESSAGE_LIMIT);
    assert_eq!(chunks.len(), 2);
    assert_eq!(chunks.concat(), line);
}

#[test]
fn cuts_a_long_line_of_words_at_a_space() {
    let line = "word ".repeat(1000);
    let chunks = assert_split_well(line.trim_end(), MESSAGE_LIMIT);
    assert_eq!(chunks.len(), 2);
    assert!(chunks[0].ends_with("word") && chunks[1].starts_with("word"));
}

#[test]
fn never_splits_a_surrogate_pair() {
    let emoji = "😀".repeat(2500);
    let chunks = assert_split_well(&emoji, MESSAGE_LIMIT);
    let units: Vec<usize> = chunks.iter().map(|c| visible_len(c)).collect();
    assert_eq!(units, [4096, 904]);
    assert_eq!(chunks.concat(), emoji);
}

#[test]
fn gives_a_character_wider_than_the_limit_its_own_chunk() {
    assert_eq!(split("😀😀", 1), ["😀", "😀"]);
}

#[test]
fn counts_an_entity_as_one_character() {
    let html = "&amp;".repeat(10);
    let chunks = assert_split_well(&html, 4);
    assert_eq!(
        chunks,
        ["&amp;".repeat(4), "&amp;".repeat(4), "&amp;".repeat(2)]
    );
}

#[test]
fn reopens_a_code_block_with_its_language_in_every_chunk() {
    let lines: Vec<String> = (0..300)
        .map(|i| format!("let value_{i} = compute({i}) * 2; // line {i}"))
        .collect();
    let markdown = format!("Intro.\n\n```python\n{}\n```\n", lines.join("\n"));
    let html = render(&markdown);
    let chunks = assert_split_well(&html, MESSAGE_LIMIT);

    assert!(chunks.len() >= 3);
    let opening = "<pre><code class=\"language-python\">";
    assert!(chunks[0].starts_with("Intro.\n\n<pre>"));
    for chunk in &chunks[1..] {
        assert!(chunk.starts_with(opening), "{chunk:.60}");
    }
    assert!(chunks.iter().all(|c| c.ends_with("</code></pre>")));
    let whole = to_plain_text(&html);
    let shown: usize = chunks.iter().map(|c| to_plain_text(c).len()).sum();
    assert_eq!(whole.len() - shown, chunks.len() - 1, "one newline per cut");
}

#[test]
fn prefers_a_blank_line_then_a_line_end_then_a_space() {
    let a = "a".repeat(30);
    let html = format!("{a} {a}\n{a}\n\n{a} {a}");
    assert_eq!(
        split(&html, 100),
        [format!("{a} {a}\n{a}"), format!("{a} {a}")]
    );
    let html = format!("{a} {a}\n{a} {a}");
    assert_eq!(split(&html, 100), [format!("{a} {a}"), format!("{a} {a}")]);
}

#[test]
fn skips_a_blank_line_too_early_in_the_chunk() {
    let words = "word ".repeat(40);
    let html = format!("Intro:\n\n{}", words.trim_end());
    let chunks = assert_split_well(&html, 100);
    assert!(chunks[0].starts_with("Intro:\n\nword"), "{:?}", chunks[0]);
}

#[test]
fn closes_and_reopens_a_link_and_bold_text() {
    let words = "many words ".repeat(20);
    let html = format!("<a href=\"https://x.org/?a&amp;b\"><b>{words}</b></a>");
    let chunks = assert_split_well(&html, 50);
    assert!(chunks.len() > 2);
    for chunk in &chunks {
        assert!(chunk.starts_with("<a href=\"https://x.org/?a&amp;b\"><b>"));
        assert!(chunk.ends_with("</b></a>"));
    }
}

#[test]
fn starts_no_chunk_with_an_empty_element() {
    assert_eq!(
        split("<b>aaa bbb</b> ccc <i>ddd</i>", 3),
        ["<b>aaa</b>", "<b>bbb</b>", "ccc", "<i>ddd</i>"]
    );
}

#[test]
fn splits_rendered_markdown_into_valid_chunks_at_any_limit() {
    let html = render(&sample_markdown(40));
    for limit in [20, 64, 333, MESSAGE_LIMIT] {
        let chunks = assert_split_well(&html, limit);
        assert!(chunks.len() > 1, "limit {limit}");
    }
}
