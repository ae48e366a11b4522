//! `kubectl cp` in recordings: kubectl copies files with `tar` over exec — `tar -xmf - [-C DIR]`
//! with the archive on stdin for an upload, `tar cf - PATH` with it on stdout for a download.
//! A session running one of these has the archive's entries (names, sizes, direction) added to
//! its commands object as `cp: PATH (upload, N bytes)`, so `kubetape search` finds which files
//! moved, not only that a `tar` ran.
//!
//! The archive is read as it streams past, on the recorder's observer thread (never on the
//! relay's path), by [`TarReader`]: headers only, file contents skipped, bounded memory for long
//! names (GNU `L` entries, PAX `path` records). Whatever is not a tar archive just ends the
//! reading; nothing here can fail a session.

use storage_schema::commands::{CommandEntry, CommandObserver};
use storage_schema::{Event, EventKind, SessionMeta, Stream};

/// Most entries listed per session (a copy of a large tree would otherwise flood the index).
pub const MAX_ENTRIES: usize = 10_000;
/// Longest name kept from a GNU long-name entry or a PAX header.
const MAX_NAME: usize = 64 << 10;

/// One file (or link) in the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TarEntry {
    pub name: String,
    pub size: u64,
    /// The tar type flag (`b'0'` file, `b'5'` directory, `b'2'` symlink, ...).
    pub kind: u8,
}

#[derive(Debug)]
enum State {
    /// Collecting a 512-byte header.
    Header,
    /// Skipping `n` more bytes (contents and padding).
    Skip(u64),
    /// Reading `n` more bytes of a long name (GNU `L`) or PAX records (`x`), then skipping pad.
    Meta { left: u64, pad: u64, pax: bool },
    /// Two zero blocks, or not a tar archive: nothing more is read.
    Done,
}

/// An incremental reader of tar headers.
#[derive(Debug)]
pub struct TarReader {
    state: State,
    block: Vec<u8>,
    meta: Vec<u8>,
    /// The name the next header's entry takes (from `L` or a PAX `path`).
    next_name: Option<String>,
    zero_blocks: u8,
    pub entries: Vec<TarEntry>,
    /// Entries past [`MAX_ENTRIES`], counted only.
    pub more: u64,
}

impl Default for TarReader {
    fn default() -> Self {
        Self {
            state: State::Header,
            block: Vec::with_capacity(512),
            meta: Vec::new(),
            next_name: None,
            zero_blocks: 0,
            entries: Vec::new(),
            more: 0,
        }
    }
}

fn octal(field: &[u8]) -> Option<u64> {
    // Base-256 (GNU) for large sizes: high bit of the first byte set.
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        let mut v: u64 = u64::from(field[0] & 0x7f);
        for b in &field[1..] {
            v = v.checked_mul(256)?.checked_add(u64::from(*b))?;
        }
        return Some(v);
    }
    let text = std::str::from_utf8(field).ok()?;
    let text = text.trim_matches(|c: char| c == '\0' || c == ' ');
    if text.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(text, 8).ok()
}

fn cstr(field: &[u8]) -> String {
    let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

fn padded(size: u64) -> u64 {
    size.div_ceil(512).saturating_mul(512)
}

impl TarReader {
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Feeds the next bytes of the stream.
    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            match &mut self.state {
                State::Done => return,
                State::Skip(n) => {
                    let take = (*n).min(data.len() as u64);
                    *n -= take;
                    data = &data[take as usize..];
                    if *n == 0 {
                        self.state = State::Header;
                    }
                }
                State::Meta { left, pad, pax } => {
                    let take = (*left).min(data.len() as u64) as usize;
                    if self.meta.len() + take <= MAX_NAME {
                        self.meta.extend_from_slice(&data[..take]);
                    }
                    *left -= take as u64;
                    data = &data[take..];
                    if *left == 0 {
                        let (pad, pax) = (*pad, *pax);
                        let meta = std::mem::take(&mut self.meta);
                        self.next_name = if pax {
                            pax_path(&meta).or(self.next_name.take())
                        } else {
                            Some(cstr(&meta))
                        };
                        self.state = if pad > 0 {
                            State::Skip(pad)
                        } else {
                            State::Header
                        };
                    }
                }
                State::Header => {
                    let take = (512 - self.block.len()).min(data.len());
                    self.block.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    if self.block.len() == 512 {
                        let block = std::mem::take(&mut self.block);
                        self.header(&block);
                    }
                }
            }
        }
    }

    fn header(&mut self, h: &[u8]) {
        if h.iter().all(|b| *b == 0) {
            self.zero_blocks += 1;
            if self.zero_blocks >= 2 {
                self.state = State::Done;
            }
            return;
        }
        self.zero_blocks = 0;
        // The checksum makes "is this a tar header" certain enough to list what it names.
        let stored = octal(&h[148..156]);
        let sum: u64 = h
            .iter()
            .enumerate()
            .map(|(i, b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    u64::from(*b)
                }
            })
            .sum();
        let (Some(stored), Some(size)) = (stored, octal(&h[124..136])) else {
            self.state = State::Done;
            return;
        };
        if stored != sum {
            self.state = State::Done;
            return;
        }
        let kind = h[156];
        match kind {
            b'L' | b'x' => {
                self.meta.clear();
                self.state = State::Meta {
                    left: size,
                    pad: padded(size) - size,
                    pax: kind == b'x',
                };
                return;
            }
            // Global PAX headers and GNU long link names: skipped.
            b'g' | b'K' => {
                self.state = State::Skip(padded(size));
                return;
            }
            _ => {}
        }
        let name = self.next_name.take().unwrap_or_else(|| {
            let name = cstr(&h[0..100]);
            let prefix = if &h[257..262] == b"ustar" {
                cstr(&h[345..500])
            } else {
                String::new()
            };
            if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            }
        });
        if self.entries.len() < MAX_ENTRIES {
            self.entries.push(TarEntry { name, size, kind });
        } else {
            self.more += 1;
        }
        // Only regular files carry contents.
        let data = if matches!(kind, b'0' | b'\0' | b'7') {
            padded(size)
        } else {
            0
        };
        self.state = if data > 0 {
            State::Skip(data)
        } else {
            State::Header
        };
    }
}

