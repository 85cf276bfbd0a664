//! Per-chat state and the prompt journal, kept in one SQLite file.
//!
//! A chat's working directory and CLI session survive a restart, and so does
//! every accepted prompt until it is done, so a crash loses none. Every
//! operation is one small statement on a local file: quick enough to call
//! straight from async code.

use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, Row, params};

/// Schema steps; `PRAGMA user_version` counts the ones applied.
const MIGRATIONS: &[&str] = &[r"
    CREATE TABLE chats (
        chat_id INTEGER PRIMARY KEY,
        working_directory BLOB NOT NULL,
        session_id TEXT,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE TABLE last_runs (
        chat_id INTEGER PRIMARY KEY,
        num_turns INTEGER NOT NULL,
        input_tokens INTEGER NOT NULL,
        output_tokens INTEGER NOT NULL,
        cache_read_tokens INTEGER NOT NULL,
        cache_creation_tokens INTEGER NOT NULL,
        cost_usd REAL NOT NULL,
        duration_ms INTEGER NOT NULL,
        finished_at INTEGER NOT NULL
    );
    CREATE TABLE prompts (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        chat_id INTEGER NOT NULL,
        thread_id INTEGER,
        message_id INTEGER NOT NULL,
        user_id INTEGER NOT NULL,
        text TEXT NOT NULL,
        accepted_at INTEGER NOT NULL,
        started_at INTEGER
    );
"];

type Result<T, E = StoreError> = std::result::Result<T, E>;

/// How long to wait for another process holding the file.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A failed store operation, saying what was being done.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{doing}")]
    Io {
        doing: String,
        #[source]
        source: io::Error,
    },
    #[error("{doing}")]
    Sqlite {
        doing: String,
        #[source]
        source: rusqlite::Error,
    },
}

/// What the store remembers about one chat.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatState {
    pub chat_id: i64,
    pub working_directory: PathBuf,
    /// The CLI session to resume; only valid in `working_directory`.
    pub session_id: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
    pub last_run: Option<RunFigures>,
}

/// What one finished agent run cost.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunFigures {
    pub num_turns: u32,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_creation_tokens: u64,
    pub cost_usd: f64,
    pub duration_ms: u64,
    /// Unix seconds.
    pub finished_at: i64,
}

/// A prompt the bot has accepted and must answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPrompt<'a> {
    pub chat_id: i64,
    pub thread_id: Option<i32>,
    pub message_id: i32,
    pub user_id: u64,
    pub text: &'a str,
}

/// A journalled prompt that was not done when it was read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingPrompt {
    pub id: i64,
    pub chat_id: i64,
    pub thread_id: Option<i32>,
    pub message_id: i32,
    pub user_id: u64,
    pub text: String,
    /// Whether an agent run had begun on it (it may have half happened).
    pub started: bool,
    /// Unix seconds.
    pub accepted_at: i64,
}

/// A handle on the state file; clones share one connection.
#[derive(Debug, Clone)]
pub struct Store {
    connection: Arc<Mutex<Connection>>,
}

/// The current time in unix seconds.
pub fn now() -> i64 {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH);
    since_epoch.map_or(0, |elapsed| elapsed.as_secs() as i64)
}

impl Store {
    /// Opens or creates the file at `path`, with its folder, and migrates it.
    pub fn open(path: impl AsRef<Path>) -> Result<Store> {
        let path = path.as_ref();
        let shown = path.display();
        if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(folder).map_err(|source| StoreError::Io {
                doing: format!("creating the folder of {shown}"),
                source,
            })?;
        }

        let doing = || format!("opening {shown}");
        let mut connection = Connection::open(path).map_err(sqlite(doing))?;
        configure(&connection).map_err(sqlite(doing))?;
        migrate(&mut connection).map_err(sqlite(|| format!("migrating {shown}")))?;

