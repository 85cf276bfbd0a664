use std::collections::HashMap;

use tempfile::TempDir;

use super::*;

/// A scratch workspace with a `proj` directory inside and a file beside it.
fn workspace() -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("proj")).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
    dir
}

fn read(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_lookup(|name| vars.get(name).cloned())
}

fn problems(vars: &[(&str, &str)]) -> Vec<String> {
    read(vars).unwrap_err().problems
}

fn canonical(path: &Path) -> PathBuf {
    path.canonicalize().unwrap()
}

#[test]
fn fills_in_defaults_when_only_the_token_is_set() {
    let config = read(&[(TELEGRAM_BOT_TOKEN, "123:abc")]).unwrap();
    let cwd = canonical(&std::env::current_dir().unwrap());

    assert_eq!(config.telegram_token, "123:abc");
    assert_eq!(config.telegram_api_url, "https://api.telegram.org");
    assert!(config.allowed_user_ids.is_empty());
    assert!(!config.allows(1));
    assert_eq!(config.claude_bin, PathBuf::from("claude"));
    assert_eq!(config.working_directory, cwd);
    assert_eq!(config.workspace_root, cwd);
    assert_eq!(config.database_path, PathBuf::from("./data/bot.sqlite3"));
    assert_eq!(config.claude_model, None);
    assert_eq!(config.allowed_tools, ["Read", "Write", "Edit", "Bash"]);
    assert_eq!(config.permission_mode, "default");
    assert_eq!(config.max_turns, None);
    assert_eq!(config.claude_timeout, Duration::from_secs(900));
    assert_eq!(config.max_concurrent_runs, 4);
    assert_eq!(config.long_answer_messages, 8);
    assert_eq!(config.progress_edit_interval, Duration::from_millis(1500));
    assert_eq!(config.max_queued_per_chat, 5);
    assert_eq!(config.shutdown_grace, Duration::from_secs(20));
    assert_eq!(config.sentry.dsn, None);
    assert_eq!(config.sentry.environment, "production");
    let release = format!("claude-telegram-bot@{}", env!("CARGO_PKG_VERSION"));
    assert_eq!(config.sentry.release, release);
    assert_eq!(config.sentry.traces_sample_rate, 1.0);
    assert!(!config.sentry.send_default_pii);
}

#[test]
fn reads_every_variable_when_set() {
    let root = workspace();
    let proj = root.path().join("proj");
    let config = read(&[
        (TELEGRAM_BOT_TOKEN, "t"),
        (TELEGRAM_API_URL, "http://127.0.0.1:8081/"),
        (ALLOWED_USER_IDS, " 42, 7 ,,"),
        (CLAUDE_BIN, "/opt/claude"),
        (WORKSPACE_ROOT, root.path().to_str().unwrap()),
        (WORKING_DIRECTORY, proj.to_str().unwrap()),
        (DATABASE_PATH, "/var/lib/bot.db"),
        (CLAUDE_MODEL, "claude-sonnet-4-5"),
        (CLAUDE_ALLOWED_TOOLS, "Read, Grep"),
        (CLAUDE_PERMISSION_MODE, "acceptEdits"),
        (CLAUDE_MAX_TURNS, "12"),
        (CLAUDE_TIMEOUT_SECS, "60"),
        (MAX_CONCURRENT_RUNS, "2"),
        (LONG_ANSWER_MESSAGES, "3"),
        (PROGRESS_EDIT_SECS, "0.25"),
        (MAX_QUEUED_PER_CHAT, "0"),
        (SHUTDOWN_GRACE_SECS, "0"),
        (SENTRY_DSN, "http://key@127.0.0.1:9/1"),
        (SENTRY_ENVIRONMENT, "staging"),
        (SENTRY_RELEASE, "bot@test"),
        (SENTRY_TRACES_SAMPLE_RATE, "0.5"),
        (SENTRY_SEND_DEFAULT_PII, "YES"),
    ])
    .unwrap();

    assert_eq!(config.telegram_api_url, "http://127.0.0.1:8081");
    assert_eq!(config.allowed_user_ids, BTreeSet::from([7, 42]));
    assert!(config.allows(42) && config.allows(7) && !config.allows(8));
    assert_eq!(config.claude_bin, PathBuf::from("/opt/claude"));
    assert_eq!(config.workspace_root, canonical(root.path()));
    assert_eq!(config.working_directory, canonical(&proj));
    assert_eq!(config.database_path, PathBuf::from("/var/lib/bot.db"));
    assert_eq!(config.claude_model.as_deref(), Some("claude-sonnet-4-5"));
    assert_eq!(config.allowed_tools, ["Read", "Grep"]);
    assert_eq!(config.permission_mode, "acceptEdits");
    assert_eq!(config.max_turns, Some(12));
    assert_eq!(config.claude_timeout, Duration::from_secs(60));
    assert_eq!(config.max_concurrent_runs, 2);
    assert_eq!(config.long_answer_messages, 3);
    assert_eq!(config.progress_edit_interval, Duration::from_millis(250));
    assert_eq!(config.max_queued_per_chat, 0);
    assert_eq!(config.shutdown_grace, Duration::ZERO);
    let dsn = config.sentry.dsn.as_deref();
    assert_eq!(dsn, Some("http://key@127.0.0.1:9/1"));
    assert_eq!(config.sentry.environment, "staging");
    assert_eq!(config.sentry.release, "bot@test");
    assert_eq!(config.sentry.traces_sample_rate, 0.5);
    assert!(config.sentry.send_default_pii);
}

