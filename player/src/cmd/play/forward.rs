//! `kubetape play` for a port-forward: there is no terminal to replay, so the session is shown
//! as a timeline of its connections — when each opened and closed, its port, the bytes it moved
//! each way up to the play head, and how it ended (closed, reset, the cluster's error, refused
//! by the policy, ended with the session).
//!
//! Same split as the terminal player: [`Timeline`] is the data (one pass over the events),
//! [`View`] the state and keys (tested without a terminal), [`draw`] the drawing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ratatui::Frame;
use ratatui::crossterm::event::{self, Event as TermEvent, KeyCode, KeyEvent, KeyEventKind};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};
use storage_schema::{Direction, Event, EventKind, ForwardOutcome, SessionMeta};

use super::ui::{TermGuard, clock};
use crate::format;

/// One forwarded connection, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conn {
    pub n: u64,
    pub port: u16,
    pub opened_us: u64,
    pub closed_us: Option<u64>,
    /// When the client, and the pod, finished sending (half-close).
    pub client_done_us: Option<u64>,
    pub pod_done_us: Option<u64>,
    /// Cumulative bytes (to the pod, from the pod) at each bytes event.
    pub steps: Vec<(u64, u64, u64)>,
    pub outcome: Option<ForwardOutcome>,
    pub message: String,
}

impl Conn {
    /// Bytes moved by `at_us` (to the pod, from the pod).
    pub fn bytes_at(&self, at_us: u64) -> (u64, u64) {
        let i = self.steps.partition_point(|s| s.0 <= at_us);
        i.checked_sub(1)
            .map_or((0, 0), |i| (self.steps[i].1, self.steps[i].2))
    }

    pub fn total(&self) -> (u64, u64) {
        self.steps.last().map_or((0, 0), |s| (s.1, s.2))
    }

    fn open_at(&self, at_us: u64) -> bool {
        self.opened_us <= at_us && self.closed_us.is_none_or(|c| at_us < c)
    }
}

/// A port-forward session's connections, from its events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Timeline {
    pub conns: Vec<Conn>,
    /// The last event's time.
    pub duration_us: u64,
    /// Markers (why the gateway ended the session) and the exit.
    pub notes: Vec<(u64, String)>,
}

impl Timeline {
    /// Feeds one event (in recording order).
    pub fn push(&mut self, e: &Event) {
        self.duration_us = self.duration_us.max(e.at_us);
        let at = e.at_us;
        match &e.kind {
            EventKind::PortForwardOpen { conn, port } => self.conns.push(Conn {
                n: *conn,
                port: *port,
                opened_us: at,
                closed_us: None,
                client_done_us: None,
                pod_done_us: None,
                steps: Vec::new(),
                outcome: None,
                message: String::new(),
            }),
            EventKind::PortForwardBytes {
                conn,
                to_pod,
                from_pod,
            } => {
                if let Some(c) = self.conn_mut(*conn) {
                    let (t, f) = c.total();
                    c.steps
                        .push((at, t.saturating_add(*to_pod), f.saturating_add(*from_pod)));
                }
            }
            EventKind::PortForwardHalfClose { conn, direction } => {
                if let Some(c) = self.conn_mut(*conn) {
                    match direction {
                        Direction::ToPod => c.client_done_us = Some(at),
                        Direction::FromPod => c.pod_done_us = Some(at),
                    }
                }
            }
            EventKind::PortForwardEnd {
                conn,
                outcome,
                message,
            } => {
                if let Some(c) = self.conn_mut(*conn) {
                    c.closed_us = Some(at);
                    c.outcome = Some(*outcome);
                    c.message = message.clone();
                }
            }
            // Written by no current gateway, kept readable.
            EventKind::PortForwardClose { conn, error } => {
                if let Some(c) = self.conn_mut(*conn) {
                    c.closed_us = Some(at);
                    c.outcome = Some(if error.is_empty() {
                        ForwardOutcome::Closed
                    } else {
                        ForwardOutcome::Error
                    });
                    c.message = error.clone();
                }
            }
            EventKind::Marker { text } => self.notes.push((at, text.clone())),
            EventKind::Exit { code, message } => {
                self.notes.push((at, format!("exit {code}: {message}")));
            }
            _ => {}
        }
    }

    fn conn_mut(&mut self, n: u64) -> Option<&mut Conn> {
        // Connections are numbered in order; the newest is the likeliest.
        self.conns.iter_mut().rev().find(|c| c.n == n)
    }
}

/// Playback state.
#[derive(Debug)]
pub struct View {
    pub timeline: Timeline,
    /// `who · where · what` for the title.
    pub title: String,
    pub selected: usize,
    pub head_us: u64,
    pub playing: bool,
    pub speed: f64,
    pub quit: bool,
}