        Ok(Store {
            connection: Arc::new(Mutex::new(connection)),
        })
    }

    /// What the store knows of `chat_id`; `None` for a chat never seen.
    pub fn chat(&self, chat_id: i64) -> Result<Option<ChatState>> {
        let doing = || format!("reading the state of chat {chat_id}");
        self.with(doing, |db| {
            let state = db
                .query_row(
                    "SELECT working_directory, session_id, created_at,
                            updated_at
                     FROM chats WHERE chat_id = ?1",
                    [chat_id],
                    |row| chat_state(chat_id, row),
                )
                .optional()?;
            let Some(mut state) = state else {
                return Ok(None);
            };
            state.last_run = db
                .query_row(
                    "SELECT num_turns, input_tokens, output_tokens,
                            cache_read_tokens, cache_creation_tokens,
                            cost_usd, duration_ms, finished_at
                     FROM last_runs WHERE chat_id = ?1",
                    [chat_id],
                    run_figures,
                )
                .optional()?;
            Ok(Some(state))
        })
    }

    /// Moves the chat to `dir` and forgets its session.
    ///
    /// The CLI resumes a session only from the directory it began in.
    pub fn set_working_directory(&self, chat_id: i64, dir: &Path) -> Result<()> {
        let doing = || format!("saving the directory of chat {chat_id}");
        let sql = "INSERT INTO chats VALUES (?1, ?2, NULL, ?3, ?3)
            ON CONFLICT (chat_id) DO UPDATE SET
                working_directory = excluded.working_directory,
                session_id = NULL,
                updated_at = excluded.updated_at";
        let dir = dir.as_os_str().as_bytes();
        self.execute(doing, sql, params![chat_id, dir, now()])
    }

    /// Sets or clears the chat's session; a new chat starts in `default_dir`.
    pub fn set_session(
        &self,
        chat_id: i64,
        session_id: Option<&str>,
        default_dir: &Path,
    ) -> Result<()> {
        let doing = || format!("saving the session of chat {chat_id}");
        let sql = "INSERT INTO chats VALUES (?1, ?2, ?3, ?4, ?4)
            ON CONFLICT (chat_id) DO UPDATE SET
                session_id = excluded.session_id,
                updated_at = excluded.updated_at";
        let dir = default_dir.as_os_str().as_bytes();
        self.execute(doing, sql, params![chat_id, dir, session_id, now()])
    }

    /// Keeps the figures of a finished run in place of the previous ones.
    ///
    /// Figures are kept even for a chat without state yet.
    pub fn record_run(&self, chat_id: i64, run: &RunFigures) -> Result<()> {
        let doing = || format!("recording a run of chat {chat_id}");
        let sql = "REPLACE INTO last_runs
            VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";
        let values = params![
            chat_id,
            run.num_turns,
            run.input_tokens,
            run.output_tokens,
            run.cache_read_tokens,
            run.cache_creation_tokens,
            run.cost_usd,
            run.duration_ms,
            run.finished_at,
        ];
        self.execute(doing, sql, values)
    }

    /// Journals a prompt before it is queued; returns its id.
    pub fn accept_prompt(&self, prompt: &NewPrompt<'_>) -> Result<i64> {
        self.accept_prompt_at(prompt, now())
    }

    fn accept_prompt_at(&self, prompt: &NewPrompt<'_>, at: i64) -> Result<i64> {
        let chat_id = prompt.chat_id;
        let doing = || format!("journalling a prompt of chat {chat_id}");
        self.with(doing, |db| {
            db.execute(
                "INSERT INTO prompts (chat_id, thread_id, message_id,
                     user_id, text, accepted_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    chat_id,
                    prompt.thread_id,
                    prompt.message_id,
                    prompt.user_id,
                    prompt.text,
                    at,
                ],
            )?;
            Ok(db.last_insert_rowid())
        })
    }

    /// Notes that an agent run began on prompt `id`.
    pub fn mark_started(&self, id: i64) -> Result<()> {
        let doing = || format!("marking prompt {id} started");
        let sql = "UPDATE prompts SET started_at = ?2 WHERE id = ?1";
        self.execute(doing, sql, params![id, now()])
    }

    /// Drops prompt `id` from the journal: its text is not kept once done.
    pub fn mark_done(&self, id: i64) -> Result<()> {
        let doing = || format!("marking prompt {id} done");
        self.execute(doing, "DELETE FROM prompts WHERE id = ?1", [id])
    }

    /// Prompts not done and accepted at or after `cutoff`, oldest first.
    pub fn unfinished_since(&self, cutoff: i64) -> Result<Vec<PendingPrompt>> {
        let doing = || "reading unfinished prompts".to_owned();
        self.with(doing, |db| {
            let mut query = db.prepare(
                "SELECT id, chat_id, thread_id, message_id, user_id, text,
                        started_at IS NOT NULL, accepted_at
                 FROM prompts WHERE accepted_at >= ?1 ORDER BY id",
            )?;
            let rows = query.query_map([cutoff], pending_prompt)?;
            rows.collect()
        })
    }

    /// Gives up on prompts accepted before `cutoff`; returns how many.
    ///
    /// Like done ones, they leave the journal, so they are never retried.
    pub fn abandon_older_than(&self, cutoff: i64) -> Result<usize> {
        let doing = || "abandoning old prompts".to_owned();
        let sql = "DELETE FROM prompts WHERE accepted_at < ?1";
        self.with(doing, |db| db.execute(sql, [cutoff]))
    }

    /// Runs one statement whose row count does not matter.
    fn execute(
        &self,
        doing: impl FnOnce() -> String,
        sql: &str,
        values: impl rusqlite::Params,
    ) -> Result<()> {
        self.with(doing, |db| db.execute(sql, values).map(drop))
    }

    /// Runs `op` on the connection, naming the failure with `doing`.
    fn with<T>(
        &self,
        doing: impl FnOnce() -> String,
        op: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T> {
        // A panic while holding the lock cannot leave a statement half
        // applied: SQLite rolls it back, so the connection is still sound.
        let connection = self
            .connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        op(&connection).map_err(sqlite(doing))
    }
}

