use std::fs;
use std::os::unix::fs::symlink;

use tempfile::TempDir;

use super::*;

/// A root holding `proj/alpha/beta/gamma/delta`, `docs`, a file and a hidden `.git`.
fn tree() -> (TempDir, Workspace) {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("proj/alpha/beta/gamma/delta")).unwrap();
    fs::create_dir_all(dir.path().join("docs")).unwrap();
    fs::create_dir_all(dir.path().join(".git/proj-hidden")).unwrap();
    fs::write(dir.path().join("notes.txt"), "x").unwrap();
    let workspace = Workspace::new(dir.path()).unwrap();
    (dir, workspace)
}

fn names(workspace: &Workspace, found: &[PathBuf]) -> Vec<String> {
    found.iter().map(|path| workspace.display(path)).collect()
}

#[test]
fn refuses_a_root_that_is_not_a_directory() {
    let (dir, _) = tree();
    assert!(Workspace::new(dir.path().join("notes.txt")).is_err());
    assert!(Workspace::new(dir.path().join("gone")).is_err());
}

#[test]
fn resolves_relative_paths_against_the_current_directory() {
    let (_dir, ws) = tree();
    let proj = ws.root().join("proj");

    assert_eq!(
        ws.resolve(&proj, "alpha/beta").unwrap(),
        proj.join("alpha/beta")
    );
    assert_eq!(ws.resolve(&proj.join("alpha"), "..").unwrap(), proj);
    assert_eq!(
        ws.resolve(&proj, "./alpha/../alpha").unwrap(),
        proj.join("alpha")
    );
}

#[test]
fn resolves_absolute_paths_as_given() {
    let (_dir, ws) = tree();
    let docs = ws.root().join("docs");
    let requested = docs.to_str().unwrap();

    assert_eq!(
        ws.resolve(&ws.root().join("proj"), requested).unwrap(),
        docs
    );
}

#[test]
fn reads_a_tilde_as_the_workspace_root() {
    let (_dir, ws) = tree();
    let deep = ws.root().join("proj/alpha/beta");

    assert_eq!(ws.resolve(&deep, "~").unwrap(), ws.root());
    assert_eq!(ws.resolve(&deep, "").unwrap(), ws.root());
    assert_eq!(ws.resolve(&deep, "~/docs").unwrap(), ws.root().join("docs"));
}

#[test]
fn refuses_dot_dot_out_of_the_root() {
    let (_dir, ws) = tree();
    let proj = ws.root().join("proj");
    let outside = CdError::OutsideWorkspace {
        root: ws.root().to_owned(),
    };

    assert_eq!(ws.resolve(&proj, "../..").unwrap_err(), outside);
    assert_eq!(ws.resolve(&proj, "~/..").unwrap_err(), outside);
    assert_eq!(ws.resolve(&proj, "/").unwrap_err(), outside);
}

#[test]
fn refuses_a_symlink_that_points_outside() {
    let (_dir, ws) = tree();
    let elsewhere = tempfile::tempdir().unwrap();
    symlink(elsewhere.path(), ws.root().join("escape")).unwrap();

    let err = ws.resolve(ws.root(), "escape").unwrap_err();
    assert!(matches!(err, CdError::OutsideWorkspace { .. }));
    assert!(!ws.contains(&ws.root().join("escape")));
}

#[test]
fn follows_a_symlink_that_stays_inside() {
    let (_dir, ws) = tree();
    symlink(ws.root().join("proj/alpha"), ws.root().join("shortcut")).unwrap();

    let resolved = ws.resolve(ws.root(), "shortcut").unwrap();
    assert_eq!(resolved, ws.root().join("proj/alpha"));
}

#[test]
fn refuses_a_file_and_a_missing_path() {
    let (_dir, ws) = tree();

    let file = ws.resolve(ws.root(), "notes.txt").unwrap_err();
    assert_eq!(file, CdError::NotADirectory("notes.txt".into()));
    assert_eq!(file.to_string(), "not a directory: notes.txt");

    let missing = ws.resolve(ws.root(), "nope").unwrap_err();
    assert_eq!(missing, CdError::NotFound("nope".into()));
    assert_eq!(missing.to_string(), "no such directory: nope");
}

#[test]
fn shows_paths_relative_to_the_root() {
    let (_dir, ws) = tree();

    assert_eq!(ws.display(ws.root()), "~");
    assert_eq!(ws.display(&ws.root().join("proj/alpha")), "~/proj/alpha");
    assert_eq!(ws.display(Path::new("/elsewhere/x")), "/elsewhere/x");
}

#[test]
fn finds_directories_by_name_ignoring_case_shallow_first() {
    let (_dir, ws) = tree();
    fs::create_dir_all(ws.root().join("docs/Project-notes")).unwrap();
    fs::create_dir_all(ws.root().join("PROJECTS")).unwrap();

    let found = ws.search("proj");
    assert_eq!(
        names(&ws, &found),
        ["~/PROJECTS", "~/proj", "~/docs/Project-notes"]
    );
}

#[test]
fn searches_no_deeper_than_three_levels() {
    let (_dir, ws) = tree();

    assert_eq!(names(&ws, &ws.search("beta")), ["~/proj/alpha/beta"]);
    assert!(ws.search("gamma").is_empty(), "gamma is four levels down");
}

#[test]
fn skips_hidden_dependency_and_build_directories() {
    let (_dir, ws) = tree();
    fs::create_dir_all(ws.root().join("node_modules/lib-x")).unwrap();
    fs::create_dir_all(ws.root().join("target/lib-y")).unwrap();
    fs::create_dir_all(ws.root().join("lib-z")).unwrap();

    assert_eq!(names(&ws, &ws.search("lib")), ["~/lib-z"]);
    assert!(ws.search("hidden").is_empty());
    assert!(ws.search("git").is_empty());
}

#[test]
fn never_follows_symlinks_while_searching() {
    let (_dir, ws) = tree();
    let elsewhere = tempfile::tempdir().unwrap();
    fs::create_dir(elsewhere.path().join("secret-stuff")).unwrap();
    symlink(elsewhere.path(), ws.root().join("escape")).unwrap();
    symlink(ws.root().join("proj"), ws.root().join("stuff-link")).unwrap();

    assert!(ws.search("stuff").is_empty());
}

#[test]
fn returns_at_most_fifteen_matches() {
    let (_dir, ws) = tree();
    for i in 0..20 {
        fs::create_dir(ws.root().join(format!("item{i:02}"))).unwrap();
    }

    let found = names(&ws, &ws.search("item"));
    let expected: Vec<String> = (0..15).map(|i| format!("~/item{i:02}")).collect();
    assert_eq!(found, expected);
}
