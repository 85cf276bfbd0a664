//! Telegram's HTML parse mode as the Bot API double applies it.

use crate::support::telegram_html::{Entity, parse};

fn entity(kind: &'static str, offset: usize, length: usize) -> Entity {
    Entity {
        kind,
        offset,
        length,
        url: None,
        language: None,
    }
}

#[test]
fn offsets_count_utf16_units_and_outer_entities_come_first() {
    let parsed = parse("😀 <B>bold <i>both</i></B> <a href='https://x.y'>x</a>").expect("valid");

    assert_eq!(parsed.text, "😀 bold both x");
    let link = Entity {
        url: Some("https://x.y".to_owned()),
        ..entity("text_link", 13, 1)
    };
    let expected = [entity("bold", 3, 9), entity("italic", 8, 4), link];
    assert_eq!(parsed.entities, expected);
}

#[test]
fn tags_inside_code_give_no_entities_but_must_still_be_closed() {
    let parsed = parse("<pre><b>x</b></pre> <code><i>y</i></code>").expect("valid");

    assert_eq!(parsed.text, "x y");
    assert_eq!(parsed.entities, [entity("pre", 0, 1), entity("code", 2, 1)]);
    assert!(parse("<code><b>y</code>").is_err());
}

#[test]
fn errors_name_the_offending_tag_and_its_byte_offset() {
    let unsupported = parse("ok <br> no").expect_err("br is not supported");
    let unmatched = parse("<b>x</i>").expect_err("crossed tags");
    let unclosed = parse("<i>x").expect_err("open tag");

    assert_eq!(unsupported, "Unsupported start tag \"br\" at byte offset 3");
    assert!(
        unmatched.starts_with("Unmatched end tag at byte offset 4"),
        "{unmatched}"
    );
    assert!(unclosed.contains("\"i\""), "{unclosed}");
}

#[test]
fn empty_entities_are_dropped_and_escapes_decoded() {
    let parsed = parse("<b></b>&lt;&gt;&amp;&quot;&#65;&#x42;").expect("valid");

    assert_eq!(parsed.text, "<>&\"AB");
    assert!(parsed.entities.is_empty());
}