const STEP: u64 = 5_000_000;

impl View {
    pub fn new(timeline: Timeline, meta: &SessionMeta, speed: f64) -> Self {
        let (allowed, capture) = meta.port_forward.as_ref().map_or_else(
            || ("?".to_string(), "?".to_string()),
            |f| (f.allowed_ports.clone(), f.capture.clone()),
        );
        let title = format!(
            " port-forward {} · {} · ports allowed {allowed} · capture {capture} ",
            meta.target, meta.identity.user
        );
        // Opens at the end, every connection and its totals in view; space plays from the start.
        let head_us = timeline.duration_us;
        Self {
            timeline,
            title,
            selected: 0,
            head_us,
            playing: false,
            speed,
            quit: false,
        }
    }

    pub fn key(&mut self, key: KeyEvent) {
        let end = self.timeline.duration_us;
        match key.code {
            KeyCode::Char('q') | KeyCode::Esc => self.quit = true,
            KeyCode::Char(' ') => {
                if self.head_us >= end {
                    self.head_us = 0;
                }
                self.playing = !self.playing;
            }
            KeyCode::Left => self.head_us = self.head_us.saturating_sub(STEP),
            KeyCode::Right => self.head_us = (self.head_us + STEP).min(end),
            KeyCode::Home => self.head_us = 0,
            KeyCode::End => self.head_us = end,
            KeyCode::Up => self.selected = self.selected.saturating_sub(1),
            KeyCode::Down => {
                self.selected =
                    (self.selected + 1).min(self.timeline.conns.len().saturating_sub(1));
            }
            // Jump to the selected connection's opening.
            KeyCode::Enter => {
                if let Some(c) = self.timeline.conns.get(self.selected) {
                    self.head_us = c.opened_us;
                }
            }
            KeyCode::Char('+') => self.speed = (self.speed * 2.0).min(64.0),
            KeyCode::Char('-') => self.speed = (self.speed / 2.0).max(0.25),
            _ => {}
        }
    }

    /// Moves the play head by `elapsed` of real time.
    pub fn tick(&mut self, elapsed: Duration) {
        if !self.playing {
            return;
        }
        let step = (elapsed.as_micros() as f64 * self.speed) as u64;
        self.head_us = (self.head_us + step).min(self.timeline.duration_us);
        if self.head_us >= self.timeline.duration_us {
            self.playing = false;
        }
    }
}

fn outcome_style(o: Option<ForwardOutcome>) -> Style {
    match o {
        None => Style::new().fg(Color::Cyan),
        Some(ForwardOutcome::Closed) => Style::new().fg(Color::Green),
        Some(ForwardOutcome::Refused | ForwardOutcome::Error) => Style::new().fg(Color::Red),
        Some(_) => Style::new().fg(Color::Yellow),
    }
}

