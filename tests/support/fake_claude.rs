//! `FakeClaude`: a POSIX sh stand-in for the `claude` CLI that replays
//! scripted stdout lines and records how it was started.
//!
//! Invocation N (1-based, in start order, counted atomically with `mkdir` so
//! concurrent chats never share a number) replays `scripts/N`, else
//! `scripts/default`, and records itself in `calls/N/`. It reads all of stdin
//! before it prints anything, like `claude -p` does.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tempfile::TempDir;

use super::wait_for;

/// The script; `@DIR@` becomes the data dir, baked in so that the fake works
/// whether or not the bot passes its environment on to the CLI.
///
/// Directive lines (`#sleep SECS`, `#exit CODE`, `#stderr TEXT`,
/// `#on-sigint LINE`) are read by the shell; the lines between them are
/// printed by `sed`, so lines of many megabytes cost no shell loop.
///
/// A sleep runs in the background under `wait`, because a shell defers its
/// traps until a foreground child ends: SIGINT or SIGTERM then stops it at
/// once, kills the sleep, and ends the script by that same signal (or, after
/// `#on-sigint`, prints the line and exits 0, as the real CLI does).
const SCRIPT: &str = r#"#!/bin/sh
dir='@DIR@'
[ -d "$dir/calls" ] || { echo "fake claude: $dir/calls is missing" >&2; exit 96; }
n=1
while ! mkdir "$dir/calls/$n" 2>/dev/null; do
  n=$((n + 1))
done
call="$dir/calls/$n"
echo $$ > "$call/pid"
pwd > "$call/cwd"
[ $# -eq 0 ] || printf '%s\0' "$@" > "$call/argv"
env -0 > "$call/env" 2>/dev/null || env > "$call/env"
cat > "$call/stdin"
: > "$call/stdin-closed"

finish() {
  echo "$1" > "$call/exit"
  exit "$1"
}
sleeping=
pause() {
  sleeping=1
  sleep "$1" < /dev/null > /dev/null 2>&1 &
  wait $!
  sleeping=
}
stop_sleep() {
  [ -z "$sleeping" ] || kill $! 2>/dev/null
}
die_by() {
  stop_sleep
  trap - "$1"
  kill -"$1" $$
}
trap 'die_by INT' INT
trap 'die_by TERM' TERM
script="$dir/scripts/$n"
[ -f "$script" ] || script="$dir/scripts/default"
if [ ! -f "$script" ]; then
  echo "fake claude: no script for invocation $n" >&2
  finish 97
fi

start=1
grep -n '^#' "$script" > "$call/directives"
while IFS= read -r found; do
  at=${found%%:*}
  directive=${found#*:}
  if [ "$at" -gt "$start" ]; then
    sed -n "${start},$((at - 1))p;$((at - 1))q" "$script"
  fi
  start=$((at + 1))
  case $directive in
    '#sleep '*) pause "${directive#\#sleep }" ;;
    '#exit '*) finish "${directive#\#exit }" ;;
    '#stderr '*) printf '%s\n' "${directive#\#stderr }" >&2 ;;
    '#on-sigint '*)
      printf '%s\n' "${directive#\#on-sigint }" > "$call/on-sigint"
      trap 'stop_sleep; cat "$call/on-sigint"; finish 0' INT ;;
    *)
      echo "fake claude: unknown directive $directive" >&2
      finish 98 ;;
  esac
done < "$call/directives"
sed -n "${start},\$p" "$script"
finish 0
"#;

/// One start of the fake CLI, as it recorded itself.
#[derive(Clone, Debug)]
pub struct Invocation {
    /// 1-based, in start order.
    pub number: usize,
    pub argv: Vec<String>,
    pub cwd: PathBuf,
    pub stdin: String,
    /// Whether stdin was read to its end; until then `stdin` may be partial.
    pub stdin_closed: bool,
    pub env: BTreeMap<String, String>,
    pub pid: Option<i32>,
    /// The exit code, or `None` while it runs or when a signal killed it.
    pub exit_code: Option<i32>,
}

impl Invocation {
    /// The value following `flag` in argv, e.g. `--resume`.
    pub fn flag_value(&self, flag: &str) -> Option<&str> {
        let at = self.argv.iter().position(|a| a == flag)?;
        self.argv.get(at + 1).map(String::as_str)
    }

    pub fn has_flag(&self, flag: &str) -> bool {
        self.argv.iter().any(|a| a == flag)
    }
}

/// A fake `claude` in its own temp dir; the dir goes away on drop.
pub struct FakeClaude {
    dir: TempDir,
}

