//! The agent side: running the Claude Code CLI and reading what it says.

pub mod process;
pub mod run;
pub mod wire;