/// The `path` record of PAX extended headers (`"%d path=%s\n"`).
fn pax_path(records: &[u8]) -> Option<String> {
    let mut rest = records;
    let mut path = None;
    while !rest.is_empty() {
        let space = rest.iter().position(|b| *b == b' ')?;
        let len: usize = std::str::from_utf8(&rest[..space]).ok()?.parse().ok()?;
        if len <= space || len > rest.len() {
            return path;
        }
        let record = &rest[space + 1..len];
        let record = record.strip_suffix(b"\n").unwrap_or(record);
        if let Some(v) = record.strip_prefix(b"path=") {
            path = Some(String::from_utf8_lossy(v).into_owned());
        }
        rest = &rest[len..];
    }
    path
}

/// Which way a `kubectl cp` session moves files, and where they land.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Copy {
    /// `tar -xmf - [-C DIR]`: the archive is stdin; names are relative to `dir`.
    Upload { dir: Option<String> },
    /// `tar cf - PATH`: the archive is stdout; `absolute` if PATH was (tar drops the `/`).
    Download { absolute: bool },
}

/// Whether `command` is one of kubectl cp's: `tar [--no-same-permissions --no-same-owner]
/// -xmf - [-C DIR]` (upload) or `tar cf - PATH` (download).
pub fn copy_of(command: &[String]) -> Option<Copy> {
    let args: Vec<&str> = command.iter().map(String::as_str).collect();
    let (first, rest) = args.split_first()?;
    if *first != "tar" {
        return None;
    }
    let mode = rest.iter().position(|a| !a.starts_with("--"))?;
    match (rest[mode], rest.get(mode + 1)) {
        ("-xmf" | "xmf", Some(&"-")) => {
            let dir = rest[mode + 2..]
                .windows(2)
                .find(|w| w[0] == "-C")
                .map(|w| w[1].to_string());
            Some(Copy::Upload { dir })
        }
        ("cf" | "-cf", Some(&"-")) => rest.get(mode + 2).map(|path| Copy::Download {
            absolute: path.starts_with('/'),
        }),
        _ => None,
    }
}

/// Wraps the session's command observer (if any) so that a `kubectl cp` session also lists the
/// files it moved; other sessions get `inner` back unchanged.
pub fn observe(
    meta: &SessionMeta,
    inner: Option<Box<dyn CommandObserver>>,
) -> Option<Box<dyn CommandObserver>> {
    let Some(copy) = copy_of(&meta.command) else {
        return inner;
    };
    Some(Box::new(CopyObserver {
        copy,
        inner,
        tar: TarReader::default(),
        last_at_us: 0,
    }))
}

struct CopyObserver {
    copy: Copy,
    inner: Option<Box<dyn CommandObserver>>,
    tar: TarReader,
    last_at_us: u64,
}

impl CommandObserver for CopyObserver {
    fn observe(&mut self, event: &Event) {
        if let Some(inner) = &mut self.inner {
            inner.observe(event);
        }
        if let EventKind::Data { stream, bytes } = &event.kind {
            let ours = matches!(
                (&self.copy, stream),
                (Copy::Upload { .. }, Stream::Stdin) | (Copy::Download { .. }, Stream::Stdout)
            );
            if ours && !self.tar.is_done() {
                self.tar.feed(bytes);
                self.last_at_us = event.at_us;
            }
        }
    }

