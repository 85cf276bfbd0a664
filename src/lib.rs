//! claude-telegram-bot: work with Claude Code from Telegram.
//!
//! A tour of the parts: [`config`] reads the environment once at start;
//! [`agent`] spawns the Claude Code CLI and turns its stream-json output into
//! typed events; [`telegram`] answers users (commands, prompts, rendering and
//! splitting of replies); [`queue`] runs each chat's prompts in order under a
//! global limit; [`store`] keeps per-chat state in SQLite; [`span_tree`] and
//! [`telemetry`] report every run to Sentry.

pub mod agent;
pub mod config;
pub mod queue;
pub mod span_tree;
pub mod store;
pub mod telegram;
pub mod telemetry;
pub mod workspace;