fn sqlite(doing: impl FnOnce() -> String) -> impl FnOnce(rusqlite::Error) -> StoreError {
    |source| StoreError::Sqlite {
        doing: doing(),
        source,
    }
}

fn configure(connection: &Connection) -> rusqlite::Result<()> {
    connection.busy_timeout(BUSY_TIMEOUT)?;
    let first = |row: &Row<'_>| row.get::<_, String>(0);
    let mode = connection.pragma_update_and_check(None, "journal_mode", "wal", first)?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(mode, "sqlite did not switch to write-ahead logging");
    }
    Ok(())
}

/// Applies the migrations the file has not seen yet, each atomically.
fn migrate(connection: &mut Connection) -> rusqlite::Result<()> {
    let first = |row: &Row<'_>| row.get::<_, usize>(0);
    let applied = connection.pragma_query_value(None, "user_version", first)?;
    for (step, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        let transaction = connection.transaction()?;
        transaction.execute_batch(sql)?;
        transaction.pragma_update(None, "user_version", step + 1)?;
        transaction.commit()?;
        tracing::info!(version = step + 1, "migrated the state file");
    }
    Ok(())
}

fn chat_state(chat_id: i64, row: &Row<'_>) -> rusqlite::Result<ChatState> {
    let dir: Vec<u8> = row.get(0)?;
    Ok(ChatState {
        chat_id,
        working_directory: PathBuf::from(OsString::from_vec(dir)),
        session_id: row.get(1)?,
        created_at: row.get(2)?,
        updated_at: row.get(3)?,
        last_run: None,
    })
}

fn run_figures(row: &Row<'_>) -> rusqlite::Result<RunFigures> {
    Ok(RunFigures {
        num_turns: row.get(0)?,
        input_tokens: row.get(1)?,
        output_tokens: row.get(2)?,
        cache_read_tokens: row.get(3)?,
        cache_creation_tokens: row.get(4)?,
        cost_usd: row.get(5)?,
        duration_ms: row.get(6)?,
        finished_at: row.get(7)?,
    })
}

fn pending_prompt(row: &Row<'_>) -> rusqlite::Result<PendingPrompt> {
    Ok(PendingPrompt {
        id: row.get(0)?,
        chat_id: row.get(1)?,
        thread_id: row.get(2)?,
        message_id: row.get(3)?,
        user_id: row.get(4)?,
        text: row.get(5)?,
        started: row.get(6)?,
        accepted_at: row.get(7)?,
    })
}

#[cfg(test)]
mod tests;
