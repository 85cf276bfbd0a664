use tempfile::TempDir;

use super::*;

fn scratch() -> (TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("bot.sqlite3")).unwrap();
    (dir, store)
}

fn figures(num_turns: u32) -> RunFigures {
    RunFigures {
        num_turns,
        input_tokens: 1_200,
        output_tokens: 345,
        cache_read_tokens: 20_000,
        cache_creation_tokens: 4_096,
        cost_usd: 0.0123,
        duration_ms: 8_765,
        finished_at: 1_700_000_000,
    }
}

fn prompt(chat_id: i64, message_id: i32, text: &str) -> NewPrompt<'_> {
    NewPrompt {
        chat_id,
        thread_id: None,
        message_id,
        user_id: 42,
        text,
    }
}

fn texts(pending: &[PendingPrompt]) -> Vec<&str> {
    pending.iter().map(|p| p.text.as_str()).collect()
}

#[test]
fn is_shareable_between_tasks() {
    fn shareable<T: Clone + Send + Sync + 'static>() {}
    shareable::<Store>();
}

#[test]
fn knows_nothing_of_a_new_chat() {
    let (_dir, store) = scratch();
    assert_eq!(store.chat(7).unwrap(), None);
    assert!(store.unfinished_since(0).unwrap().is_empty());
}

#[test]
fn keeps_directory_session_and_last_run_of_a_chat() {
    let (_dir, store) = scratch();
    let before = now();
    store
        .set_working_directory(-100, Path::new("/srv/work"))
        .unwrap();
    store
        .set_session(-100, Some("sess-1"), Path::new("/ignored"))
        .unwrap();
    store.record_run(-100, &figures(3)).unwrap();

    let state = store.chat(-100).unwrap().unwrap();
    assert_eq!(state.chat_id, -100);
    assert_eq!(state.working_directory, Path::new("/srv/work"));
    assert_eq!(state.session_id.as_deref(), Some("sess-1"));
    assert_eq!(state.last_run, Some(figures(3)));
    assert!(before <= state.created_at && state.created_at <= state.updated_at);
    assert!(state.updated_at <= now());
    assert_eq!(store.chat(-101).unwrap(), None, "other chats stay apart");
}

#[test]
fn starts_a_new_chat_in_the_default_directory() {
    let (_dir, store) = scratch();
    store
        .set_session(5, Some("s"), Path::new("/default"))
        .unwrap();
    store.set_session(5, None, Path::new("/other")).unwrap();

    let state = store.chat(5).unwrap().unwrap();
    assert_eq!(state.working_directory, Path::new("/default"));
    assert_eq!(state.session_id, None);
}

#[test]
fn forgets_the_session_when_the_directory_changes() {
    let (_dir, store) = scratch();
    store.set_session(5, Some("s"), Path::new("/a")).unwrap();
    store.set_working_directory(5, Path::new("/b")).unwrap();

    let state = store.chat(5).unwrap().unwrap();
    assert_eq!(state.working_directory, Path::new("/b"));
    assert_eq!(state.session_id, None);
}

#[test]
fn shows_the_latest_run_of_a_chat() {
    let (_dir, store) = scratch();
    store.set_working_directory(1, Path::new("/w")).unwrap();
    store.record_run(1, &figures(1)).unwrap();
    store.record_run(1, &figures(9)).unwrap();
    store.record_run(2, &figures(4)).unwrap();

    let last = store.chat(1).unwrap().unwrap().last_run.unwrap();
    assert_eq!(last.num_turns, 9);
}

#[test]
fn keeps_a_directory_that_is_not_utf8() {
    use std::os::unix::ffi::OsStrExt;
    let (_dir, store) = scratch();
    let odd = Path::new(std::ffi::OsStr::from_bytes(b"/srv/caf\xe9"));
    store.set_working_directory(1, odd).unwrap();

    assert_eq!(store.chat(1).unwrap().unwrap().working_directory, odd);
}

#[test]
fn keeps_state_and_journal_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/folder/bot.sqlite3");
    let store = Store::open(&path).unwrap();
    store.set_session(3, Some("kept"), Path::new("/w")).unwrap();
    store.record_run(3, &figures(2)).unwrap();
    let id = store.accept_prompt(&prompt(3, 10, "still to do")).unwrap();
    store.mark_started(id).unwrap();
    drop(store);

    let store = Store::open(&path).unwrap();
    let state = store.chat(3).unwrap().unwrap();
    assert_eq!(state.session_id.as_deref(), Some("kept"));
    assert_eq!(state.last_run, Some(figures(2)));
    let pending = store.unfinished_since(0).unwrap();
    assert_eq!(texts(&pending), ["still to do"]);
    assert!(pending[0].started);
}

