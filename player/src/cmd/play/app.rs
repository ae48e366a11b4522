//! Playback state and what each key does, apart from drawing: the screen at the play head, the
//! play head itself, speed, panes and the in-session search.

use std::time::{Duration, Instant};

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use storage_schema::Event;
use transcript::{Position, Terminal};

use super::at::At;
use super::tape::{EntryView as _, Tape};

/// Speeds `+` and `-` step through.
pub const SPEEDS: [f64; 9] = [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];
pub const MIN_SPEED: f64 = SPEEDS[0];
pub const MAX_SPEED: f64 = SPEEDS[SPEEDS.len() - 1];

/// With idle compression on, a pause longer than this plays as this long.
pub const IDLE_US: u64 = 2_000_000;

const SMALL_SEEK_US: u64 = 5_000_000;
const BIG_SEEK_US: u64 = 60_000_000;

/// How often `--follow` looks for new chunks (the gateway writes one at least every second).
const POLL_EVERY: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Copy)]
pub struct Config {
    pub at: Option<At>,
    pub speed: f64,
    pub follow: bool,
}

/// The side pane shown next to the screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pane {
    None,
    Commands,
    Info,
}

/// An in-session search and its matches (times, sorted).
#[derive(Debug)]
pub struct Search {
    pub query: String,
    pub hits: Vec<u64>,
}

#[derive(Debug)]
pub struct App {
    pub tape: Tape,
    /// The screen at the play head.
    pub term: Terminal,
    /// The next event to apply.
    next: Position,
    /// The play head, µs since the session started.
    pub pos_us: u64,
    /// Time of the last event applied (idle compression measures gaps from it).
    last_event_us: u64,
    pub playing: bool,
    pub speed: f64,
    pub compress: bool,
    pub follow: bool,
    pub pane: Pane,
    pub help: bool,
    /// Selected row of the command list.
    pub selected: usize,
    /// The entry `n`/`p`/the list last landed on (several may land at the same moment).
    landed: Option<usize>,
    /// The search being typed after `/`.
    pub input: Option<String>,
    pub search: Option<Search>,
    /// A one-line note for the status line (an error, "no more commands", …).
    pub message: Option<String>,
    pub quit: bool,
    last_poll: Instant,
    /// How long the last seek took and how many events it replayed after its keyframe (shown
    /// in the metadata pane: seeking is meant to be instant, and this shows whether it is).
    pub last_seek: Option<(Duration, usize)>,
    /// A seek waiting for the background indexer to get to its time (the play head shows the
    /// target; the screen is the old one until then, and playback holds).
    pub pending: Option<u64>,
    /// The damage and the number of gaps the status line has said (what the indexer finds
    /// later is said when it is found).
    said: (Option<String>, usize),
}

impl App {
    pub fn new(tape: Tape, cfg: Config) -> anyhow::Result<Self> {
        let (start, playing) = match cfg.at {
            // Following a live session starts at its live edge, as `tail -f` does.
            None if cfg.follow => (u64::MAX, true),
            None => (0, true),
            Some(At::Offset(us)) => (us, false),
            // Where the line is whole on the screen, not the key press before its echo.
            Some(At::Command(n)) => match tape.commands.get(n - 1) {
                Some(c) => (c.lands_at(), false),
                None => anyhow::bail!(
                    "session {} has {} command(s); there is no #{n}",
                    tape.id,
                    tape.commands.len()
                ),
            },
        };
        let size = tape.meta().size.unwrap_or(transcript::term::DEFAULT_SIZE);
        let mut app = Self {
            tape,
            term: Terminal::new(size),
            next: Position::default(),
            pos_us: 0,
            last_event_us: 0,
            playing,
            speed: cfg.speed,
            compress: true,
            follow: cfg.follow,
            pane: Pane::None,
            help: false,
            selected: 0,
            landed: None,
            input: None,
            search: None,
            message: None,
            quit: false,
            last_poll: Instant::now(),
            last_seek: None,
            pending: None,
            said: (None, 0),
        };
        app.take_news();
        app.seek(start)?;
        Ok(app)
    }

    /// Duration known so far.
    pub fn end_us(&self) -> u64 {
        self.tape.end_us()
    }

    /// Whether the play head is past the last event (and nothing more is coming).
    pub fn at_end(&self) -> bool {
        self.pending.is_none()
            && self.next.chunk >= self.tape.chunk_count()
            && self.pos_us >= self.end_us()
    }

    /// The chunk being played (1-based for display).
    pub fn chunk(&self) -> usize {
        self.next
            .chunk
            .min(self.tape.chunk_count().saturating_sub(1))
            + 1
    }

    /// Entries typed at or before the play head.
    pub fn commands_before(&self) -> usize {
        self.tape
            .commands
            .partition_point(|c| c.at_us <= self.pos_us)
    }

    /// The entry the screen shows last at the play head (its line is whole on the screen by
    /// now), with its 1-based number: what the status line names.
    pub fn entry_here(&self) -> Option<(usize, &storage_schema::commands::CommandEntry)> {
        self.tape
            .commands
            .iter()
            .enumerate()
            .filter(|(_, c)| c.lands_at() <= self.pos_us)
            .max_by_key(|(i, c)| (c.lands_at(), *i))
            .map(|(i, c)| (i + 1, c))
    }

    /// Moves the play head to `at_us` (clamped to the known end): keyframe + short replay.
    /// Far beyond what the background indexer has reached, the seek waits for it
    /// ([`pending`](Self::pending), finished by [`tick`](Self::tick)); keys keep working
    /// meanwhile, and another seek replaces it.
    pub fn seek(&mut self, at_us: u64) -> anyhow::Result<()> {
        let at_us = at_us.min(self.end_us());
        let started = Instant::now();
        let seeked = self.tape.seek(at_us)?;
        self.pos_us = at_us;
        self.last_event_us = at_us;
        let Some(seeked) = seeked else {
            self.pending = Some(at_us);
            return Ok(());
        };
        self.pending = None;
        self.last_seek = Some((started.elapsed(), seeked.replayed));
        self.term = seeked.terminal;
        self.next = seeked.next;
        Ok(())
    }