/// Draws the view: title, one row per connection (its figures, then its bar on the session's
/// time axis with the play head), the selected connection's message, a status line.
pub fn draw(f: &mut Frame, v: &View) {
    let [main, detail, status] = Layout::vertical([
        Constraint::Min(3),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(f.area());
    let block = Block::bordered()
        .title(v.title.clone())
        .border_style(Style::new().fg(Color::DarkGray));
    let inner = block.inner(main);
    f.render_widget(block, main);
    draw_rows(f, inner, v);
    let detail_line = match v.timeline.conns.get(v.selected) {
        Some(c) => {
            let how = c.outcome.map_or("open", ForwardOutcome::name);
            let mut text = format!("#{} :{} {how}", c.n, c.port);
            if let Some(t) = c.client_done_us {
                text.push_str(&format!(" · client done at {}", clock(t)));
            }
            if let Some(t) = c.pod_done_us {
                text.push_str(&format!(" · pod done at {}", clock(t)));
            }
            if !c.message.is_empty() {
                text.push_str(&format!(" — {}", c.message));
            }
            text
        }
        None => "no connections were forwarded".into(),
    };
    f.render_widget(Paragraph::new(detail_line), detail);
    let open = v
        .timeline
        .conns
        .iter()
        .filter(|c| c.open_at(v.head_us))
        .count();
    let (to, from) = v.timeline.conns.iter().fold((0, 0), |(t, f), c| {
        let (a, b) = c.bytes_at(v.head_us);
        (t + a, f + b)
    });
    let state = if v.playing { "▶" } else { "⏸" };
    let line = Line::from(vec![
        Span::styled(
            format!(
                " {state} {} / {}  ×{} ",
                clock(v.head_us),
                clock(v.timeline.duration_us),
                v.speed
            ),
            Style::new().add_modifier(Modifier::REVERSED),
        ),
        Span::raw(format!(
            " {open} open of {} · ↑{} ↓{} · space play · ←/→ 5 s · ↑/↓ select · Enter go to it · q quit",
            v.timeline.conns.len(),
            format::bytes(to),
            format::bytes(from)
        )),
    ]);
    f.render_widget(Paragraph::new(line), status);
}

const FIGURES: u16 = 52;

fn draw_rows(f: &mut Frame, area: Rect, v: &View) {
    if area.height == 0 {
        return;
    }
    let header = format!(
        "{:>4} {:>6} {:>9} {:>9} {:>9} {:>9}",
        "#", "PORT", "OPENED", "FOR", "↑ TO POD", "↓ BACK"
    );
    f.render_widget(
        Paragraph::new(header).style(Style::new().add_modifier(Modifier::BOLD)),
        Rect { height: 1, ..area },
    );
    let rows = usize::from(area.height.saturating_sub(1));
    // Keep the selected row in view.
    let first = v.selected.saturating_sub(rows.saturating_sub(1));
    let bar_x = area.x + FIGURES.min(area.width);
    let bar_w = area.width.saturating_sub(FIGURES);
    let span = v.timeline.duration_us.max(1);
    let col_of = |us: u64| -> u16 {
        if bar_w == 0 {
            return 0;
        }
        ((u128::from(us) * u128::from(bar_w - 1)) / u128::from(span)) as u16
    };
    for (row, c) in v.timeline.conns.iter().enumerate().skip(first).take(rows) {
        let y = area.y + 1 + (row - first) as u16;
        let (to, from) = c.bytes_at(v.head_us);
        let lasted = c.closed_us.unwrap_or(v.timeline.duration_us) - c.opened_us;
        let figures = format!(
            "{:>4} {:>6} {:>9} {:>9} {:>9} {:>9} ",
            c.n,
            c.port,
            clock(c.opened_us),
            format::duration_us(lasted),
            format::bytes(to),
            format::bytes(from)
        );
        let mut style = outcome_style(c.outcome);
        if row == v.selected {
            style = style.add_modifier(Modifier::REVERSED);
        }
        f.render_widget(
            Paragraph::new(figures).style(style),
            Rect {
                x: area.x,
                y,
                width: FIGURES.min(area.width),
                height: 1,
            },
        );
        if bar_w == 0 {
            continue;
        }
        let (a, b) = (
            col_of(c.opened_us),
            col_of(c.closed_us.unwrap_or(v.timeline.duration_us)),
        );
        let head = col_of(v.head_us);
        let buf = f.buffer_mut();
        for x in 0..bar_w {
            let symbol = if x == head {
                "│"
            } else if (a..=b).contains(&x) {
                "━"
            } else {
                " "
            };
            let style = if x == head {
                Style::new().fg(Color::White)
            } else {
                outcome_style(c.outcome)
            };
            if let Some(cell) = buf.cell_mut((bar_x + x, y)) {
                cell.set_symbol(symbol).set_style(style);
            }
        }
    }
}

/// Runs the view on the terminal until `q` (or `stop`).
pub fn run(mut view: View, stop: &AtomicBool) -> anyhow::Result<()> {
    let _guard = TermGuard::enter()?;
    let mut tui =
        ratatui::Terminal::new(ratatui::backend::CrosstermBackend::new(std::io::stdout()))?;
    let mut last = Instant::now();
    loop {
        tui.draw(|f| draw(f, &view))?;
        let wait = if view.playing {
            Duration::from_millis(50)
        } else {
            Duration::from_millis(250)
        };
        if super::input::poll(wait)?
            && let TermEvent::Key(k) = event::read()?
            && k.kind != KeyEventKind::Release
        {
            view.key(k);
        }
        let now = Instant::now();
        view.tick(now - last);
        last = now;
        if view.quit || stop.load(Ordering::SeqCst) {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::backend::TestBackend;
    use ratatui::crossterm::event::KeyModifiers;

    fn ev(at_us: u64, kind: EventKind) -> Event {
        Event { at_us, kind }
    }

    fn sample() -> Timeline {
        let mut t = Timeline::default();
        for e in [
            ev(0, EventKind::PortForwardOpen { conn: 1, port: 80 }),
            ev(
                1_000_000,
                EventKind::PortForwardBytes {
                    conn: 1,
                    to_pod: 100,
                    from_pod: 2_000,
                },
            ),
            ev(
                1_500_000,
                EventKind::PortForwardHalfClose {
                    conn: 1,
                    direction: Direction::ToPod,
                },
            ),
            ev(
                2_000_000,
                EventKind::PortForwardOpen {
                    conn: 2,
                    port: 5432,
                },
            ),
            ev(
                2_000_000,
                EventKind::PortForwardEnd {
                    conn: 2,
                    outcome: ForwardOutcome::Refused,
                    message: "kubetape: port 5432 is not allowed".into(),
                },
            ),
            ev(
                3_000_000,
                EventKind::PortForwardBytes {
                    conn: 1,
                    to_pod: 0,
                    from_pod: 1_000,
                },
            ),
            ev(
                3_000_000,
                EventKind::PortForwardEnd {
                    conn: 1,
                    outcome: ForwardOutcome::Closed,
                    message: String::new(),
                },
            ),
            ev(
                10_000_000,
                EventKind::Exit {
                    code: 0,
                    message: "the client ended the port-forward".into(),
                },
            ),
        ] {
            t.push(&e);
        }
        t
    }

    #[test]
    fn the_timeline_follows_each_connection() {
        let t = sample();
        assert_eq!(t.conns.len(), 2);
        assert_eq!(t.duration_us, 10_000_000);
        let c = &t.conns[0];
        assert_eq!(
            (c.port, c.closed_us, c.client_done_us),
            (80, Some(3_000_000), Some(1_500_000))
        );
        assert_eq!(c.bytes_at(999_999), (0, 0));
        assert_eq!(c.bytes_at(1_000_000), (100, 2_000));
        assert_eq!(c.total(), (100, 3_000));
        assert_eq!(t.conns[1].outcome, Some(ForwardOutcome::Refused));
        assert!(c.open_at(2_999_999) && !c.open_at(3_000_000));
    }

    fn key(v: &mut View, code: KeyCode) {
        v.key(KeyEvent::new(code, KeyModifiers::NONE));
    }

    fn meta() -> SessionMeta {
        let mut m = SessionMeta::new(
            storage_schema::SessionKind::PortForward,
            storage_schema::Identity {
                user: "alice".into(),
                ..Default::default()
            },
            storage_schema::Target {
                namespace: Some("default".into()),
                pod: Some("demo".into()),
                ..Default::default()
            },
            vec![],
            false,
        );
        m.port_forward = Some(storage_schema::ForwardMeta {
            allowed_ports: "80".into(),
            capture: "metadata".into(),
            ..Default::default()
        });
        m
    }

    #[test]
    fn keys_move_the_head_and_the_selection() {
        let mut v = View::new(sample(), &meta(), 1.0);
        assert_eq!(v.head_us, 10_000_000, "opens at the end, totals in view");
        key(&mut v, KeyCode::Down);
        key(&mut v, KeyCode::Down);
        assert_eq!(v.selected, 1, "clamped to the last connection");
        key(&mut v, KeyCode::Enter);
        assert_eq!(v.head_us, 2_000_000);
        key(&mut v, KeyCode::Right);
        assert_eq!(v.head_us, 7_000_000);
        key(&mut v, KeyCode::Right);
        assert_eq!(v.head_us, 10_000_000, "clamped to the end");
        key(&mut v, KeyCode::Char(' '));
        assert!(v.playing && v.head_us == 0, "playing from the end restarts");
        v.tick(Duration::from_secs(4));
        assert_eq!(v.head_us, 4_000_000);
        v.tick(Duration::from_secs(60));
        assert!(!v.playing && v.head_us == 10_000_000);
        key(&mut v, KeyCode::Char('q'));
        assert!(v.quit);
    }

    #[test]
    fn it_draws_every_connection_with_its_figures() {
        let mut v = View::new(sample(), &meta(), 1.0);
        v.head_us = 2_500_000;
        v.selected = 1;
        let mut term = ratatui::Terminal::new(TestBackend::new(120, 8)).unwrap();
        term.draw(|f| draw(f, &v)).unwrap();
        let text: String = term
            .backend()
            .buffer()
            .content()
            .chunks(120)
            .map(|row| row.iter().map(|c| c.symbol()).collect::<String>() + "\n")
            .collect();
        assert!(
            text.contains("port-forward default/demo · alice · ports allowed 80"),
            "{text}"
        );
        assert!(text.contains("5432"), "{text}");
        assert!(
            text.contains("#2 :5432 refused — kubetape: port 5432 is not allowed"),
            "{text}"
        );
        // Port 80's row shows what it moved by the head: 100 B up, 2.0 kB down.
        assert!(text.contains("100 B") && text.contains("2.0 kB"), "{text}");
        assert!(text.contains("1 open of 2"), "{text}");
        assert!(text.contains('━') && text.contains('│'), "{text}");
    }
}
