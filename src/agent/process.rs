//! The CLI as an operating-system process: spawned in its own process group
//! with the prompt on stdin, signalled as a group, and reaped so that no tool
//! child outlives its run. Reading stdout is left to [`super::run`].

use std::collections::VecDeque;
use std::io;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};
use tokio::task::JoinHandle;
use tracing::{debug, warn};

/// How much of stderr is kept for error reports.
const STDERR_TAIL_BYTES: usize = 8 * 1024;

/// Everything needed to start one CLI process.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub cwd: PathBuf,
    /// Written to stdin, which is then closed: `-p` reads the prompt there.
    pub stdin: String,
    /// Variables of the bot's own environment the CLI must not see.
    pub env_remove: Vec<String>,
}

/// Why the CLI could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("no executable at {program}")]
    NotFound { program: PathBuf },
    #[error("could not start {program}")]
    Io {
        program: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// A running CLI process whose stdout the caller reads.
pub struct AgentProcess {
    child: Child,
    group: Pid,
    stderr_tail: Arc<Mutex<StderrTail>>,
    stderr_reader: JoinHandle<()>,
}

impl AgentProcess {
    /// Starts the process and hands it the prompt. Returns it with its stdout.
    pub fn spawn(invocation: Invocation) -> Result<(Self, ChildStdout), SpawnError> {
        let mut command = Command::new(&invocation.program);
        command
            .args(&invocation.args)
            .current_dir(&invocation.cwd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own group, so a signal reaches the tools it started too.
            .process_group(0)
            .kill_on_drop(true);
        for name in &invocation.env_remove {
            command.env_remove(name);
        }

        let mut child = command.spawn().map_err(|source| {
            let program = invocation.program.clone();
            match source.kind() {
                io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied => {
                    SpawnError::NotFound { program }
                }
                _ => SpawnError::Io { program, source },
            }
        })?;
        let pid = child.id().expect("a just-spawned child has a pid");
        let group = Pid::from_raw(pid as i32);

        let mut stdin = child.stdin.take().expect("stdin is piped");
        let prompt = invocation.stdin;
        tokio::spawn(async move {
            // A CLI that exits early closes the pipe; its exit status says why.
            if let Err(error) = stdin.write_all(prompt.as_bytes()).await {
                debug!(%error, "claude did not read the whole prompt");
            }
        });

        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let stderr_tail = Arc::new(Mutex::new(StderrTail::default()));
        let stderr_reader = tokio::spawn(read_stderr(stderr, stderr_tail.clone()));
        debug!(pid, program = %invocation.program.display(), "claude started");

        let process = AgentProcess {
            child,
            group,
            stderr_tail,
            stderr_reader,
        };
        Ok((process, stdout))
    }

    /// Sends a signal to the whole process group. A group that is gone
    /// already is not an error.
    pub fn signal(&self, signal: Signal) {
        match killpg(self.group, signal) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
            Err(error) => warn!(%error, ?signal, "could not signal claude"),
        }
    }

    /// Waits for the CLI itself to exit and returns its exit code (`None` when
    /// a signal ended it).
    pub async fn exited(&mut self) -> Option<i32> {
        match self.child.wait().await {
            Ok(status) => status.code(),
            Err(error) => {
                warn!(%error, "could not wait for claude");
                None
            }
        }
    }

    /// Kills whatever is left of the group and returns the stderr tail.
    pub async fn reap(mut self) -> (Option<i32>, String) {
        self.signal(Signal::SIGKILL);
        let code = self.exited().await;
        // Every writer of the pipe is dead now, so the reader reaches EOF.
        let _ = (&mut self.stderr_reader).await;
        let tail = self.stderr_tail();
        (code, tail)
    }

    /// The last few kilobytes the process wrote to stderr.
    pub fn stderr_tail(&self) -> String {
        self.stderr_tail.lock().expect("stderr tail lock").text()
    }
}

/// A bounded tail of stderr lines.
#[derive(Default)]
struct StderrTail {
    lines: VecDeque<String>,
    bytes: usize,
}

impl StderrTail {
    fn push(&mut self, line: String) {
        self.bytes += line.len() + 1;
        self.lines.push_back(line);
        while self.bytes > STDERR_TAIL_BYTES && self.lines.len() > 1 {
            let dropped = self.lines.pop_front().expect("more than one line");
            self.bytes -= dropped.len() + 1;
        }
    }

    fn text(&self) -> String {
        let joined = Vec::from(self.lines.clone()).join("\n");
        let cut = joined.len().saturating_sub(STDERR_TAIL_BYTES);
        let start = (cut..=joined.len())
            .find(|&i| joined.is_char_boundary(i))
            .unwrap_or(joined.len());
        joined[start..].to_owned()
    }
}

async fn read_stderr(stderr: tokio::process::ChildStderr, tail: Arc<Mutex<StderrTail>>) {
    let mut reader = BufReader::new(stderr);
    let mut buffer = Vec::new();
    loop {
        buffer.clear();
        match reader.read_until(b'\n', &mut buffer).await {
            Ok(0) => return,
            Ok(_) => {
                let line = String::from_utf8_lossy(&buffer).trim_end().to_owned();
                debug!(line = %line, "claude stderr");
                tail.lock().expect("stderr tail lock").push(line);
            }
            Err(error) => {
                debug!(%error, "stopped reading claude stderr");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stderr_tail_keeps_the_last_lines_within_its_bound() {
        let mut tail = StderrTail::default();
        for i in 0..10_000 {
            tail.push(format!("line {i}"));
        }
        let text = tail.text();
        assert!(text.len() <= STDERR_TAIL_BYTES);
        assert!(text.ends_with("line 9999"));
        assert!(!text.contains("line 1\n"));
    }

    #[test]
    fn stderr_tail_cuts_a_huge_line_on_a_char_boundary() {
        let mut tail = StderrTail::default();
        tail.push("é".repeat(STDERR_TAIL_BYTES));
        let text = tail.text();
        assert!(text.len() <= STDERR_TAIL_BYTES);
        assert!(text.chars().all(|c| c == 'é'));
    }
}
