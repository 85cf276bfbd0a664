//! Markdown to Telegram HTML, and back to plain text.
//!
//! Telegram knows only `b i u s code pre a blockquote tg-spoiler`, so lists,
//! headings, tables and rules become text, and raw HTML in the Markdown is
//! shown escaped. Splitting the result into messages is [`super::chunks`].

mod renderer;
mod tokens;

use pulldown_cmark::{Options, Parser};

pub(crate) use tokens::{Token, tokens};
pub use tokens::{escape, to_plain_text};

/// Renders Markdown to Telegram HTML; every character of text is kept.
///
/// Blocks are separated by one blank line, lines inside lists by a newline.
pub fn render(markdown: &str) -> String {
    let options =
        Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS;
    let mut renderer = renderer::Renderer::with_capacity(markdown.len());
    for event in Parser::new_ext(markdown, options) {
        renderer.event(event);
    }
    renderer.out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_inline_formatting() {
        let html = render("**bold** *it* ~~gone~~ `a<b` [site](https://x.org/?a=1&b=\"2\")");
        assert_eq!(
            html,
            "<b>bold</b> <i>it</i> <s>gone</s> <code>a&lt;b</code> \
             <a href=\"https://x.org/?a=1&amp;b=&quot;2&quot;\">site</a>"
        );
    }

    #[test]
    fn renders_headings_as_bold_lines_between_blank_lines() {
        let html = render("# Title\n\nFirst line\nsecond line\n\n## Next");
        assert_eq!(
            html,
            "<b>Title</b>\n\nFirst line\nsecond line\n\n<b>Next</b>"
        );
    }

    #[test]
    fn renders_lists_as_indented_bullets_and_numbers() {
        let markdown = "- a\n- b\n  - inner\n\n  more of b\n\n3. three\n4. four\n";
        let html = render(markdown);
        assert_eq!(
            html,
            "• a\n• b\n   • inner\n   more of b\n\n3. three\n4. four"
        );
    }

    #[test]
    fn renders_task_lists_with_boxes() {
        assert_eq!(render("- [ ] todo\n- [x] done"), "• ☐ todo\n• ☑ done");
    }

    #[test]
    fn renders_code_blocks_with_their_language() {
        let html = render("```rust\nfn main() { a < b }\n```\n\n    indented\n");
        assert_eq!(
            html,
            "<pre><code class=\"language-rust\">fn main() { a &lt; b }</code></pre>\
             \n\n<pre>indented</pre>"
        );
    }

    #[test]
    fn keeps_odd_code_languages_out_of_the_attribute() {
        let html = render("```c\"><b>x\nint x;\n```");
        assert!(
            html.starts_with("<pre><code class=\"language-cbx\">"),
            "{html}"
        );
    }

    #[test]
    fn renders_one_quote_around_nested_quotes() {
        let html = render("> outer\n>\n> > inner\n\nafter");
        assert_eq!(html, "<blockquote>outer\n\ninner</blockquote>\n\nafter");
    }

    #[test]
    fn closes_a_quote_around_its_code_block() {
        let html = render("> before\n> ```\n> code\n> ```\n> after");
        assert_eq!(
            html,
            "<blockquote>before</blockquote>\n\n<pre>code</pre>\
             \n\n<blockquote>after</blockquote>"
        );
    }

    #[test]
    fn renders_tables_as_lines_of_cells() {
        let html = render("| a | *b* |\n|---|---|\n| 1 | `2` |\n| | 4 |");
        assert_eq!(html, "<b>a</b> | <b><i>b</i></b>\n1 | <code>2</code>\n | 4");
    }

    #[test]
    fn renders_rules_and_images_as_text_and_links() {
        let html = render("---\n\n![a chart](https://x.org/c.png) ![](https://x.org/d.png)");
        assert_eq!(
            html,
            format!(
                "{RULE}\n\n<a href=\"https://x.org/c.png\">a chart</a> \
                 <a href=\"https://x.org/d.png\">https://x.org/d.png</a>",
                RULE = "──────────"
            )
        );
    }

    #[test]
    fn escapes_link_targets_with_quotes_and_ampersands() {
        let html = render("[q](<https://x.org/a\"b?c=1&d=2>)");
        assert_eq!(html, "<a href=\"https://x.org/a&quot;b?c=1&amp;d=2\">q</a>");
    }

    #[test]
    fn shows_links_telegram_cannot_follow_as_text_with_their_target() {
        let html = render("[main](src/main.rs) [src/lib.rs](src/lib.rs) <a@b.org>");
        assert_eq!(html, "main (src/main.rs) src/lib.rs a@b.org");
    }

    #[test]
    fn keeps_code_inside_links_as_text() {
        let html = render("[`cargo` docs](https://doc.rust-lang.org/cargo)");
        assert_eq!(
            html,
            "<a href=\"https://doc.rust-lang.org/cargo\">cargo docs</a>"
        );
    }

    #[test]
    fn escapes_special_characters_without_stray_formatting() {
        let markdown = "a < b > c & d, snake_case_name, 2 * 3, [x] and y_ *";
        let html = render(markdown);
        assert!(!html.contains('<') && !html.contains('>'), "{html}");
        assert_eq!(to_plain_text(&html), markdown);
    }

    #[test]
    fn shows_raw_html_as_text() {
        let markdown = "<div>\n<b>not bold</b>\n</div>\n\nan <i>inline</i> tag";
        let html = render(markdown);
        assert_eq!(
            html,
            "&lt;div&gt;\n&lt;b&gt;not bold&lt;/b&gt;\n&lt;/div&gt;\
             \n\nan &lt;i&gt;inline&lt;/i&gt; tag"
        );
    }

    #[test]
    fn leaves_out_empty_elements() {
        assert_eq!(render("a ** ** b\n\n```\n```\n\nc"), "a ** ** b\n\nc");
    }

    #[test]
    fn keeps_every_word_of_the_markdown_in_order() {
        let markdown = "# Head one\n\nText *em* **strong** ~~del~~ `code`.\n\n\
            1. first\n2. second\n   - deep\n\n> quote\n> > deeper\n\n\
            | h1 | h2 |\n|----|----|\n| c1 | c2 |\n\n\
            ```sh\necho shell\n```\n\n<p>html block</p>\n\n\
            ![alt words](https://x.org/i.png) [label](doc/file.md) end\n";
        let words = |text: &str| -> Vec<String> {
            text.split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let shown = words(&to_plain_text(&render(markdown)));
        let mut rest = shown.iter();
        for word in words(markdown) {
            // Link targets and code languages live in attributes.
            let in_attributes = ["https", "x", "org", "i", "png", "sh"];
            if in_attributes.contains(&word.as_str()) {
                continue;
            }
            assert!(rest.any(|w| *w == word), "lost {word:?} from {shown:?}");
        }
    }
}