impl FakeClaude {
    /// Writes the script (mode 755) with empty `scripts/` and `calls/`.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("creating the fake claude dir");
        let path = dir.path().display().to_string();
        assert!(!path.contains('\''), "temp dir path {path} has a quote");
        fs::create_dir(dir.path().join("scripts")).expect("creating scripts/");
        fs::create_dir(dir.path().join("calls")).expect("creating calls/");

        let bin = dir.path().join("claude");
        fs::write(&bin, SCRIPT.replace("@DIR@", &path)).expect("writing the fake claude");
        fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).expect("chmod 755");
        Self { dir }
    }

    /// The path to give the bot as CLAUDE_BIN.
    pub fn bin(&self) -> PathBuf {
        self.dir.path().join("claude")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Sets what invocation `n` (1-based) prints; see the directives above.
    pub fn script<S: AsRef<str>>(&self, n: usize, lines: impl IntoIterator<Item = S>) {
        self.write_script(&n.to_string(), lines);
    }

    /// Sets what every invocation without its own script prints.
    pub fn default_script<S: AsRef<str>>(&self, lines: impl IntoIterator<Item = S>) {
        self.write_script("default", lines);
    }

    fn write_script<S: AsRef<str>>(&self, name: &str, lines: impl IntoIterator<Item = S>) {
        let mut text = String::new();
        for line in lines {
            text.push_str(line.as_ref());
            text.push('\n');
        }
        // Renamed into place so a starting invocation never reads half a file.
        let scripts = self.dir.path().join("scripts");
        let partial = scripts.join(format!(".{name}.partial"));
        fs::write(&partial, text).expect("writing a fake claude script");
        fs::rename(&partial, scripts.join(name)).expect("moving a fake claude script");
    }

    /// Every invocation so far, in start order.
    pub fn calls(&self) -> Vec<Invocation> {
        let entries = fs::read_dir(self.dir.path().join("calls")).expect("reading calls/");
        let mut calls: Vec<Invocation> = entries
            .filter_map(|entry| {
                let entry = entry.ok()?;
                let number = entry.file_name().to_str()?.parse().ok()?;
                Some(read_invocation(number, &entry.path()))
            })
            .collect();
        calls.sort_by_key(|c| c.number);
        calls
    }

    /// Waits until `n` invocations have read their whole stdin.
    pub async fn wait_for_calls(&self, n: usize, timeout: Duration) -> Vec<Invocation> {
        wait_for(&format!("{n} fake claude invocations"), timeout, || {
            let calls = self.calls();
            if calls.iter().filter(|c| c.stdin_closed).count() >= n {
                return Ok(calls);
            }
            let seen = calls
                .iter()
                .map(|c| (c.number, c.stdin_closed, c.exit_code));
            Err(format!(
                "(number, stdin closed, exit): {:?}",
                seen.collect::<Vec<_>>()
            ))
        })
        .await
    }

    /// The recorded stdout lines of fixture `name`.
    pub fn fixture(name: &str) -> Vec<String> {
        let text = read_fixture(name, "jsonl");
        text.lines().map(str::to_owned).collect()
    }

    /// Fixture `name` as a whole run: its stdout, its stderr, its exit code.
    pub fn fixture_run(name: &str) -> Vec<String> {
        let mut lines = Self::fixture(name);
        let stderr = read_fixture(name, "stderr");
        lines.extend(stderr.lines().map(|line| format!("#stderr {line}")));
        lines.push(format!("#exit {}", read_fixture(name, "rc").trim()));
        lines
    }
}

impl Default for FakeClaude {
    fn default() -> Self {
        Self::new()
    }
}

fn read_fixture(name: &str, extension: &str) -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let path = dir.join(format!("{name}.{extension}"));
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn read_invocation(number: usize, dir: &Path) -> Invocation {
    let read = |name: &str| fs::read_to_string(dir.join(name)).unwrap_or_default();
    let argv = read("argv");
    let argv = argv.split_terminator('\0').map(str::to_owned).collect();

    // `env -0` separates with NUL; the plain `env` fallback with newlines.
    let env_text = read("env");
    let separator = if env_text.contains('\0') { '\0' } else { '\n' };
    let env = env_text
        .split_terminator(separator)
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();

    Invocation {
        number,
        argv,
        cwd: PathBuf::from(read("cwd").trim_end_matches('\n')),
        stdin: read("stdin"),
        stdin_closed: dir.join("stdin-closed").exists(),
        env,
        pid: read("pid").trim().parse().ok(),
        exit_code: read("exit").trim().parse().ok(),
    }
}
