//! The workspace: the directory tree a chat may move around in.
//!
//! It confines `/cd` to the workspace root (symlinks followed), finds
//! directories by name for `/searchcwd`, and shows paths to users relative to
//! the root. Remembering each chat's directory is left to the store.

use std::io;
use std::path::{Path, PathBuf};

/// Most directories [`Workspace::search`] returns.
pub const SEARCH_LIMIT: usize = 15;
/// How far below the root [`Workspace::search`] looks (1 = the root's children).
pub const SEARCH_DEPTH: usize = 3;
/// Directories that are never searched: build output and dependencies.
const SKIPPED: &[&str] = &["node_modules", "target"];
/// Bounds the time a search takes in a huge tree.
const MAX_VISITED: usize = 10_000;

/// Why a `/cd` target was refused; the messages are meant for users.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CdError {
    #[error("no such directory: {0}")]
    NotFound(String),
    #[error("not a directory: {0}")]
    NotADirectory(String),
    #[error("that directory is outside the workspace {}", .root.display())]
    OutsideWorkspace { root: PathBuf },
}

/// A canonical workspace root and the operations confined to it.
///
/// In what users type and see, `~` stands for the workspace root, not the
/// home directory: `~/proj` is `proj` inside the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    root: PathBuf,
}

impl Workspace {
    /// A workspace rooted at `root`, which must be an existing directory.
    pub fn new(root: impl AsRef<Path>) -> io::Result<Workspace> {
        let root = root.as_ref().canonicalize()?;
        if !root.is_dir() {
            let message = format!("{} is not a directory", root.display());
            return Err(io::Error::new(io::ErrorKind::NotADirectory, message));
        }
        Ok(Workspace { root })
    }

    /// The canonical root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether `path`, with symlinks followed, exists inside the root.
    pub fn contains(&self, path: &Path) -> bool {
        path.canonicalize()
            .is_ok_and(|canonical| canonical.starts_with(&self.root))
    }

    /// The canonical directory `requested` names, seen from `current`.
    ///
    /// Relative paths start at `current`, absolute ones at `/`; `~` and `~/…`
    /// start at the root, and an empty request means the root itself. The
    /// target must be an existing directory inside the root (the root too).
    pub fn resolve(&self, current: &Path, requested: &str) -> Result<PathBuf, CdError> {
        let requested = requested.trim();
        let target = if requested.is_empty() || requested == "~" {
            self.root.clone()
        } else if let Some(rest) = requested.strip_prefix("~/") {
            self.root.join(rest.trim_start_matches('/'))
        } else {
            current.join(requested)
        };

        let Ok(canonical) = target.canonicalize() else {
            return Err(CdError::NotFound(requested.to_owned()));
        };
        if !canonical.starts_with(&self.root) {
            let root = self.root.clone();
            return Err(CdError::OutsideWorkspace { root });
        }
        if !canonical.is_dir() {
            return Err(CdError::NotADirectory(requested.to_owned()));
        }
        Ok(canonical)
    }

    /// Directories under the root whose name contains `needle`, ignoring case.
    ///
    /// Breadth-first to [`SEARCH_DEPTH`] levels, so shallow matches come
    /// first, sorted by path within a level, at most [`SEARCH_LIMIT`]. Hidden
    /// directories, `node_modules` and `target` are neither matched nor
    /// entered; symlinks are never followed; unreadable directories are
    /// skipped. An empty needle matches every directory. This reads the disk
    /// synchronously: async callers should run it on a blocking thread.
    pub fn search(&self, needle: &str) -> Vec<PathBuf> {
        let needle = needle.trim().to_lowercase();
        let mut found = Vec::new();
        let mut level = vec![self.root.clone()];
        let mut visited = 0;

        for _ in 0..SEARCH_DEPTH {
            let dirs = level.iter().map(PathBuf::as_path);
            let mut next: Vec<PathBuf> = dirs.flat_map(subdirectories).collect();
            next.sort();
            for dir in &next {
                if matches(dir, &needle) {
                    found.push(dir.clone());
                }
                if found.len() == SEARCH_LIMIT {
                    return found;
                }
            }
            visited += next.len();
            if visited >= MAX_VISITED {
                break;
            }
            level = next;
        }
        found
    }

    /// `path` as users see it: `~` or `~/a/b` inside the root, else absolute.
    pub fn display(&self, path: &Path) -> String {
        let Ok(inside) = path.strip_prefix(&self.root) else {
            return path.display().to_string();
        };
        if inside.as_os_str().is_empty() {
            return "~".to_owned();
        }
        format!("~/{}", inside.display())
    }
}

/// The searchable directories directly inside `dir`, in no order.
fn subdirectories(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = dir.read_dir() else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        // `DirEntry::file_type` does not follow symlinks.
        .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_dir()))
        .map(|entry| entry.path())
        .filter(|path| !skipped(path))
        .collect()
}

fn skipped(path: &Path) -> bool {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    name.starts_with('.') || SKIPPED.contains(&name.as_ref())
}

fn matches(dir: &Path, needle: &str) -> bool {
    let name = dir.file_name().unwrap_or_default();
    name.to_string_lossy().to_lowercase().contains(needle)
}

#[cfg(test)]
mod tests;