    fn finish(self: Box<Self>) -> Vec<CommandEntry> {
        let mut out = self.inner.map(|i| i.finish()).unwrap_or_default();
        let (direction, prefix) = match &self.copy {
            Copy::Upload { dir } => (
                "upload",
                dir.as_deref()
                    .map(|d| format!("{}/", d.trim_end_matches('/')))
                    .unwrap_or_default(),
            ),
            Copy::Download { absolute } => (
                "download",
                if *absolute { "/".into() } else { String::new() },
            ),
        };
        for e in &self.tar.entries {
            let path = format!("{prefix}{}", e.name.trim_start_matches("./"));
            let what = match e.kind {
                b'5' => "directory".to_string(),
                b'2' | b'1' => "link".to_string(),
                _ => format!("{} bytes", e.size),
            };
            out.push(CommandEntry::new(
                self.last_at_us,
                format!("cp: {path} ({direction}, {what})"),
            ));
        }
        if self.tar.more > 0 {
            out.push(CommandEntry::new(
                self.last_at_us,
                format!("cp: … and {} more entries ({direction})", self.tar.more),
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ustar header for `name` of `size` bytes, checksummed.
    fn header(name: &str, size: u64, kind: u8) -> Vec<u8> {
        let mut h = vec![0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..108].copy_from_slice(b"0000644\0");
        h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
        h[156] = kind;
        h[257..263].copy_from_slice(b"ustar\0");
        h[148..156].copy_from_slice(b"        ");
        let sum: u64 = h.iter().map(|b| u64::from(*b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        h
    }

    fn archive(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, data) in files {
            out.extend(header(name, data.len() as u64, b'0'));
            out.extend_from_slice(data);
            out.resize(out.len().div_ceil(512) * 512, 0);
        }
        out.extend(vec![0u8; 1024]);
        out
    }

    #[test]
    fn entries_in_any_split() {
        let big = vec![7u8; 5000];
        let tar = archive(&[("app.conf", b"x=1\n"), ("dir/big.bin", &big)]);
        for split in [1, 7, 511, 512, 513, 4096, tar.len()] {
            let mut r = TarReader::default();
            for piece in tar.chunks(split) {
                r.feed(piece);
            }
            assert!(r.is_done(), "split {split}");
            assert_eq!(
                r.entries,
                [
                    TarEntry {
                        name: "app.conf".into(),
                        size: 4,
                        kind: b'0'
                    },
                    TarEntry {
                        name: "dir/big.bin".into(),
                        size: 5000,
                        kind: b'0'
                    },
                ],
                "split {split}"
            );
        }
    }

    #[test]
    fn long_names_and_garbage() {
        let long = "d/".repeat(80) + "f";
        let mut tar = header("././@LongLink", long.len() as u64 + 1, b'L');
        tar.extend(long.as_bytes());
        tar.push(0);
        tar.resize(tar.len().div_ceil(512) * 512, 0);
        tar.extend(header("short", 0, b'0'));
        let pax_record = " path=/pax/name\n".to_string();
        let pax = format!("{}{}", pax_record.len() + 2, pax_record);
        tar.extend(header("PaxHeaders/x", pax.len() as u64, b'x'));
        tar.extend(pax.as_bytes());
        tar.resize(tar.len().div_ceil(512) * 512, 0);
        tar.extend(header("renamed-by-pax", 0, b'0'));
        let mut r = TarReader::default();
        r.feed(&tar);
        let names: Vec<&str> = r.entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, [long.as_str(), "/pax/name"]);
        // Not tar: nothing listed, reading stops.
        let mut r = TarReader::default();
        r.feed(&[b'x'; 2000]);
        assert!(r.is_done() && r.entries.is_empty());
    }

    #[test]
    fn kubectl_cp_commands() {
        let cmd = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        assert_eq!(
            copy_of(&cmd("tar -xmf - -C /etc")),
            Some(Copy::Upload {
                dir: Some("/etc".into())
            })
        );
        assert_eq!(
            copy_of(&cmd("tar -xmf -")),
            Some(Copy::Upload { dir: None })
        );
        assert_eq!(
            copy_of(&cmd(
                "tar --no-same-permissions --no-same-owner -xmf - -C d"
            )),
            Some(Copy::Upload {
                dir: Some("d".into())
            })
        );
        assert_eq!(
            copy_of(&cmd("tar cf - /etc/app.conf")),
            Some(Copy::Download { absolute: true })
        );
        assert_eq!(copy_of(&cmd("tar cf -")), None);
        assert_eq!(copy_of(&cmd("sh -c tar")), None);
    }
}