    fn apply(&mut self, event: &Event, after: Position) {
        self.term.apply(event);
        self.next = after;
        self.last_event_us = event.at_us;
    }

    /// Plays `elapsed` of wall time at the current speed (idle gaps shortened when on).
    pub fn advance(&mut self, elapsed: Duration) -> anyhow::Result<()> {
        if self.pending.is_some() {
            // The screen is not at the play head yet: time does not pass for it.
            return Ok(());
        }
        let mut budget = (elapsed.as_secs_f64() * self.speed * 1e6) as u64;
        loop {
            let Some((event, after)) = self.tape.event(self.next)? else {
                self.pos_us = (self.pos_us + budget).min(self.end_us().max(self.pos_us));
                if !self.follow {
                    self.playing = false;
                }
                return Ok(());
            };
            let at = event.at_us.max(self.pos_us);
            let gap_end = if self.compress && at.saturating_sub(self.last_event_us) > IDLE_US {
                // Play the gap as IDLE_US, then jump to the event.
                (self.last_event_us + IDLE_US).max(self.pos_us)
            } else {
                at
            };
            let need = gap_end - self.pos_us;
            if budget < need {
                self.pos_us += budget;
                return Ok(());
            }
            budget -= need;
            self.pos_us = at;
            self.apply(&event, after);
        }
    }

    /// Applies the next event only, moving the play head to it.
    pub fn step(&mut self) -> anyhow::Result<()> {
        self.playing = false;
        if self.pending.is_some() {
            self.message = Some("still indexing up to the play head".into());
            return Ok(());
        }
        match self.tape.event(self.next)? {
            Some((event, after)) => {
                self.pos_us = event.at_us.max(self.pos_us);
                self.apply(&event, after);
            }
            None => self.message = Some("end of the recording".into()),
        }
        Ok(())
    }

    /// Time passes: what the background indexer found, a seek that waited for it, playback,
    /// and for `--follow` new chunks.
    pub fn tick(&mut self, elapsed: Duration) -> anyhow::Result<()> {
        self.take_news();
        if let Some(at) = self.pending
            && self.tape.covers(at)
        {
            // Once: if it fails, the error is said and the player stays where it is.
            self.pending = None;
            self.seek(at)?;
        }
        if self.follow && self.last_poll.elapsed() >= POLL_EVERY {
            self.last_poll = Instant::now();
            // A failed look (the store briefly unreachable) is reported and retried on the next
            // one; what was already read keeps playing.
            if let Err(e) = self.tape.poll() {
                self.message = Some(format!("following: {e:#}"));
            }
            if self.tape.ended() {
                // Sealed or interrupted: nothing more will come; play out what is left.
                self.follow = false;
            }
        }
        if self.playing {
            self.advance(elapsed)?;
        }
        Ok(())
    }

    /// Takes in what the indexer found: damage found ends the recording before it (the play
    /// head moves back if it was past the new end) and is said at once, as are gaps.
    fn take_news(&mut self) {
        self.tape.sync();
        if self.tape.damage != self.said.0 {
            self.said.0 = self.tape.damage.clone();
            self.message = self.tape.damage.clone();
            if self.pending.is_some_and(|at| at > self.end_us()) || self.pos_us > self.end_us() {
                self.pending = Some(self.end_us());
            }
        } else if self.tape.gaps.len() > self.said.1 && self.message.is_none() {
            self.message = gap_note(&self.tape.gaps);
        }
        self.said.1 = self.tape.gaps.len();
    }

    /// A click on the timeline, `col` of `width` columns (the timeline's first column is the
    /// start, its last the end, as drawn).
    pub fn click_timeline(&mut self, col: u16, width: u16) -> anyhow::Result<()> {
        let last = u64::from(width.max(2) - 1);
        let at = self.end_us() as u128 * u128::from(u64::from(col).min(last)) / u128::from(last);
        self.seek(at as u64)
    }

    fn jump(&mut self, at_us: u64) -> anyhow::Result<()> {
        self.playing = false;
        self.seek(at_us)
    }

    /// To the next entry, where its line is whole on the screen. Entries whose lines show at
    /// the same moment are stepped through one by one (the index of the one landed on is
    /// kept).
    fn next_command(&mut self) -> anyhow::Result<()> {
        let pos = self.pos_us;
        let after_current = self.landed.filter(|&i| self.lands(i) == Some(pos));
        let next = self
            .tape
            .commands
            .iter()
            .enumerate()
            .filter(|(i, c)| match after_current {
                Some(cur) => (c.lands_at(), *i) > (pos, cur),
                None => c.lands_at() > pos,
            })
            .min_by_key(|(i, c)| (c.lands_at(), *i))
            .map(|(i, _)| i);
        match next {
            Some(i) => self.land_on(i),
            None => {
                self.message = Some("no command after this point".into());
                Ok(())
            }
        }
    }

    fn previous_command(&mut self) -> anyhow::Result<()> {
        let pos = self.pos_us;
        let before_current = self.landed.filter(|&i| self.lands(i) == Some(pos));
        let previous = self
            .tape
            .commands
            .iter()
            .enumerate()
            .filter(|(i, c)| match before_current {
                Some(cur) => (c.lands_at(), *i) < (pos, cur),
                None => c.lands_at() < pos,
            })
            .max_by_key(|(i, c)| (c.lands_at(), *i))
            .map(|(i, _)| i);
        match previous {
            Some(i) => self.land_on(i),
            None => {
                self.message = Some("no command before this point".into());
                Ok(())
            }
        }
    }

