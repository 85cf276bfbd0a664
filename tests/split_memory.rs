//! Planning a 64 MB answer needs only a few times its size in memory.
//!
//! The peak is the kernel's (`VmHWM` in `/proc/self/status`, reset through
//! `/proc/self/clear_refs`): a counting global allocator would need an
//! `unsafe impl`, which the crate's `unsafe_code = "forbid"` rules out. The
//! file holds a single test so nothing else runs in the process meanwhile.

use claude_telegram_bot::telegram::answer::{self, AnswerPlan};

const ANSWER_BYTES: usize = 64 * 1024 * 1024;

/// Peak memory allowed on top of the answer itself, in answer sizes.
const MAX_EXTRA: f64 = 3.0;

/// One stretch of a typical long answer: prose, a list, a quote, code.
const SAMPLE: &str = "## A section\n\n\
    Some **bold** and *italic* text with `inline code`, a \
    [link](https://example.org/?a=1&b=2) and escapes: a < b & c > d.\n\n\
    - first item\n- second item with `code`\n  1. nested\n\n\
    > a quoted line\n\n\
    ```rust\nfn main() {\n    println!(\"{}\", 1 << 4);\n}\n```\n\n";

/// A value from `/proc/self/status`, in bytes.
fn status_bytes(field: &str) -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("procfs");
    let line = status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"));
    let kib: usize = line
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .expect("a number");
    kib * 1024
}

/// An answer of `ANSWER_BYTES` made of `stretch` over and over.
fn long_answer(stretch: &str) -> String {
    // Built in place, so making it raises the peak no higher than its size.
    let mut markdown = String::with_capacity(ANSWER_BYTES);
    while markdown.len() + stretch.len() <= ANSWER_BYTES {
        markdown.push_str(stretch);
    }
    markdown
}

/// Plans `markdown`, returning the plan and the peak memory it took on top
/// of what was in use before, in sizes of `markdown`.
fn plan_measured(markdown: &str) -> (AnswerPlan, f64) {
    // Where resetting the peak is not allowed, the peak so far is about
    // the answer just built, which stays in use.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let before = status_bytes("VmRSS");
    let plan = answer::plan(markdown, 8);
    let peak = status_bytes("VmHWM");
    let extra = peak.saturating_sub(before) as f64 / markdown.len() as f64;
    (plan, extra)
}

fn assert_cut_document(plan: &AnswerPlan) {
    let AnswerPlan::Document {
        contents,
        truncated,
        ..
    } = plan
    else {
        panic!("a 64 MB answer planned as messages");
    };
    assert!(*truncated);
    assert!(contents.len() <= answer::UPLOAD_LIMIT);
}

#[test]
fn plans_a_64_mb_answer_within_three_times_its_size() {
    // A typical answer, and one of long link targets that shows little text
    // (so it would fit in a few messages and takes most rendering to judge).
    let link = "[x](https://example.org/a/rather/long/path/to/some/page?q=1)\n\n";
    for stretch in [SAMPLE, link] {
        let markdown = long_answer(stretch);
        let (plan, extra) = plan_measured(&markdown);
        eprintln!("peak extra memory: {extra:.2} times the answer's size");
        assert!(extra < MAX_EXTRA, "peak extra memory {extra:.2}x");
        assert_cut_document(&plan);
    }
}
