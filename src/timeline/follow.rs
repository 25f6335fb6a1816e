//! Following a log file as it grows (dnsmasq's `--log-facility=FILE`), like
//! `tail -F`: [`Tail`] decides from the file's identity and size what to
//! read and splits what was read into lines; [`spawn`] is the thin loop that
//! stats, reads and sends.

use std::io::SeekFrom;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::mpsc::Sender;

/// Longest line sent; the rest of a longer line is dropped.
pub const MAX_LINE: usize = 4096;
/// Most bytes read per poll, so a huge backlog is taken in steps.
pub const MAX_READ: u64 = 1 << 20;

/// Which file a path names (a rotated log is a new file at the same path).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

impl FileId {
    pub fn of(meta: &std::fs::Metadata) -> FileId {
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

/// What to do next, from what the path names now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Nothing new (or no file yet).
    Wait,
    /// The path names another file: finish the open one, then open it.
    Switch,
    /// Read `len` bytes at `from` from the open file.
    Read { from: u64, len: u64 },
}

/// The follower's state: no I/O here.
#[derive(Debug, Default)]
pub struct Tail {
    /// The file being read, when one is open.
    file: Option<FileId>,
    /// Bytes of it already read.
    offset: u64,
    /// The line read so far (at most [`MAX_LINE`] bytes).
    partial: Vec<u8>,
    /// The current line passed [`MAX_LINE`]: drop the rest of it.
    cutting: bool,
}

impl Tail {
    /// No file open yet: the first one seen is read from its start.
    pub fn new() -> Tail {
        Tail::default()
    }

    /// Following `file` from `len`, its size now.
    pub fn at_end(file: FileId, len: u64) -> Tail {
        Tail {
            file: Some(file),
            offset: len,
            ..Tail::default()
        }
    }

    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// `now`: the identity and size of the file the path names, if any.
    pub fn plan(&mut self, now: Option<(FileId, u64)>) -> Plan {
        let Some((id, len)) = now else {
            // Gone (being rotated, or not yet created): wait for it.
            return Plan::Wait;
        };
        if self.file != Some(id) {
            return Plan::Switch;
        }
        if len < self.offset {
            // Truncated: what is there now is all new.
            self.offset = 0;
            self.partial.clear();
            self.cutting = false;
        }
        if len > self.offset {
            Plan::Read {
                from: self.offset,
                len: (len - self.offset).min(MAX_READ),
            }
        } else {
            Plan::Wait
        }
    }

    /// The new file `id` is open (read it from its start). Returns the old
    /// file's last line when it had no newline.
    pub fn switched(&mut self, id: FileId) -> Option<String> {
        let last = self.take_partial();
        self.file = Some(id);
        self.offset = 0;
        last
    }

    /// Bytes read at the offset: the lines they complete.
    pub fn bytes(&mut self, data: &[u8]) -> Vec<String> {
        self.offset += data.len() as u64;
        let mut lines = Vec::new();
        let mut rest = data;
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            self.push(&rest[..nl]);
            lines.push(self.finish_line());
            rest = &rest[nl + 1..];
        }
        self.push(rest);
        lines
    }

    fn push(&mut self, bytes: &[u8]) {
        let room = MAX_LINE - self.partial.len();
        if bytes.len() > room {
            self.cutting = true;
        }
        self.partial
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    /// The line held, if any (a file's last line without its newline).
    fn take_partial(&mut self) -> Option<String> {
        let had = !self.partial.is_empty() || self.cutting;
        let line = self.finish_line();
        had.then_some(line)
    }

    /// The line held, ended by a newline (empty lines too).
    fn finish_line(&mut self) -> String {
        self.cutting = false;
        let mut line = std::mem::take(&mut self.partial);
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        String::from_utf8_lossy(&line).into_owned()
    }
}

/// Spawns a task following `path` from its current end; each complete line
/// is sent on `lines` (bounded channel; when full, the follower waits).
/// Handles: file missing (waits for it), truncation (size < offset: from
/// 0), rotation (inode changed: reopen the new file from 0), lines longer
/// than 4096 bytes (cut), at most 1 MiB read per poll, polls every `poll`
/// (250 ms in production). Ends when `lines` is closed.
pub fn spawn(path: PathBuf, poll: Duration, lines: Sender<String>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut open: Option<tokio::fs::File> = None;
        let mut tail = Tail::new();
        if let Some((file, id, len)) = open_file(&path).await {
            open = Some(file);
            tail = Tail::at_end(id, len);
        }
        loop {
            for line in poll_once(&path, &mut tail, &mut open).await {
                if lines.send(line).await.is_err() {
                    return;
                }
            }
            tokio::select! {
                _ = lines.closed() => return,
                _ = tokio::time::sleep(poll) => {}
            }
        }
    })
}

