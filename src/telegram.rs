//! The Telegram side: who may talk to the bot, what each command does, and how
//! answers are rendered, split and delivered.

pub mod answer;
pub mod chunks;
pub mod commands;
pub mod delivery;
pub mod handlers;
pub mod html;
pub mod progress;
pub mod replies;