#[test]
fn treats_empty_values_as_unset() {
    let config = read(&[
        (TELEGRAM_BOT_TOKEN, "t"),
        (CLAUDE_MODEL, ""),
        (CLAUDE_MAX_TURNS, " "),
        (SENTRY_DSN, ""),
        (CLAUDE_ALLOWED_TOOLS, ""),
    ])
    .unwrap();

    assert_eq!(config.claude_model, None);
    assert_eq!(config.max_turns, None);
    assert_eq!(config.sentry.dsn, None);
    assert_eq!(config.allowed_tools.len(), 4);
}

#[test]
fn accepts_the_token_under_its_alias() {
    let config = read(&[(TELEGRAM_BOT_API_KEY, "alias-token")]).unwrap();
    assert_eq!(config.telegram_token, "alias-token");

    let both = [
        (TELEGRAM_BOT_TOKEN, "main"),
        (TELEGRAM_BOT_API_KEY, "alias"),
    ];
    assert_eq!(read(&both).unwrap().telegram_token, "main");
}

#[test]
fn reports_a_missing_token() {
    let found = problems(&[(TELEGRAM_BOT_TOKEN, "")]);
    assert_eq!(found.len(), 1);
    assert!(found[0].starts_with("TELEGRAM_BOT_TOKEN is not set"));
    assert!(found[0].contains(TELEGRAM_BOT_API_KEY));
}

#[test]
fn reports_a_user_id_that_is_not_a_number() {
    let found = problems(&[(TELEGRAM_BOT_TOKEN, "t"), (ALLOWED_USER_IDS, "1,abc,-3")]);
    assert_eq!(
        found,
        [
            "ALLOWED_USER_IDS: \"abc\" is not a numeric Telegram user id; \
             list ids separated by commas",
            "ALLOWED_USER_IDS: \"-3\" is not a numeric Telegram user id; \
             list ids separated by commas",
        ]
    );
}

#[test]
fn reports_a_workspace_root_that_is_missing_or_a_file() {
    let dir = workspace();
    let missing = dir.path().join("gone");
    let file = dir.path().join("notes.txt");

    let found = problems(&[
        (TELEGRAM_BOT_TOKEN, "t"),
        (WORKSPACE_ROOT, missing.to_str().unwrap()),
    ]);
    assert_eq!(found.len(), 1);
    assert!(found[0].starts_with("WORKSPACE_ROOT: "));
    assert!(found[0].contains("does not exist"));

    let found = problems(&[
        (TELEGRAM_BOT_TOKEN, "t"),
        (WORKSPACE_ROOT, file.to_str().unwrap()),
    ]);
    assert_eq!(found.len(), 1);
    assert!(found[0].contains("is not a directory"));
}

#[test]
fn reports_a_working_directory_that_is_missing() {
    let dir = workspace();
    let missing = dir.path().join("gone");
    let found = problems(&[
        (TELEGRAM_BOT_TOKEN, "t"),
        (WORKSPACE_ROOT, dir.path().to_str().unwrap()),
        (WORKING_DIRECTORY, missing.to_str().unwrap()),
    ]);

    assert_eq!(found.len(), 1);
    assert!(found[0].starts_with("WORKING_DIRECTORY: "));
    assert!(found[0].contains("does not exist"));
}

#[test]
fn reports_a_working_directory_outside_the_workspace_root() {
    let root = workspace();
    let elsewhere = tempfile::tempdir().unwrap();
    let found = problems(&[
        (TELEGRAM_BOT_TOKEN, "t"),
        (WORKSPACE_ROOT, root.path().join("proj").to_str().unwrap()),
        (WORKING_DIRECTORY, elsewhere.path().to_str().unwrap()),
    ]);

    assert_eq!(found.len(), 1);
    assert!(found[0].starts_with("WORKING_DIRECTORY: "));
    assert!(found[0].contains("is outside WORKSPACE_ROOT"));
}

#[test]
fn follows_symlinks_before_comparing_directories() {
    let root = workspace();
    let elsewhere = tempfile::tempdir().unwrap();
    let link = root.path().join("link");
    std::os::unix::fs::symlink(elsewhere.path(), &link).unwrap();

    let found = problems(&[
        (TELEGRAM_BOT_TOKEN, "t"),
        (WORKSPACE_ROOT, root.path().to_str().unwrap()),
        (WORKING_DIRECTORY, link.to_str().unwrap()),
    ]);
    assert_eq!(found.len(), 1);
    assert!(found[0].contains("is outside WORKSPACE_ROOT"));

    let inside = root.path().join("inside");
    std::os::unix::fs::symlink(root.path().join("proj"), &inside).unwrap();
    let config = read(&[
        (TELEGRAM_BOT_TOKEN, "t"),
        (WORKSPACE_ROOT, root.path().to_str().unwrap()),
        (WORKING_DIRECTORY, inside.to_str().unwrap()),
    ])
    .unwrap();
    assert_eq!(
        config.working_directory,
        canonical(&root.path().join("proj"))
    );
}