/// One look at the path: the lines it gives.
async fn poll_once(
    path: &std::path::Path,
    tail: &mut Tail,
    open: &mut Option<tokio::fs::File>,
) -> Vec<String> {
    let now = tokio::fs::metadata(path)
        .await
        .ok()
        .map(|m| (FileId::of(&m), m.len()));
    match tail.plan(now) {
        Plan::Wait => Vec::new(),
        Plan::Read { from, len } => match open.as_mut() {
            Some(file) => match read_at(file, from, len).await {
                Ok(data) => tail.bytes(&data),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot read the followed log");
                    Vec::new()
                }
            },
            None => Vec::new(),
        },
        Plan::Switch => {
            let mut lines = Vec::new();
            // What the old file got before it was rotated away.
            if let Some(file) = open.as_mut()
                && let Ok(data) = read_at(file, tail.offset(), MAX_READ).await
            {
                lines = tail.bytes(&data);
            }
            if let Some((file, id, _)) = open_file(path).await {
                *open = Some(file);
                lines.extend(tail.switched(id));
                tracing::debug!(path = %path.display(), "following a new file");
            }
            lines
        }
    }
}

/// The file and its identity from the open handle (the path may have moved
/// on between a stat and the open).
async fn open_file(path: &std::path::Path) -> Option<(tokio::fs::File, FileId, u64)> {
    let file = tokio::fs::File::open(path).await.ok()?;
    let meta = file.metadata().await.ok()?;
    Some((file, FileId::of(&meta), meta.len()))
}

