//! The bot's commands: how a message's text becomes one, and the menu that
//! Telegram shows for them. What each command does is in [`super::handlers`].

use teloxide::types::BotCommand;

/// What a user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Help,
    New,
    Cd(String),
    Pwd,
    SearchCwd(String),
    Status,
    /// `/stop`; `/stop all` also clears the queue.
    Stop {
        clear_queue: bool,
    },
    Unknown(String),
}

/// A text message, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Prompt,
    Command(Command),
    /// A command addressed to another bot in a group.
    NotForUs,
}

/// The menu set with setMyCommands at start.
pub fn menu() -> Vec<BotCommand> {
    [
        ("help", "what this bot does and the current directory"),
        ("new", "forget the conversation, keep the directory"),
        ("cd", "change directory: /cd <path>"),
        ("pwd", "show the current directory"),
        ("searchcwd", "find directories: /searchcwd <name>"),
        ("status", "the current run, queue and last run's figures"),
        (
            "stop",
            "stop the running agent (/stop all clears the queue)",
        ),
    ]
    .into_iter()
    .map(|(name, description)| BotCommand::new(name, description))
    .collect()
}

/// Reads a message's text. `bot_username` is the bot's own, without `@`.
///
/// A command is `/name` at the very start, optionally `@bot`, then
/// whitespace or the end. `/etc/hosts is broken` is therefore a prompt.
pub fn parse(text: &str, bot_username: &str) -> Input {
    let Some(rest) = text.strip_prefix('/') else {
        return Input::Prompt;
    };
    let name_end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    let (name, after) = rest.split_at(name_end);
    if name.is_empty() {
        return Input::Prompt;
    }

    let (addressee, argument) = match after.strip_prefix('@') {
        Some(mention) => {
            let end = mention.find(char::is_whitespace).unwrap_or(mention.len());
            (Some(&mention[..end]), &mention[end..])
        }
        None if after.is_empty() || after.starts_with(char::is_whitespace) => (None, after),
        None => return Input::Prompt,
    };
    if addressee.is_some_and(|to| !to.eq_ignore_ascii_case(bot_username)) {
        return Input::NotForUs;
    }

    let argument = argument.trim().to_owned();
    let command = match name.to_ascii_lowercase().as_str() {
        "start" | "help" => Command::Help,
        "new" | "reset" => Command::New,
        "cd" | "setcwd" => Command::Cd(argument),
        "pwd" | "getcwd" => Command::Pwd,
        "searchcwd" => Command::SearchCwd(argument),
        "status" => Command::Status,
        "stop" => Command::Stop {
            clear_queue: argument.eq_ignore_ascii_case("all"),
        },
        other => Command::Unknown(other.to_owned()),
    };
    Input::Command(command)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(text: &str) -> Command {
        match parse(text, "TestBot") {
            Input::Command(command) => command,
            other => panic!("{text:?} read as {other:?}"),
        }
    }

    #[test]
    fn reads_commands_aliases_and_arguments() {
        assert_eq!(command("/start"), Command::Help);
        assert_eq!(command("/reset"), Command::New);
        assert_eq!(command("/cd  src/app "), Command::Cd("src/app".into()));
        assert_eq!(command("/setcwd .."), Command::Cd("..".into()));
        assert_eq!(command("/getcwd"), Command::Pwd);
        assert_eq!(command("/stop all"), Command::Stop { clear_queue: true });
        assert_eq!(command("/stop"), Command::Stop { clear_queue: false });
        assert_eq!(
            command("/frobnicate"),
            Command::Unknown("frobnicate".into())
        );
    }

    #[test]
    fn accepts_its_own_mention_and_ignores_other_bots() {
        assert_eq!(command("/status@testbot"), Command::Status);
        assert_eq!(command("/cd@TestBot x"), Command::Cd("x".into()));
        assert_eq!(parse("/status@OtherBot", "TestBot"), Input::NotForUs);
    }

    #[test]
    fn treats_paths_and_plain_text_as_prompts() {
        assert_eq!(parse("/etc/hosts is broken", "TestBot"), Input::Prompt);
        assert_eq!(parse("what is /cd?", "TestBot"), Input::Prompt);
        assert_eq!(parse("/", "TestBot"), Input::Prompt);
        assert_eq!(parse("/ hello", "TestBot"), Input::Prompt);
    }
}