#[test]
fn reports_numbers_that_are_bad_or_too_small() {
    let found = problems(&[
        (TELEGRAM_BOT_TOKEN, "t"),
        (CLAUDE_MAX_TURNS, "0"),
        (CLAUDE_TIMEOUT_SECS, "ten"),
        (MAX_CONCURRENT_RUNS, "0"),
        (LONG_ANSWER_MESSAGES, "-1"),
        (PROGRESS_EDIT_SECS, "0"),
        (MAX_QUEUED_PER_CHAT, "2.5"),
        (SHUTDOWN_GRACE_SECS, "forever"),
    ]);

    assert_eq!(found.len(), 7, "{found:#?}");
    for name in [
        CLAUDE_MAX_TURNS,
        CLAUDE_TIMEOUT_SECS,
        MAX_CONCURRENT_RUNS,
        LONG_ANSWER_MESSAGES,
        PROGRESS_EDIT_SECS,
        MAX_QUEUED_PER_CHAT,
        SHUTDOWN_GRACE_SECS,
    ] {
        let prefix = format!("{name}: ");
        assert!(found.iter().any(|p| p.starts_with(&prefix)), "{name}");
    }
    let timeout = found.iter().find(|p| p.starts_with(CLAUDE_TIMEOUT_SECS));
    assert!(
        timeout
            .unwrap()
            .contains("\"ten\" is not a whole number of at least 1")
    );
}

#[test]
fn reports_a_bad_api_url() {
    let found = problems(&[(TELEGRAM_BOT_TOKEN, "t"), (TELEGRAM_API_URL, "api.local")]);
    assert_eq!(found.len(), 1);
    assert!(found[0].starts_with("TELEGRAM_API_URL: \"api.local\""));
}

#[test]
fn reports_a_sample_rate_outside_zero_to_one() {
    for rate in ["1.5", "-0.1", "NaN", "half"] {
        let found = problems(&[(TELEGRAM_BOT_TOKEN, "t"), (SENTRY_TRACES_SAMPLE_RATE, rate)]);
        assert_eq!(found.len(), 1, "{rate}");
        assert!(found[0].starts_with(SENTRY_TRACES_SAMPLE_RATE), "{rate}");
    }
    let edge = [(TELEGRAM_BOT_TOKEN, "t"), (SENTRY_TRACES_SAMPLE_RATE, "0")];
    assert_eq!(read(&edge).unwrap().sentry.traces_sample_rate, 0.0);
}

#[test]
fn reads_booleans_in_their_usual_spellings() {
    let cases = [("true", true), ("1", true), ("No", false), ("0", false)];
    for (text, expected) in cases {
        let vars = [(TELEGRAM_BOT_TOKEN, "t"), (SENTRY_SEND_DEFAULT_PII, text)];
        assert_eq!(read(&vars).unwrap().sentry.send_default_pii, expected);
    }

    let found = problems(&[
        (TELEGRAM_BOT_TOKEN, "t"),
        (SENTRY_SEND_DEFAULT_PII, "maybe"),
    ]);
    assert_eq!(
        found,
        ["SENTRY_SEND_DEFAULT_PII: \"maybe\" is not a boolean; use true or false"]
    );
}

#[test]
fn reports_every_problem_together() {
    let dir = workspace();
    let missing = dir.path().join("gone");
    let err = read(&[
        (ALLOWED_USER_IDS, "abc"),
        (WORKSPACE_ROOT, missing.to_str().unwrap()),
        (MAX_CONCURRENT_RUNS, "0"),
        (SENTRY_TRACES_SAMPLE_RATE, "2"),
        (SENTRY_SEND_DEFAULT_PII, "maybe"),
    ])
    .unwrap_err();

    assert_eq!(err.problems.len(), 6, "{err}");
    let shown = err.to_string();
    assert!(shown.starts_with("invalid configuration:\n  - "));
    assert_eq!(shown.lines().count(), 7);
    for name in [
        TELEGRAM_BOT_TOKEN,
        ALLOWED_USER_IDS,
        WORKSPACE_ROOT,
        MAX_CONCURRENT_RUNS,
        SENTRY_TRACES_SAMPLE_RATE,
        SENTRY_SEND_DEFAULT_PII,
    ] {
        assert!(shown.contains(name), "{name} missing from {shown}");
    }
}

#[test]
fn keeps_secrets_out_of_debug_output() {
    let config = read(&[
        (TELEGRAM_BOT_TOKEN, "123456:very-secret-token"),
        (SENTRY_DSN, "https://secret-key@o1.ingest.example/2"),
    ])
    .unwrap();
    let shown = format!("{config:?}");

    assert!(!shown.contains("very-secret-token"), "{shown}");
    assert!(!shown.contains("secret-key"), "{shown}");
    assert!(shown.contains("<redacted>"));
    assert!(shown.contains("production"));
}