/// Up to `len` bytes at `from` (fewer at the end of the file).
async fn read_at(file: &mut tokio::fs::File, from: u64, len: u64) -> std::io::Result<Vec<u8>> {
    file.seek(SeekFrom::Start(from)).await?;
    let mut data = Vec::new();
    (&mut *file)
        .take(len.min(MAX_READ))
        .read_to_end(&mut data)
        .await?;
    Ok(data)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use tokio::sync::mpsc;

    use super::*;

    const ID: FileId = FileId { dev: 1, ino: 1 };

    #[test]
    fn bytes_split_into_lines_and_a_partial_line_waits() {
        let mut t = Tail::at_end(ID, 0);
        assert_eq!(t.bytes(b"one\ntw"), ["one"]);
        assert_eq!(t.bytes(b"o\r\n\nthree"), ["two", ""]);
        assert_eq!(t.offset(), 15);
        assert_eq!(
            t.switched(FileId { dev: 1, ino: 2 }),
            Some("three".to_string())
        );
        assert_eq!(t.offset(), 0);
    }

    #[test]
    fn a_long_line_is_cut_and_the_next_one_is_whole() {
        let mut t = Tail::new();
        let mut lines = t.bytes(&vec![b'x'; 3000]);
        lines.extend(t.bytes(&vec![b'y'; 3000]));
        lines.extend(t.bytes(b"yy\nnext\n"));
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].len(), MAX_LINE);
        assert!(lines[0].starts_with("xxx") && lines[0].ends_with("yyy"));
        assert_eq!(lines[1], "next");
        // Cut inside a UTF-8 character: lossy, never a panic.
        let mut t = Tail::new();
        let mut text = vec![b'a'];
        text.extend("é".repeat(3000).as_bytes());
        text.push(b'\n');
        let lines = t.bytes(&text);
        assert!(lines[0].len() <= MAX_LINE + 3);
    }

    #[test]
    fn plans_follow_growth_truncation_and_a_new_file() {
        let mut t = Tail::at_end(ID, 100);
        assert_eq!(t.plan(Some((ID, 100))), Plan::Wait);
        assert_eq!(t.plan(None), Plan::Wait);
        assert_eq!(t.plan(Some((ID, 150))), Plan::Read { from: 100, len: 50 });
        assert_eq!(t.plan(Some((ID, 40))), Plan::Read { from: 0, len: 40 });
        assert_eq!(
            t.plan(Some((ID, 5 * MAX_READ))),
            Plan::Read {
                from: 0,
                len: MAX_READ
            }
        );
        assert_eq!(t.plan(Some((FileId { dev: 1, ino: 9 }, 1))), Plan::Switch);
        assert_eq!(Tail::new().plan(Some((ID, 1))), Plan::Switch);
    }

    struct Followed {
        rx: mpsc::Receiver<String>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Followed {
        fn start(path: &std::path::Path) -> Followed {
            let (tx, rx) = mpsc::channel(16);
            let task = spawn(path.to_path_buf(), Duration::from_millis(10), tx);
            Followed { rx, task }
        }

        async fn next(&mut self) -> String {
            tokio::time::timeout(Duration::from_secs(5), self.rx.recv())
                .await
                .expect("no line within 5 s")
                .expect("the follower ended")
        }

        /// Nothing more arrives for a while.
        async fn quiet(&mut self) {
            let got = tokio::time::timeout(Duration::from_millis(150), self.rx.recv()).await;
            assert!(got.is_err(), "unexpected {got:?}");
        }
    }

    fn append(path: &std::path::Path, text: &[u8]) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(text).unwrap();
    }

    /// Lets the follower take its first look before the test writes.
    async fn settle() {
        tokio::time::sleep(Duration::from_millis(60)).await;
    }

    #[tokio::test]
    async fn appended_lines_arrive_and_a_partial_line_waits_for_its_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dnsmasq.log");
        append(&path, b"old line\n");
        let mut f = Followed::start(&path);
        settle().await;
        append(&path, b"first\nsecond\nthi");
        assert_eq!(f.next().await, "first");
        assert_eq!(f.next().await, "second");
        f.quiet().await;
        append(&path, b"rd\n");
        assert_eq!(f.next().await, "third");
    }

    #[tokio::test]
    async fn truncation_and_rotation_are_followed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dnsmasq.log");
        append(&path, b"");
        let mut f = Followed::start(&path);
        settle().await;
        append(&path, b"a line long enough to be cut back\n");
        assert_eq!(f.next().await, "a line long enough to be cut back");
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(0)
            .unwrap();
        append(&path, b"short\n");
        assert_eq!(f.next().await, "short");
        // Rotation: the last words of the old file, then the new file whole.
        append(&path, b"last of the old\n");
        std::fs::rename(&path, dir.path().join("dnsmasq.log.1")).unwrap();
        append(&path, b"new one\n");
        assert_eq!(f.next().await, "last of the old");
        assert_eq!(f.next().await, "new one");
        append(
            &dir.path().join("dnsmasq.log.1"),
            b"written to the old name\n",
        );
        append(&path, b"more\n");
        assert_eq!(f.next().await, "more");
    }

    #[tokio::test]
    async fn a_file_created_later_is_picked_up_from_its_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dnsmasq.log");
        let mut f = Followed::start(&path);
        settle().await;
        append(&path, b"born\n");
        assert_eq!(f.next().await, "born");
    }

    #[tokio::test]
    async fn a_huge_line_is_cut_and_the_follower_ends_with_its_channel() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dnsmasq.log");
        append(&path, b"");
        let mut f = Followed::start(&path);
        settle().await;
        let mut huge = vec![b'x'; 3 * 1024 * 1024];
        huge.extend(b"\nafter\n\xff\n");
        append(&path, &huge);
        assert_eq!(f.next().await, "x".repeat(MAX_LINE));
        assert_eq!(f.next().await, "after");
        assert_eq!(f.next().await, "\u{fffd}");
        drop(f.rx);
        tokio::time::timeout(Duration::from_secs(5), f.task)
            .await
            .expect("the follower did not end when its channel closed")
            .unwrap();
    }
}