    fn lands(&self, i: usize) -> Option<u64> {
        self.tape.commands.get(i).map(|c| c.lands_at())
    }

    /// Pauses where entry `i`'s line is whole on the screen.
    fn land_on(&mut self, i: usize) -> anyhow::Result<()> {
        let at = self.tape.commands[i].lands_at();
        self.jump(at)?;
        self.landed = Some(i);
        self.selected = i;
        Ok(())
    }

    fn next_match(&mut self, forward: bool) -> anyhow::Result<()> {
        let Some(search) = &self.search else {
            return Ok(());
        };
        let pos = self.pos_us;
        let found = if forward {
            search.hits.iter().find(|&&t| t > pos).copied()
        } else {
            search.hits.iter().rev().find(|&&t| t < pos).copied()
        };
        let target = match found {
            Some(t) => t,
            None => {
                self.message = Some("search wrapped".into());
                match if forward {
                    search.hits.first()
                } else {
                    search.hits.last()
                } {
                    Some(&t) => t,
                    None => return Ok(()),
                }
            }
        };
        self.jump(target)
    }

    /// Which match the play head is on (1-based), if it is on one.
    pub fn match_number(&self) -> Option<usize> {
        let s = self.search.as_ref()?;
        s.hits.binary_search(&self.pos_us).ok().map(|i| i + 1)
    }

    fn run_search(&mut self, query: String) -> anyhow::Result<()> {
        if query.is_empty() {
            self.search = None;
            return Ok(());
        }
        let hits = self.tape.search(&query)?;
        if hits.is_empty() {
            self.message = Some(format!("no match for {query:?}"));
            self.search = None;
            return Ok(());
        }
        self.search = Some(Search { query, hits });
        // From the play head on, as `less` does; the first match when there is none after.
        let pos = self.pos_us;
        self.pos_us = pos.saturating_sub(1);
        self.next_match(true)
    }

    fn change_speed(&mut self, up: bool) {
        let i = SPEEDS.partition_point(|&s| s < self.speed);
        let i = if up {
            if SPEEDS.get(i) == Some(&self.speed) {
                i + 1
            } else {
                i
            }
        } else {
            i.saturating_sub(1)
        };
        self.speed = SPEEDS[i.min(SPEEDS.len() - 1)];
    }

