//! A scrubber for secrets that must never reach Sentry, even when the
//! operator chose to record prompts and tool output.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::Regex;

/// What a secret is replaced with.
pub const REDACTED: &str = "[redacted]";

/// Patterns of secrets, each with its replacement (which may keep a prefix).
static SECRETS: LazyLock<Vec<(Regex, String)>> = LazyLock::new(|| {
    let patterns = [
        // PEM private keys; a block cut off before its end marker is
        // scrubbed to the end of the text.
        (
            r"(?s)-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\z)",
            REDACTED.to_owned(),
        ),
        // Anthropic (sk-ant-…) and OpenAI (sk-…, sk-proj-…) API keys.
        (r"\bsk-[A-Za-z0-9_-]{20,}", REDACTED.to_owned()),
        (
            r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{8,}",
            format!("$1 {REDACTED}"),
        ),
        // Telegram bot tokens, also inside Bot API URLs (`/bot<token>/`).
        (r"\d{6,12}:[A-Za-z0-9_-]{35}", REDACTED.to_owned()),
        (
            r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})",
            REDACTED.to_owned(),
        ),
        (r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b", REDACTED.to_owned()),
        (
            r"(?i)(aws_secret_access_key\s*[=:]\s*)\S+",
            format!("${{1}}{REDACTED}"),
        ),
    ];
    patterns
        .into_iter()
        .map(|(pattern, replacement)| {
            let regex = Regex::new(pattern).expect("secret patterns are valid");
            (regex, replacement)
        })
        .collect()
});

/// `text` with API keys, bearer tokens, private key blocks, Telegram bot
/// tokens, GitHub tokens and AWS keys replaced by [`REDACTED`]. Borrows when
/// there was nothing to replace.
pub fn redact(text: &str) -> Cow<'_, str> {
    let mut text = Cow::Borrowed(text);
    for (pattern, replacement) in SECRETS.iter() {
        let replaced = match pattern.replace_all(&text, replacement.as_str()) {
            Cow::Owned(replaced) => Some(replaced),
            Cow::Borrowed(_) => None,
        };
        if let Some(replaced) = replaced {
            text = Cow::Owned(replaced);
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_scrubbed(secret: &str) {
        let text = format!("before {secret} after");
        let scrubbed = redact(&text);
        assert!(!scrubbed.contains(secret), "{secret} survived: {scrubbed}");
        assert!(scrubbed.contains(REDACTED), "{scrubbed}");
        assert!(scrubbed.starts_with("before "), "{scrubbed}");
    }

    #[test]
    fn scrubs_api_keys_of_anthropic_and_openai() {
        assert_scrubbed("sk-ant-api03-AbCdEf0123456789_-AbCdEf0123456789AbCdEf");
        assert_scrubbed("sk-proj-AbCdEf0123456789AbCdEf0123456789");
        assert_scrubbed("sk-AbCdEf0123456789AbCdEf0123456789AbCdEf01234567");
    }

    #[test]
    fn scrubs_bearer_tokens_but_keeps_the_scheme() {
        let scrubbed = redact("Authorization: Bearer eyJhbGciOi.J9eyJzdWIi.OiIxMjM0");
        assert_eq!(scrubbed, format!("Authorization: Bearer {REDACTED}"));
    }

    #[test]
    fn scrubs_private_key_blocks_even_without_their_end() {
        let block = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAA\n\
                     -----END OPENSSH PRIVATE KEY-----";
        assert_scrubbed(block);
        let cut = redact("key: -----BEGIN RSA PRIVATE KEY-----\nMIIEow");
        assert_eq!(cut, format!("key: {REDACTED}"));
    }

    #[test]
    fn scrubs_telegram_bot_tokens_also_inside_urls() {
        let token = "123456789:AAHfiqksKZ8WmR2zSjiQ7_v4TMAKdiHm9T0";
        assert_scrubbed(token);
        let url = format!("https://api.telegram.org/bot{token}/getMe");
        assert!(!redact(&url).contains(token));
    }

    #[test]
    fn scrubs_github_tokens_and_aws_keys() {
        assert_scrubbed("ghp_16C7e42F292c6912E7710c838347Ae178B4a");
        assert_scrubbed("github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz");
        assert_scrubbed("AKIAIOSFODNN7EXAMPLE");
        let secret = redact("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
        assert_eq!(secret, format!("aws_secret_access_key = {REDACTED}"));
    }

    #[test]
    fn leaves_ordinary_text_alone_and_borrowed() {
        let text = "run `ls -la` in /srv/work at 12:30, see task-1234 and sk-short";
        assert!(matches!(redact(text), Cow::Borrowed(t) if t == text));
    }
}