#[test]
fn migrates_a_new_file_to_the_latest_version_with_wal() {
    let (dir, store) = scratch();
    drop(store);
    let db = Connection::open(dir.path().join("bot.sqlite3")).unwrap();

    let version: usize = db
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap();
    let mode: String = db
        .pragma_query_value(None, "journal_mode", |row| row.get(0))
        .unwrap();
    assert_eq!(version, MIGRATIONS.len());
    assert_eq!(mode, "wal");
}

#[test]
fn reports_what_it_was_doing_when_it_fails() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, "x").unwrap();

    let err = Store::open(blocker.join("bot.sqlite3")).unwrap_err();
    assert!(matches!(err, StoreError::Io { .. }));
    assert!(
        err.to_string().starts_with("creating the folder of "),
        "{err}"
    );
    assert!(std::error::Error::source(&err).is_some());
}

#[test]
fn walks_a_prompt_through_the_journal() {
    let (_dir, store) = scratch();
    let before = now();
    let new = NewPrompt {
        chat_id: -5,
        thread_id: Some(77),
        message_id: 12,
        user_id: 9_000_000_001,
        text: "explain main.rs",
    };
    let id = store.accept_prompt(&new).unwrap();

    let pending = store.unfinished_since(0).unwrap();
    assert_eq!(pending.len(), 1);
    let entry = &pending[0];
    assert_eq!(
        (entry.id, entry.chat_id, entry.thread_id),
        (id, -5, Some(77))
    );
    assert_eq!((entry.message_id, entry.user_id), (12, 9_000_000_001));
    assert_eq!(entry.text, "explain main.rs");
    assert!(!entry.started);
    assert!(before <= entry.accepted_at && entry.accepted_at <= now());

    store.mark_started(id).unwrap();
    assert!(store.unfinished_since(0).unwrap()[0].started);

    store.mark_done(id).unwrap();
    assert!(store.unfinished_since(0).unwrap().is_empty());
}

#[test]
fn lists_unfinished_prompts_in_order_from_the_cutoff() {
    let (_dir, store) = scratch();
    let old = store.accept_prompt_at(&prompt(1, 1, "old"), 1_000).unwrap();
    store
        .accept_prompt_at(&prompt(2, 2, "second"), 3_000)
        .unwrap();
    let done = store
        .accept_prompt_at(&prompt(1, 3, "done"), 3_000)
        .unwrap();
    store
        .accept_prompt_at(&prompt(1, 4, "first"), 2_000)
        .unwrap();
    store.mark_done(done).unwrap();

    let since = store.unfinished_since(2_000).unwrap();
    assert_eq!(texts(&since), ["second", "first"], "ordered by id");
    assert!(since.windows(2).all(|pair| pair[0].id < pair[1].id));
    assert!(since.iter().all(|p| p.id != old));
    assert_eq!(texts(&store.unfinished_since(0).unwrap())[0], "old");
}

#[test]
fn abandons_only_prompts_older_than_the_cutoff() {
    let (_dir, store) = scratch();
    store
        .accept_prompt_at(&prompt(1, 1, "stale"), 1_000)
        .unwrap();
    store
        .accept_prompt_at(&prompt(1, 2, "stale too"), 1_999)
        .unwrap();
    store
        .accept_prompt_at(&prompt(1, 3, "fresh"), 2_000)
        .unwrap();

    assert_eq!(store.abandon_older_than(2_000).unwrap(), 2);
    assert_eq!(texts(&store.unfinished_since(0).unwrap()), ["fresh"]);
    assert_eq!(store.abandon_older_than(2_000).unwrap(), 0);
}

#[test]
fn never_reuses_the_id_of_a_finished_prompt() {
    let (_dir, store) = scratch();
    let first = store.accept_prompt(&prompt(1, 1, "a")).unwrap();
    store.mark_done(first).unwrap();

    let second = store.accept_prompt(&prompt(1, 2, "b")).unwrap();
    assert!(second > first);
}