    /// One key press.
    pub fn key(&mut self, key: KeyEvent) -> anyhow::Result<()> {
        self.message = None;
        if let Some(input) = &mut self.input {
            match key.code {
                KeyCode::Enter => {
                    let query = std::mem::take(input);
                    self.input = None;
                    return self.run_search(query);
                }
                KeyCode::Esc => self.input = None,
                KeyCode::Backspace => {
                    input.pop();
                }
                KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) => input.push(c),
                _ => {}
            }
            return Ok(());
        }
        if self.help {
            // Any key closes the help; q still quits.
            self.help = false;
            if key.code != KeyCode::Char('q') {
                return Ok(());
            }
        }
        let commands_pane = self.pane == Pane::Commands && !self.tape.commands.is_empty();
        match key.code {
            KeyCode::Char('q') => self.quit = true,
            KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => self.quit = true,
            KeyCode::Char('?') => self.help = true,
            KeyCode::Char(' ') => {
                if !self.playing && self.at_end() && !self.follow {
                    self.seek(0)?;
                }
                self.playing = !self.playing;
            }
            KeyCode::Char('+') | KeyCode::Char('=') => self.change_speed(true),
            KeyCode::Char('-') | KeyCode::Char('_') => self.change_speed(false),
            KeyCode::Char('.') => self.step()?,
            KeyCode::Char('z') => self.compress = !self.compress,
            KeyCode::Left => self.seek(self.pos_us.saturating_sub(SMALL_SEEK_US))?,
            KeyCode::Right => self.seek(self.pos_us + SMALL_SEEK_US)?,
            KeyCode::Up | KeyCode::Char('k') if commands_pane => {
                self.selected = self.selected.saturating_sub(1)
            }
            KeyCode::Down | KeyCode::Char('j') if commands_pane => {
                self.selected = (self.selected + 1).min(self.tape.commands.len() - 1)
            }
            KeyCode::Enter if commands_pane => {
                self.land_on(self.selected.min(self.tape.commands.len() - 1))?
            }
            KeyCode::Down | KeyCode::PageDown => {
                self.seek(self.pos_us.saturating_sub(BIG_SEEK_US))?
            }
            KeyCode::Up | KeyCode::PageUp => self.seek(self.pos_us + BIG_SEEK_US)?,
            KeyCode::Home => self.seek(0)?,
            KeyCode::End => self.seek(self.end_us())?,
            KeyCode::Char(d @ '0'..='9') => {
                let tenth = u64::from(d as u8 - b'0');
                self.seek(self.end_us() / 10 * tenth)?
            }
            KeyCode::Char('n') if self.search.is_some() => self.next_match(true)?,
            KeyCode::Char('N') if self.search.is_some() => self.next_match(false)?,
            KeyCode::Char('n') => self.next_command()?,
            KeyCode::Char('p') => self.previous_command()?,
            KeyCode::Char('/') => self.input = Some(String::new()),
            KeyCode::Esc => self.search = None,
            KeyCode::Char('c') => {
                self.pane = if self.pane == Pane::Commands {
                    Pane::None
                } else {
                    // Select the command at the play head.
                    self.selected = self.commands_before().saturating_sub(1);
                    Pane::Commands
                }
            }
            KeyCode::Char('i') => {
                self.pane = if self.pane == Pane::Info {
                    Pane::None
                } else {
                    Pane::Info
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// What the status line says at open about the losses a recording declares.
fn gap_note(gaps: &[storage_schema::Gap]) -> Option<String> {
    let first = gaps.first()?;
    let more = match gaps.len() {
        1 => String::new(),
        n => format!(" (and {} more gaps)", n - 1),
    };
    Some(format!(
        "this recording has a gap: {}{more}",
        first.describe()
    ))
}

#[cfg(test)]
mod tests {
    use super::super::tape::Hold;
    use super::*;
    use ratatui::crossterm::event::KeyEvent;
    use storage_schema::FlushPolicy;
    use storage_schema::store::{Recorder, Store};
    use storage_schema::{EventKind, ExitInfo, Identity, Keyring, SessionKind, Stream, Target};

    fn out(at_us: u64, text: &str) -> Event {
        Event {
            at_us,
            kind: EventKind::Data {
                stream: Stream::Stdout,
                bytes: text.as_bytes().to_vec(),
            },
        }
    }

    /// A session in a temporary store: output at 0, 1 s, 11 s (after a 10 s pause) and 12 s,
    /// in several small chunks.
    struct Fixture {
        rt: tokio::runtime::Runtime,
        _dir: tempfile::TempDir,
        store: Store,
        keys: std::path::PathBuf,
        id: storage_schema::SessionId,
    }

    impl Fixture {
        fn new() -> Self {
            Self::with_commands(None)
        }

        /// The session, sealed with `commands` as the gateway does when it extracted them.
        fn with_commands(commands: Option<Vec<storage_schema::commands::CommandEntry>>) -> Self {
            let rt = tokio::runtime::Runtime::new().unwrap();
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(&format!("file://{}", dir.path().join("s").display())).unwrap();
            let keys = dir.path().join("k");
            let (ring, _) = Keyring::open_or_init(&keys).unwrap();
            let mut meta = storage_schema::SessionMeta::new(
                SessionKind::Exec,
                Identity {
                    user: "alice@example.com".into(),
                    groups: vec!["sre".into()],
                    issuer: Some("https://ci.example.com".into()),
                    claims: [("repository".to_string(), "org/app".to_string())].into(),
                },
                Target {
                    cluster: Some("eu1".into()),
                    namespace: Some("prod".into()),
                    pod: Some("web-0".into()),
                    container: Some("app".into()),
                    host: None,
                },
                vec!["sh".into()],
                true,
            );
            meta.size = Some(storage_schema::TermSize { cols: 20, rows: 5 });
            meta.grant = Some(storage_schema::session::Grant {
                id: "g-17".into(),
                reason: "INC-42 disk full".into(),
                approver: "bob@example.com".into(),
                expires_at_us: 1_795_446_245_000_000,
            });
            let policy = FlushPolicy {
                max_bytes: 16,
                ..FlushPolicy::default()
            };
            let id = rt.block_on(async {
                let rec = Recorder::start(store.clone(), &ring, meta, policy)
                    .await
                    .unwrap();
                for e in [
                    out(0, "a"),
                    out(1_000_000, "b"),
                    out(11_000_000, "needle"),
                    out(12_000_000, "d"),
                ] {
                    rec.record_at(e).await.unwrap();
                }
                let id = rec.session();
                let exit = Some(ExitInfo {
                    code: 0,
                    message: String::new(),
                });
                match commands {
                    Some(c) => rec.finish_with_commands(exit, c).await.unwrap(),
                    None => rec.finish(exit).await.unwrap(),
                };
                id
            });
            Self {
                rt,
                _dir: dir,
                store,
                keys,
                id,
            }
        }

        /// Flips a byte in the middle of the last chunk, as tampering would.
        fn damage_last_chunk(&self) {
            let dir = self
                ._dir
                .path()
                .join("s/sessions")
                .join(self.id.to_string())
                .join("chunks");
            let mut chunks: Vec<_> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            chunks.sort();
            let last = chunks.last().unwrap();
            let mut bytes = std::fs::read(last).unwrap();
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0x40;
            std::fs::write(last, bytes).unwrap();
        }

        /// The session opened, indexed to the end.
        fn tape(&self) -> Tape {
            let mut tape = self.open(Hold::None);
            tape.wait_indexed();
            tape
        }

        /// The session opened, its indexer started (it waits on `hold`).
        fn open(&self, hold: Hold) -> Tape {
            let ring = Keyring::open(&self.keys).unwrap();
            Tape::open(
                self.rt.handle().clone(),
                self.store.clone(),
                ring,
                self.id,
                hold,
            )
            .unwrap()
        }

        fn app(&self, at: Option<At>) -> App {
            let mut tape = self.tape();
            tape.finish_commands();
            App::new(
                tape,
                Config {
                    at,
                    speed: 1.0,
                    follow: false,
                },
            )
            .unwrap()
        }
    }

    #[test]
    fn declared_gaps_are_said_at_open() {
        assert_eq!(gap_note(&[]), None);
        let gap = storage_schema::Gap {
            cause: "store down".into(),
            from_us: 1_000_000,
            to_us: 2_500_000,
            bytes: storage_schema::StreamBytes {
                stdout: 12,
                ..Default::default()
            },
            events: 3,
            chunks: None,
        };
        let one = gap_note(std::slice::from_ref(&gap)).unwrap();
        assert_eq!(
            one,
            "this recording has a gap: 0:01.000–0:02.500: 12 bytes of output, 3 events lost (store down)"
        );
        let two = gap_note(&[gap.clone(), gap]).unwrap();
        assert!(two.ends_with("(and 1 more gaps)"), "{two}");
    }

    fn press(app: &mut App, code: KeyCode) {
        app.key(KeyEvent::from(code)).unwrap();
    }

    #[test]
    fn idle_gaps_play_as_two_seconds_unless_turned_off() {
        let f = Fixture::new();
        let mut app = f.app(None);
        assert!(app.tape.chunk_count() > 1, "{}", app.tape.chunk_count());
        assert_eq!(app.end_us(), 12_000_000);
        // 1 s of "b", then the 10 s pause shortened to 2 s: 3 s in, "needle" is out.
        app.advance(Duration::from_millis(2_900)).unwrap();
        assert_eq!(app.term.text(), "ab");
        app.advance(Duration::from_millis(100)).unwrap();
        assert_eq!(app.term.text(), "abneedle");
        assert_eq!(app.pos_us, 11_000_000);

        let mut app = f.app(None);
        press(&mut app, KeyCode::Char('z'));
        app.advance(Duration::from_secs(3)).unwrap();
        assert_eq!(app.term.text(), "ab");
        assert_eq!(app.pos_us, 3_000_000);
        // Faster: 4× plays the remaining 8 s of pause in 2 s.
        press(&mut app, KeyCode::Char('+'));
        press(&mut app, KeyCode::Char('+'));
        assert_eq!(app.speed, 4.0);
        app.advance(Duration::from_secs(2)).unwrap();
        assert_eq!(app.term.text(), "abneedle");
        // Past the end it stops, paused at the end.
        app.advance(Duration::from_secs(60)).unwrap();
        assert_eq!(app.term.text(), "abneedled");
        assert!(!app.playing && app.at_end());
    }

    /// The app on a tape whose indexer waits before its first chunk until `release` is
    /// dropped or sent to: everything here happens with nothing indexed.
    fn held(f: &Fixture, at: Option<At>) -> (App, std::sync::mpsc::Sender<()>) {
        let (release, hold) = std::sync::mpsc::channel();
        let mut tape = f.open(Hold::Channel(hold));
        tape.finish_commands();
        let cfg = Config {
            at,
            speed: 1.0,
            follow: false,
        };
        (App::new(tape, cfg).unwrap(), release)
    }

    #[test]
    fn it_plays_and_seeks_before_anything_is_indexed() {
        let f = Fixture::new();
        let (mut app, release) = held(&f, None);
        let chunks = app.tape.chunk_count();
        assert_eq!(app.tape.indexing(), Some((0, chunks)));
        // The first screen, and the whole duration from the last chunk.
        assert_eq!((app.term.text().as_str(), app.end_us()), ("a", 12_000_000));
        assert!(drawn(&app).contains("indexing 0%"), "{}", drawn(&app));
        app.advance(Duration::from_millis(1_500)).unwrap();
        assert_eq!(app.term.text(), "ab");
        // A short replay from the last keyframe (here the first) needs no index.
        press(&mut app, KeyCode::End);
        assert_eq!((app.term.text().as_str(), app.pending), ("abneedled", None));
        press(&mut app, KeyCode::Left);
        assert_eq!((app.pos_us, app.term.text().as_str()), (7_000_000, "ab"));
        assert_eq!(app.tape.indexing(), Some((0, chunks)));

        release.send(()).unwrap();
        app.tape.wait_indexed();
        app.tick(Duration::ZERO).unwrap();
        assert_eq!(app.tape.indexing(), None);
        assert!(!drawn(&app).contains("indexing"), "{}", drawn(&app));
        press(&mut app, KeyCode::Right);
        assert_eq!(app.term.text(), "abneedled");
    }

    #[test]
    fn a_seek_beyond_the_index_waits_for_it_and_keys_still_work() {
        let f = Fixture::new();
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let mut tape = f.open(Hold::Channel(hold));
        // As if every seek past the index were too long to replay.
        tape.never_replay_past_index();
        tape.finish_commands();
        let cfg = Config {
            at: Some(At::Offset(11_500_000)),
            speed: 1.0,
            follow: false,
        };
        let mut app = App::new(tape, cfg).unwrap();
        // The play head is at the target; the screen waits (blank, as at the start).
        assert_eq!((app.pending, app.pos_us), (Some(11_500_000), 11_500_000));
        assert_eq!(app.term.text(), "");
        let screen = drawn(&app);
        assert!(screen.contains("seeking: indexing 0%"), "{screen}");
        assert!(screen.contains("0:11.5 / 0:12.0"), "{screen}");
        // Time does not move a screen that is not there yet; keys work, a seek replaces it.
        app.playing = true;
        app.tick(Duration::from_secs(5)).unwrap();
        assert_eq!((app.pos_us, app.term.text().as_str()), (11_500_000, ""));
        // A seek whose replay needs no chunk past the first lands at once …
        press(&mut app, KeyCode::Left);
        assert_eq!((app.pending, app.term.text().as_str()), (None, "ab"));
        // … the others wait again.
        press(&mut app, KeyCode::End);
        assert_eq!(app.pending, Some(12_000_000));
        press(&mut app, KeyCode::Char('.'));
        assert_eq!(
            app.message.as_deref(),
            Some("still indexing up to the play head")
        );
        press(&mut app, KeyCode::Char('i'));
        assert!(drawn(&app).contains("0 of"), "{}", drawn(&app));
        press(&mut app, KeyCode::Char('q'));
        assert!(app.quit);

        drop(release);
        app.tape.wait_indexed();
        app.tick(Duration::ZERO).unwrap();
        assert_eq!(app.pending, None);
        assert_eq!(
            (app.pos_us, app.term.text().as_str()),
            (12_000_000, "abneedled")
        );
    }

    #[test]
    fn damage_met_before_the_indexer_stops_playback_and_its_report_follows() {
        let f = Fixture::new();
        let chunks = f.tape().chunk_count();
        f.damage_last_chunk();
        let (mut app, release) = held(&f, None);
        // Not known yet: the last chunk gave no duration, nothing is indexed.
        assert_eq!(app.tape.damage, None);
        // Playback reads the chunks itself and stops at the bad one, never showing it.
        let err = app.advance(Duration::from_secs(60)).unwrap_err();
        assert!(format!("{err:#}").contains("damaged"), "{err:#}");
        assert_eq!(app.term.text(), "abneedle");

        release.send(()).unwrap();
        app.tape.wait_indexed();
        app.tick(Duration::ZERO).unwrap();
        let damage = app.tape.damage.clone().expect("damage reported");
        assert!(
            damage.contains(&format!("chunk {}", chunks - 1)),
            "{damage}"
        );
        assert_eq!(app.message.as_deref(), Some(damage.as_str()));
        assert_eq!(
            (app.tape.chunk_count(), app.end_us()),
            (chunks - 1, 11_000_000)
        );
        press(&mut app, KeyCode::End);
        assert_eq!(app.term.text(), "abneedle");
    }

    #[test]
    fn a_damaged_chunk_ends_playback_before_it_and_says_so() {
        let f = Fixture::new();
        let chunks = f.app(None).tape.chunk_count();
        f.damage_last_chunk();
        let mut app = f.app(None);
        assert_eq!(app.tape.chunk_count(), chunks - 1);
        let damage = app.tape.damage.clone().expect("damage reported");
        assert!(
            damage.contains(&format!("chunk {}", chunks - 1)),
            "{damage}"
        );
        assert_eq!(app.message.as_deref(), Some(damage.as_str()));
        // The intact part plays; the damaged chunk's output ("d") never shows.
        app.advance(Duration::from_secs(60)).unwrap();
        assert_eq!(app.term.text(), "abneedle");
        press(&mut app, KeyCode::End);
        assert_eq!(app.term.text(), "abneedle");
    }

    #[test]
    fn stored_commands_are_used_and_a_damaged_commands_object_is_not() {
        let entry = |at_us, text: Option<&str>| storage_schema::commands::CommandEntry {
            exit_code: Some(0),
            ..match text {
                Some(t) => storage_schema::commands::CommandEntry::command(at_us, t),
                None => storage_schema::commands::CommandEntry::redacted(at_us),
            }
        };
        let f = Fixture::with_commands(Some(vec![
            entry(1_000_000, Some("make b")),
            entry(11_000_000, None),
        ]));
        let mut app = f.app(Some(At::Command(2)));
        assert_eq!(app.tape.commands.len(), 2);
        assert_eq!(app.tape.commands[0].label(), "make b");
        assert_eq!(app.tape.commands[1].shown_text(), None);
        assert_eq!(app.pos_us, 11_000_000);
        assert!(app.tape.damage.is_none());
        press(&mut app, KeyCode::Char('p'));
        assert_eq!((app.pos_us, app.term.text().as_str()), (1_000_000, "ab"));

        let path = f
            ._dir
            .path()
            .join("s/sessions")
            .join(f.id.to_string())
            .join("commands");
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        let app = f.app(None);
        let damage = app.tape.damage.clone().expect("damage reported");
        assert!(damage.starts_with("commands object"), "{damage}");
        // Extracted again from the chunks (which hold no shell, so no commands), never the
        // unverified ones; every chunk still plays.
        assert!(app.tape.commands.is_empty());
        assert_eq!(app.end_us(), 12_000_000);
    }

    /// The whole player drawn into a test terminal, as text.
    fn drawn(app: &App) -> String {
        let mut tui = ratatui::Terminal::new(ratatui::backend::TestBackend::new(100, 30)).unwrap();
        tui.draw(|f| super::super::ui::draw(f, app)).unwrap();
        let buf = tui.backend().buffer();
        (0..buf.area.height)
            .map(|y| {
                (0..buf.area.width)
                    .map(|x| buf[(x, y)].symbol())
                    .collect::<String>()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn the_metadata_pane_says_who_where_and_why() {
        let f = Fixture::new();
        let mut app = f.app(Some(At::Offset(1_000_000)));
        press(&mut app, KeyCode::Char('i'));
        let screen = drawn(&app);
        for want in [
            "alice@example.com",
            "sre",
            "https://ci.example.com",
            "repository=org/app",
            "eu1",
            "prod",
            "web-0",
            "INC-42 disk full",
            "bob@example.com",
            "g-17",
            "sealed",
            "exit      0",
        ] {
            assert!(screen.contains(want), "{want:?} missing:\n{screen}");
        }
        // The screen and the status line are drawn beside it.
        assert!(screen.contains("│ab"), "{screen}");
        assert!(screen.contains("PAUSED  0:01.0 / 0:12.0"), "{screen}");
        press(&mut app, KeyCode::Char('i'));
        assert!(!drawn(&app).contains("INC-42"));
    }

    #[test]
    fn seeks_steps_and_search_land_on_the_right_screen() {
        let f = Fixture::new();
        let mut app = f.app(Some(At::Offset(11_500_000)));
        assert!(!app.playing);
        assert_eq!(app.term.text(), "abneedle");
        press(&mut app, KeyCode::Left);
        assert_eq!((app.pos_us, app.term.text().as_str()), (6_500_000, "ab"));
        press(&mut app, KeyCode::Home);
        assert_eq!(app.term.text(), "a");
        press(&mut app, KeyCode::Char('.'));
        assert_eq!((app.pos_us, app.term.text().as_str()), (1_000_000, "ab"));
        press(&mut app, KeyCode::End);
        assert_eq!(app.term.text(), "abneedled");
        press(&mut app, KeyCode::Char('5'));
        assert_eq!(app.pos_us, 6_000_000);
        app.click_timeline(0, 121).unwrap();
        assert_eq!((app.pos_us, app.term.text().as_str()), (0, "a"));
        app.click_timeline(110, 121).unwrap();
        assert_eq!(
            (app.pos_us, app.term.text().as_str()),
            (11_000_000, "abneedle")
        );
        app.click_timeline(500, 121).unwrap();
        assert_eq!(app.pos_us, 12_000_000);
        // Speed stays within 0.25×…64×.
        for _ in 0..20 {
            press(&mut app, KeyCode::Char('-'));
        }
        assert_eq!(app.speed, MIN_SPEED);
        for _ in 0..20 {
            press(&mut app, KeyCode::Char('+'));
        }
        assert_eq!(app.speed, MAX_SPEED);

        // Search: typed after `/`, the output's time, case-insensitive.
        press(&mut app, KeyCode::Home);
        press(&mut app, KeyCode::Char('/'));
        for c in "NEEDLE".chars() {
            press(&mut app, KeyCode::Char(c));
        }
        press(&mut app, KeyCode::Enter);
        assert_eq!(app.pos_us, 11_000_000);
        assert_eq!(app.match_number(), Some(1));
        assert_eq!(app.term.text(), "abneedle");
        // n wraps to the only match; Esc ends the search and n goes back to commands.
        press(&mut app, KeyCode::Char('n'));
        assert_eq!(app.message.as_deref(), Some("search wrapped"));
        press(&mut app, KeyCode::Esc);
        assert!(app.search.is_none());
        press(&mut app, KeyCode::Char('n'));
        assert_eq!(app.message.as_deref(), Some("no command after this point"));

        // `#N` past the commands there are is refused.
        let tape = f.tape();
        let err = App::new(
            tape,
            Config {
                at: Some(At::Command(1)),
                speed: 1.0,
                follow: false,
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("there is no #1"), "{err}");
    }

    #[test]
    fn n_and_p_land_where_the_line_is_whole_and_name_it() {
        use storage_schema::commands::{CommandEntry, EntryKind};
        // The keys came before their echo: each entry is whole on the screen later.
        let shown = |e: CommandEntry, at| CommandEntry {
            shown_us: Some(at),
            ..e
        };
        let f = Fixture::with_commands(Some(vec![
            shown(CommandEntry::command(500_000, "make b"), 1_000_000),
            shown(
                CommandEntry {
                    kind: EntryKind::Input,
                    ..CommandEntry::command(10_000_000, "needle")
                },
                11_000_000,
            ),
            // Two lines drawn by the same output (typed ahead, drawn by the shell at once).
            shown(CommandEntry::command(11_500_000, "first"), 12_000_000),
            shown(CommandEntry::command(11_600_000, "second"), 12_000_000),
        ]));
        let mut app = f.app(Some(At::Offset(0)));
        assert_eq!(app.entry_here(), None);
        press(&mut app, KeyCode::Char('n'));
        assert_eq!((app.pos_us, app.term.text().as_str()), (1_000_000, "ab"));
        assert_eq!(
            app.entry_here().map(|(n, e)| (n, e.label())),
            Some((1, "make b".into()))
        );
        press(&mut app, KeyCode::Char('n'));
        assert_eq!(
            (app.pos_us, app.term.text().as_str()),
            (11_000_000, "abneedle")
        );
        assert!(drawn(&app).contains("#2 > needle"), "{}", drawn(&app));
        press(&mut app, KeyCode::Char('n'));
        assert_eq!((app.pos_us, app.landed), (12_000_000, Some(2)));
        press(&mut app, KeyCode::Char('n'));
        assert_eq!((app.pos_us, app.landed), (12_000_000, Some(3)));
        assert_eq!(app.entry_here().map(|(n, _)| n), Some(4));
        press(&mut app, KeyCode::Char('n'));
        assert_eq!(app.message.as_deref(), Some("no command after this point"));
        press(&mut app, KeyCode::Char('p'));
        assert_eq!((app.pos_us, app.landed), (12_000_000, Some(2)));
        press(&mut app, KeyCode::Char('p'));
        assert_eq!(app.pos_us, 11_000_000);
        // `--at '#N'` opens on the same moment `n` lands on.
        let app = f.app(Some(At::Command(1)));
        assert_eq!((app.pos_us, app.term.text().as_str()), (1_000_000, "ab"));
        // The list shows each entry's kind.
        let mut app = f.app(Some(At::Offset(0)));
        press(&mut app, KeyCode::Char('c'));
        let screen = drawn(&app);
        for want in ["$ make b", "> needle", "(input)"] {
            assert!(screen.contains(want), "{want:?} missing:\n{screen}");
        }
    }

    #[test]
    fn search_hits_are_highlighted_and_a_smaller_terminal_says_the_screen_is_clipped() {
        let f = Fixture::new();
        let mut app = f.app(Some(At::Offset(0)));
        press(&mut app, KeyCode::Char('/'));
        for c in "NEEDLE".chars() {
            press(&mut app, KeyCode::Char(c));
        }
        press(&mut app, KeyCode::Enter);
        let mut tui = ratatui::Terminal::new(ratatui::backend::TestBackend::new(100, 30)).unwrap();
        tui.draw(|f| super::super::ui::draw(f, &app)).unwrap();
        let buf = tui.backend().buffer();
        let highlighted: String = (0..buf.area.height)
            .flat_map(|y| (0..buf.area.width).map(move |x| (x, y)))
            .filter(|&(x, y)| {
                buf[(x, y)].bg == ratatui::style::Color::Yellow && y + 2 < buf.area.height
            })
            .map(|(x, y)| buf[(x, y)].symbol().to_string())
            .collect();
        assert_eq!(highlighted, "needle");
        assert!(!drawn(&app).contains("CLIPPED"));
        // The recording is 20×5; a terminal 4 rows high shows two of them, and says so.
        let mut tui = ratatui::Terminal::new(ratatui::backend::TestBackend::new(100, 4)).unwrap();
        tui.draw(|f| super::super::ui::draw(f, &app)).unwrap();
        let buf = tui.backend().buffer();
        let text: String = (0..buf.area.width).map(|x| buf[(x, 3)].symbol()).collect();
        assert!(text.contains("CLIPPED 20×5 → 20×2"), "{text}");
    }
}

/// Opening a long session, timed through the real path (store, reader, indexer thread, first
/// screen), with the index built in the background. Not a unit test: it records a generated
/// 1-hour, ~200 MB session first.
#[cfg(test)]
mod open_time {
    use std::time::{Duration, Instant};

    use storage_schema::store::{Recorder, Store};
    use storage_schema::{
        Event, EventKind, ExitInfo, FlushPolicy, Identity, Keyring, SessionKind, Stream, Target,
        TermSize,
    };

    use super::super::tape::{Hold, Tape};
    use super::{App, Config};

    fn out(at_us: u64, bytes: Vec<u8>) -> Event {
        Event {
            at_us,
            kind: EventKind::Data {
                stream: Stream::Stdout,
                bytes,
            },
        }
    }

    /// An hour in phases of 45 s: shell work, a `top`-like full redraw every second, shell
    /// work, a `cat` of 16 KiB writes (222 KB a second: ~200 MB over the hour's cat phases).
    fn hour() -> impl Iterator<Item = Event> {
        (0..3600u64).flat_map(|s| {
            let t = s * 1_000_000;
            let line = |n: u64| format!("2026-11-23T18:{:02}:{:02} INFO request served GET /api/v1/pods 200 latency {n} ms\r\n", s / 60 % 60, s % 60);
            match s / 45 % 4 {
                0 | 2 => {
                    let mut body = String::from("\x1b[1;32mops@pod\x1b[0m:~$ kubectl get pods -A\r\n");
                    (0..10).for_each(|n| body.push_str(&line(n)));
                    vec![out(t, body.into_bytes())]
                }
                1 => {
                    let mut frame = format!("\x1b[?1049h\x1b[H\x1b[7mtop - {s}\x1b[0m\x1b[K\r\n");
                    (0..38).for_each(|row| frame.push_str(&format!("\x1b[{};1H{}\x1b[K", row + 2, line(row * s % 97))));
                    vec![out(t, frame.into_bytes())]
                }
                _ => (0..14u64)
                    .map(|w| {
                        let mut buf = String::new();
                        let mut n = 0;
                        while buf.len() < 16 * 1024 {
                            buf.push_str(&line(n));
                            n += 1;
                        }
                        out(t + w * 60_000, buf.into_bytes())
                    })
                    .collect(),
            }
        })
    }

    #[test]
    #[ignore = "a timing run: cargo test --release -p player --bin kubetape -- --ignored --nocapture open_time"]
    fn open_time_of_an_hour_long_session() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("file://{}", dir.path().join("s").display())).unwrap();
        let keys = dir.path().join("k");
        let (ring, _) = Keyring::open_or_init(&keys).unwrap();
        let mut meta = storage_schema::SessionMeta::new(
            SessionKind::Exec,
            Identity {
                user: "alice@example.com".into(),
                groups: Vec::new(),
                issuer: None,
                claims: Default::default(),
            },
            Target {
                cluster: None,
                namespace: Some("prod".into()),
                pod: Some("web-0".into()),
                container: None,
                host: None,
            },
            vec!["sh".into()],
            true,
        );
        meta.size = Some(TermSize {
            cols: 120,
            rows: 40,
        });
        // Events come faster than their session time here, so chunks close on size alone:
        // 64 KiB makes about as many chunks (~3,100) as an hour recorded live (1 s or 8 MiB).
        let policy = FlushPolicy {
            max_bytes: 64 << 10,
            ..FlushPolicy::default()
        };
        let started = Instant::now();
        let (id, bytes) = rt.block_on(async {
            let rec = Recorder::start(store.clone(), &ring, meta, policy)
                .await
                .unwrap();
            let mut bytes = 0;
            for e in hour() {
                bytes += e.stream_bytes().map_or(0, |(_, n)| n);
                rec.record_at(e).await.unwrap();
            }
            let id = rec.session();
            rec.finish_with_commands(
                Some(ExitInfo {
                    code: 0,
                    message: String::new(),
                }),
                Vec::new(),
            )
            .await
            .unwrap();
            (id, bytes)
        });
        println!(
            "session: 1 h, {:.1} MB of output, recorded in {:.1?}",
            bytes as f64 / 1e6,
            started.elapsed()
        );

        let ring = Keyring::open(&keys).unwrap();
        let t = Instant::now();
        let tape = Tape::open(rt.handle().clone(), store.clone(), ring, id, Hold::None).unwrap();
        let opened = t.elapsed();
        let chunks = tape.chunk_count();
        let mut app = App::new(
            tape,
            Config {
                at: None,
                speed: 1.0,
                follow: false,
            },
        )
        .unwrap();
        let first = t.elapsed();
        assert!(
            app.term.text().contains("kubectl get pods"),
            "{}",
            app.term.text()
        );
        let indexed_then = app.tape.indexing().map_or(chunks, |(done, _)| done);
        // A jump to the middle right away: most likely past the index, so it waits.
        let s = Instant::now();
        app.seek(app.end_us() / 2).unwrap();
        let jump = s.elapsed();
        let waited = app.pending.is_some();
        app.tape.wait_indexed();
        let indexed = t.elapsed();
        app.tick(Duration::ZERO).unwrap();
        println!(
            "open: Tape::open {opened:.1?}, first screen {first:.1?} ({indexed_then} of {chunks} chunks indexed by then); \
             a jump to the middle at once took {jump:.1?} ({}); index complete {indexed:.1?} after open",
            if waited {
                "waited for the index"
            } else {
                "replayed"
            }
        );
        assert!(app.pending.is_none());
        assert!(first < Duration::from_millis(200), "open took {first:?}");
    }
}
