use std::fs;
use std::os::unix::fs::symlink;

use super::*;

fn names(dir: &Path) -> Vec<OsString> {
    let mut names: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    names
}

fn is_refusal(e: &io::Error, link: &Path) -> bool {
    e.get_ref()
        .and_then(|e| e.downcast_ref::<SymlinkRefused>())
        .is_some_and(|r| r.path == link)
}

#[test]
fn write_atomic_replaces_whole_file_and_leaves_no_temp() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("sub/config");
    write_atomic(dir.path(), &target, b"first version, long", 0o644).unwrap();
    write_atomic(dir.path(), &target, b"second", 0o644).unwrap();
    assert_eq!(fs::read(&target).unwrap(), b"second");
    assert_eq!(names(target.parent().unwrap()), [OsString::from("config")]);
}

#[test]
fn stage_file_links_on_same_filesystem_and_resolves_symlinks() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("vmlinux");
    fs::write(&source, b"kernel").unwrap();
    let link = dir.path().join("alias");
    symlink(&source, &link).unwrap();
    let root = dir.path().join("root");
    let target = root.join("uuid/deploy_kernel");
    assert_eq!(
        stage_file(&link, &root, &target).unwrap(),
        StageMethod::Link
    );
    let meta = fs::symlink_metadata(&target).unwrap();
    assert!(
        meta.file_type().is_file(),
        "staged file must not be a symlink"
    );
    assert_eq!(meta.ino(), fs::metadata(&source).unwrap().ino());
    // Staging again is idempotent and leaves no temp file behind.
    stage_file(&link, &root, &target).unwrap();
    assert_eq!(fs::read(&target).unwrap(), b"kernel");
    assert_eq!(
        names(target.parent().unwrap()),
        [OsString::from("deploy_kernel")]
    );
}

#[test]
fn sweep_removes_only_temps_of_dead_writers() {
    let dir = tempfile::tempdir().unwrap();
    // pid 0x7fffffff is never a live process.
    let dead = dir.path().join(format!(".config{TEMP_MARKER}2147483647.0"));
    let live = dir
        .path()
        .join(format!(".config{TEMP_MARKER}{}.0", std::process::id()));
    let other = dir.path().join("config");
    for p in [&dead, &live, &other] {
        fs::write(p, b"x").unwrap();
    }
    assert_eq!(sweep_stale_temps(dir.path(), dir.path()).unwrap(), 1);
    assert!(!dead.exists() && live.exists() && other.exists());
}

#[test]
fn remove_if_present_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("f");
    fs::write(&f, b"x").unwrap();
    assert!(remove_if_present(dir.path(), &f).unwrap());
    assert!(!remove_if_present(dir.path(), &f).unwrap());
    assert!(!remove_if_present(dir.path(), &dir.path().join("no/such")).unwrap());
}

/// A root holding `link` -> a directory outside with a file in it.
fn planted() -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let outside = dir.path().join("outside");
    fs::create_dir_all(&root).unwrap();
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("config"), b"theirs").unwrap();
    let link = root.join("uuid");
    symlink(&outside, &link).unwrap();
    (dir, root, outside, link)
}

#[test]
fn nothing_is_written_or_removed_through_a_linked_directory() {
    let (dir, root, outside, link) = planted();
    let source = dir.path().join("kernel");
    fs::write(&source, b"k").unwrap();
    let config = link.join("config");
    let errors = [
        write_atomic(&root, &config, b"ours", 0o644).unwrap_err(),
        write_atomic(&root, &link.join("new/config"), b"ours", 0o644).unwrap_err(),
        stage_file(&source, &root, &link.join("kernel")).unwrap_err(),
        remove_if_present(&root, &config).unwrap_err(),
        remove_dir_if_empty(&root, &link.join("sub")).unwrap_err(),
        sweep_stale_temps(&root, &link).unwrap_err(),
        open_beneath(&root, &config).unwrap_err(),
    ];
    for e in &errors {
        assert!(is_refusal(e, &link), "{e}");
        let text = e.to_string();
        assert!(
            text.starts_with(&format!("{} is a symlink", link.display())),
            "{text}"
        );
    }
    assert_eq!(names(&outside), [OsString::from("config")]);
    assert_eq!(fs::read(outside.join("config")).unwrap(), b"theirs");
    // The link itself is a symlink, not a directory: rmdir refuses it too.
    let e = remove_dir_if_empty(&root, &link).unwrap_err();
    assert!(is_refusal(&e, &link), "{e}");
    assert!(fs::symlink_metadata(&link).is_ok());
}

#[test]
fn a_link_where_a_file_goes_is_replaced_or_removed_as_a_link() {
    let (dir, root, outside, _) = planted();
    let real = root.join("real");
    fs::create_dir(&real).unwrap();
    let config = real.join("config");
    symlink(outside.join("config"), &config).unwrap();
    assert!(matches!(
        open_beneath(&root, &config).unwrap(),
        Found::Symlink
    ));
    write_atomic(&root, &config, b"ours", 0o644).unwrap();
    assert!(fs::symlink_metadata(&config).unwrap().is_file());
    let kernel = real.join("kernel");
    symlink(outside.join("config"), &kernel).unwrap();
    let source = dir.path().join("k");
    fs::write(&source, b"k").unwrap();
    stage_file(&source, &root, &kernel).unwrap();
    assert_eq!(fs::read(&kernel).unwrap(), b"k");
    symlink(&outside, real.join("gone")).unwrap();
    assert!(remove_if_present(&root, &real.join("gone")).unwrap());
    assert_eq!(fs::read(outside.join("config")).unwrap(), b"theirs");
    assert_eq!(names(&outside), [OsString::from("config")]);
}

#[test]
fn open_beneath_reads_regular_files_only() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::write(root.join("f"), b"data").unwrap();
    let Found::File(mut f) = open_beneath(root, &root.join("f")).unwrap() else {
        panic!("a regular file");
    };
    let mut text = String::new();
    f.read_to_string(&mut text).unwrap();
    assert_eq!(text, "data");
    let fifo = root.join("fifo");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    assert!(matches!(open_beneath(root, &fifo).unwrap(), Found::Other));
    assert!(matches!(
        open_beneath(root, &root.join("none")).unwrap(),
        Found::Absent
    ));
}
