//! claude-telegram-bot: work with Claude Code from Telegram.
//!
//! A tour of the parts: [`config`] reads the environment once at start and
//! [`bot`] wires the rest and runs the update loop. [`telegram`] answers
//! users (commands, prompts, rendering, splitting and delivery of replies);
//! [`queue`] runs each chat's prompts in order under a global limit, and a
//! [`turn`] takes one prompt through an agent run to its reply. [`agent`]
//! spawns the Claude Code CLI and reads its stream-json output into typed
//! lines for observers. [`store`] keeps per-chat state and the prompt
//! journal in SQLite, [`workspace`] confines directories, and [`span_tree`]
//! and [`telemetry`] report every run to Sentry.

pub mod agent;
pub mod bot;
pub mod config;
pub mod queue;
pub mod span_tree;
pub mod store;
pub mod telegram;
pub mod telemetry;
pub mod turn;
pub mod workspace;
