//! Drawing the player with ratatui, and the terminal set-up (raw mode, alternate screen, hidden
//! cursor, mouse reporting for clicks on the timeline) undone on every way out: return, error, panic (a hook restores before the message
//! is printed) and SIGTERM/SIGHUP (the caller sets `stop`).

use std::io;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ratatui::Frame;
use ratatui::backend::CrosstermBackend;
use ratatui::buffer::Buffer;
use ratatui::crossterm::event::{self, Event, KeyEventKind, MouseButton, MouseEventKind};
use ratatui::crossterm::{cursor, execute, terminal};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, List, ListItem, ListState, Paragraph, Wrap};
use transcript::Terminal;

use super::app::{App, Pane};
use super::tape::EntryView as _;
use crate::format;
use storage_schema::commands::EntryKind;

/// Frame interval while something moves; idle, the loop only wakes for keys.
const FRAME: Duration = Duration::from_millis(33);
const IDLE_WAKE: Duration = Duration::from_millis(250);

pub fn run(mut app: App, stop: &AtomicBool) -> anyhow::Result<()> {
    let _guard = TermGuard::enter()?;
    let mut tui = ratatui::Terminal::new(CrosstermBackend::new(io::stdout()))?;
    let mut last = Instant::now();
    loop {
        tui.draw(|f| draw(f, &app))?;
        // Idle, the loop still wakes to show the indexing progress and the screen of a seek
        // that waited for it.
        let wait = if app.playing || app.follow || app.pending.is_some() {
            FRAME
        } else {
            IDLE_WAKE
        };
        if super::input::poll(wait)? {
            // Everything typed since the last frame, before drawing again.
            loop {
                let handled = match event::read()? {
                    Event::Key(k) if k.kind != KeyEventKind::Release => app.key(k),
                    // A click or drag on the timeline (the row above the status line) seeks.
                    Event::Mouse(m)
                        if matches!(
                            m.kind,
                            MouseEventKind::Down(MouseButton::Left)
                                | MouseEventKind::Drag(MouseButton::Left)
                        ) =>
                    {
                        let size = tui.size()?;
                        if m.row + 2 == size.height {
                            app.click_timeline(m.column, size.width)
                        } else {
                            Ok(())
                        }
                    }
                    _ => Ok(()),
                };
                if let Err(e) = handled {
                    app.playing = false;
                    app.message = Some(format!("{e:#}"));
                }
                if app.quit || !event::poll(Duration::ZERO)? {
                    break;
                }
            }
        }
        let now = Instant::now();
        if let Err(e) = app.tick(now - last) {
            app.playing = false;
            app.message = Some(format!("{e:#}"));
        }
        last = now;
        if app.quit || stop.load(Ordering::SeqCst) {
            return Ok(());
        }
    }
}

/// The terminal in raw mode on the alternate screen while this lives.
pub(super) struct TermGuard;

impl TermGuard {
    pub(super) fn enter() -> io::Result<Self> {
        static HOOK: Once = Once::new();
        HOOK.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                // `transcript::Terminal` catches panics inside vt100 and carries on: those must
                // not tear the screen down. Any other panic is fatal: restore, then report.
                if !transcript::is_vt100_panic(info) {
                    restore();
                }
                previous(info);
            }));
        });
        terminal::enable_raw_mode()?;
        let guard = Self;
        execute!(
            io::stdout(),
            terminal::EnterAlternateScreen,
            cursor::Hide,
            event::EnableMouseCapture
        )?;
        Ok(guard)
    }
}

impl Drop for TermGuard {
    fn drop(&mut self) {
        restore();
    }
}

fn restore() {
    let _ = execute!(
        io::stdout(),
        event::DisableMouseCapture,
        terminal::LeaveAlternateScreen,
        cursor::Show
    );
    let _ = terminal::disable_raw_mode();
}

/// `m:ss.d`, or `h:mm:ss.d` past an hour: a clock precise enough to see it move.
pub fn clock(us: u64) -> String {
    let tenths = us / 100_000;
    let (s, d) = (tenths / 10, tenths % 10);
    if s >= 3600 {
        format!("{}:{:02}:{:02}.{d}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}.{d}", s / 60, s % 60)
    }
}

pub(super) fn draw(f: &mut Frame, app: &App) {
    let [main, timeline, status] = Layout::vertical([
        Constraint::Min(1),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(f.area());
    let (screen_area, side) = if app.pane != Pane::None && main.width >= 50 {
        let side = (main.width / 2).min(56);
        let [s, p] =
            Layout::horizontal([Constraint::Min(10), Constraint::Length(side)]).areas(main);
        (s, Some(p))
    } else {
        (main, None)
    };
    let highlight = app.search.as_ref().and_then(|s| search_regex(&s.query));
    let clipped = draw_screen(
        f.buffer_mut(),
        screen_area,
        &app.term,
        &short_id(app),
        highlight.as_ref(),
    );
    if let Some(side) = side {
        match app.pane {
            Pane::Commands => draw_commands(f, side, app),
            Pane::Info => draw_info(f, side, app),
            Pane::None => {}
        }
    }
    draw_timeline(f.buffer_mut(), timeline, app);
    f.render_widget(status_line(app, clipped.then_some(screen_area)), status);
    if app.help {
        draw_help(f, main);
    }
}

/// The in-session search as the screen highlights it (what `Tape::search` matches:
/// literal, case-insensitive).
fn search_regex(query: &str) -> Option<regex::Regex> {
    regex::RegexBuilder::new(&regex::escape(query))
        .case_insensitive(true)
        .build()
        .ok()
}

/// The recorded screen at its recorded size, centred, framed when there is room, clipped when
/// the real terminal is smaller (returns whether it was). Text matching `highlight` is shown
/// in black on yellow.
fn draw_screen(
    buf: &mut Buffer,
    area: Rect,
    term: &Terminal,
    name: &str,
    highlight: Option<&regex::Regex>,
) -> bool {
    let size = term.size();
    let framed = area.width >= size.cols + 2 && area.height >= size.rows + 2;
    let inner = if framed {
        let outer = centred(area, size.cols + 2, size.rows + 2);
        let title = format!(" {name} · {}×{} ", size.cols, size.rows);
        let block = Block::bordered()
            .title(title)
            .border_style(Style::new().fg(Color::DarkGray));
        let inner = block.inner(outer);
        ratatui::widgets::Widget::render(block, outer, buf);
        inner
    } else {
        centred(area, size.cols, size.rows)
    };
    let screen = term.screen();
    let cursor = (!term.hide_cursor()).then(|| term.cursor());
    // Taller than the real terminal: show the rows around the cursor (the prompt, the latest
    // output) rather than always the top.
    let top = (term.cursor().0 + 1)
        .saturating_sub(inner.height)
        .min(size.rows.saturating_sub(inner.height));
    for y in 0..inner.height.min(size.rows) {
        let row = top + y;
        let marked = highlight.map(|re| marked_columns(screen, row, size.cols, re));
        for col in 0..inner.width.min(size.cols) {
            let Some(cell) = screen.cell(row, col) else {
                continue;
            };
            if cell.is_wide_continuation() {
                continue;
            }
            let mut style = Style::new()
                .fg(color(cell.fgcolor()))
                .bg(color(cell.bgcolor()));
            let mut m = Modifier::empty();
            if cell.bold() {
                m |= Modifier::BOLD;
            }
            if cell.dim() {
                m |= Modifier::DIM;
            }
            if cell.italic() {
                m |= Modifier::ITALIC;
            }
            if cell.underline() {
                m |= Modifier::UNDERLINED;
            }
            if cell.inverse() != (cursor == Some((row, col))) {
                m |= Modifier::REVERSED;
            }
            style = style.add_modifier(m);
            if marked.as_ref().is_some_and(|cols| cols.contains(&col)) {
                style = Style::new().fg(Color::Black).bg(Color::Yellow);
            }
            let symbol = if cell.has_contents() {
                cell.contents()
            } else {
                " "
            };
            if let Some(out) = buf.cell_mut((inner.x + col, inner.y + y)) {
                out.set_symbol(symbol).set_style(style);
            }
        }
    }
    inner.width < size.cols || inner.height < size.rows
}

/// The columns of `row` covered by a match of `re`.
fn marked_columns(screen: &vt100::Screen, row: u16, cols: u16, re: &regex::Regex) -> Vec<u16> {
    // The row's text, and for each byte of it the column its character starts at.
    let mut text = String::new();
    let mut col_of = Vec::new();
    for col in 0..cols {
        let Some(cell) = screen.cell(row, col) else {
            continue;
        };
        if cell.is_wide_continuation() {
            continue;
        }
        let c = if cell.has_contents() {
            cell.contents()
        } else {
            " "
        };
        for _ in 0..c.len() {
            col_of.push(col);
        }
        text.push_str(c);
    }
    let mut marked = Vec::new();
    for m in re.find_iter(&text) {
        if m.is_empty() {
            continue;
        }
        let (first, last) = (col_of[m.start()], col_of[m.end() - 1]);
        // A wide character's second cell belongs to it.
        let end = if screen.cell(row, last).is_some_and(|c| c.is_wide()) {
            last + 1
        } else {
            last
        };
        marked.extend(first..=end);
    }
    marked
}

fn color(c: vt100::Color) -> Color {
    match c {
        vt100::Color::Default => Color::Reset,
        vt100::Color::Idx(i) => Color::Indexed(i),
        vt100::Color::Rgb(r, g, b) => Color::Rgb(r, g, b),
    }
}

fn centred(area: Rect, width: u16, height: u16) -> Rect {
    let w = width.min(area.width);
    let h = height.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

fn short_id(app: &App) -> String {
    app.tape.id.short()
}

/// The whole session on one row: played part, commands (┃), search matches (◆), play head (●).
fn draw_timeline(buf: &mut Buffer, area: Rect, app: &App) {
    if area.width < 2 {
        return;
    }
    let end = app.end_us().max(1);
    let last = u64::from(area.width - 1);
    let x_of = |us: u64| area.x + (us.min(end) * last / end) as u16;
    let head = x_of(app.pos_us);
    for x in area.x..area.x + area.width {
        let (sym, style) = if x < head {
            ("━", Style::new().fg(Color::Blue))
        } else {
            ("─", Style::new().fg(Color::DarkGray))
        };
        buf[(x, area.y)].set_symbol(sym).set_style(style);
    }
    for c in &app.tape.commands {
        buf[(x_of(c.at_us), area.y)]
            .set_symbol("┃")
            .set_style(Style::new().fg(Color::Cyan));
    }
    if let Some(s) = &app.search {
        for &t in &s.hits {
            buf[(x_of(t), area.y)]
                .set_symbol("◆")
                .set_style(Style::new().fg(Color::Yellow));
        }
    }
    buf[(head, area.y)]
        .set_symbol("●")
        .set_style(Style::new().fg(Color::White).add_modifier(Modifier::BOLD));
}

fn status_line(app: &App, clipped: Option<Rect>) -> Paragraph<'static> {
    if let Some(input) = &app.input {
        return Paragraph::new(Line::from(vec![
            Span::styled("search: /", Style::new().fg(Color::Yellow)),
            Span::raw(input.clone()),
            Span::styled("█", Style::new().add_modifier(Modifier::SLOW_BLINK)),
            Span::styled(
                "   Enter search · Esc cancel",
                Style::new().fg(Color::DarkGray),
            ),
        ]));
    }
    let mode = if app.playing && app.follow && app.at_end() && app.tape.state == "open" {
        Span::styled(" LIVE ", Style::new().fg(Color::Black).bg(Color::Red))
    } else if app.playing {
        Span::styled(" PLAYING ", Style::new().fg(Color::Black).bg(Color::Green))
    } else {
        Span::styled(" PAUSED ", Style::new().fg(Color::Black).bg(Color::Yellow))
    };
    let speed = if app.speed.fract() == 0.0 {
        format!("{}×", app.speed)
    } else {
        format!("{:.2}×", app.speed)
    };
    let mut spans = vec![
        mode,
        Span::raw(format!(
            " {} / {}  {speed} ",
            clock(app.pos_us),
            clock(app.end_us()),
        )),
        Span::styled(
            if app.compress {
                "idle≤2s  "
            } else {
                "idle 1:1  "
            },
            Style::new().fg(Color::DarkGray),
        ),
        Span::raw(format!(
            "cmd {}/{}  ",
            app.commands_before(),
            app.tape.commands.len(),
        )),
    ];
    // What a reviewer must not miss comes first: a note just made, damage, the screen cut,
    // the search, the command on the screen.
    if let Some(m) = &app.message {
        spans.push(Span::styled(
            format!("{m} "),
            Style::new().fg(Color::LightRed),
        ));
    }
    if app.tape.damage.is_some() {
        spans.push(Span::styled(
            " DAMAGED: ends early (i) ",
            Style::new().fg(Color::White).bg(Color::Red),
        ));
    }
    if let Some(area) = clipped {
        let size = app.term.size();
        spans.push(Span::styled(
            format!(
                " CLIPPED {}×{} → {}×{} ",
                size.cols,
                size.rows,
                area.width.min(size.cols),
                area.height.min(size.rows)
            ),
            Style::new().fg(Color::Black).bg(Color::Magenta),
        ));
        spans.push(Span::raw(" "));
    }
    if let Some(s) = &app.search {
        let at = app
            .match_number()
            .map_or("-".to_string(), |n| n.to_string());
        spans.push(Span::styled(
            format!(" /{} {at}/{} ", s.query, s.hits.len()),
            Style::new().fg(Color::Yellow),
        ));
    }
    if let Some((n, entry)) = app.entry_here() {
        // The entry the screen shows (n/p land where its line is whole).
        let label: String = entry.label().chars().take(32).collect();
        spans.push(Span::styled(
            format!("#{n} {} {label}  ", entry.tag()),
            Style::new().fg(Color::Cyan),
        ));
    }
    if let Some((done, total)) = app.tape.indexing() {
        // The pass that makes seeks instant, still going: a seek past it waits.
        let percent = done * 100 / total.max(1);
        let text = match app.pending {
            Some(_) => format!(" seeking: indexing {percent}% "),
            None => format!("indexing {percent}%  "),
        };
        let style = match app.pending {
            Some(_) => Style::new().fg(Color::Black).bg(Color::Cyan),
            None => Style::new().fg(Color::DarkGray),
        };
        spans.push(Span::styled(text, style));
        if app.pending.is_some() {
            spans.push(Span::raw("  "));
        }
    }
    spans.push(Span::raw(format!(
        "chunk {}/{}  ",
        app.chunk(),
        app.tape.chunk_count()
    )));
    spans.push(Span::styled(
        format!("{} ", app.tape.state),
        Style::new().fg(Color::DarkGray),
    ));
    if app.message.is_none() {
        spans.push(Span::styled(" ? help", Style::new().fg(Color::DarkGray)));
    }
    Paragraph::new(Line::from(spans))
}

fn draw_commands(f: &mut Frame, area: Rect, app: &App) {
    let items: Vec<ListItem> = app
        .tape
        .commands
        .iter()
        .enumerate()
        .map(|(i, c)| {
            // Each entry's kind: `$` command, `>` input to a program, `✗` aborted, `*` typed
            // without echo.
            let kind = match c.kind {
                EntryKind::Command => Style::new().fg(Color::Green),
                EntryKind::Input => Style::new().fg(Color::Blue),
                EntryKind::Aborted => Style::new().fg(Color::Yellow),
                EntryKind::Redacted | EntryKind::Other => Style::new().fg(Color::Red),
            };
            let mut line = vec![
                Span::styled(format!("#{:<3}", i + 1), Style::new().fg(Color::DarkGray)),
                Span::styled(
                    format!("{:>7} ", format::duration_us(c.at_us)),
                    Style::new().fg(Color::Cyan),
                ),
                Span::styled(format!("{} ", c.tag()), kind.add_modifier(Modifier::BOLD)),
                match c.kind {
                    EntryKind::Command => Span::raw(c.label()),
                    EntryKind::Aborted => {
                        Span::styled(c.label(), Style::new().add_modifier(Modifier::CROSSED_OUT))
                    }
                    _ => Span::styled(c.label(), kind),
                },
            ];
            if let Some(code) = c.exit_code.filter(|&c| c != 0) {
                line.push(Span::styled(
                    format!("  [exit {code}]"),
                    Style::new().fg(Color::Red),
                ));
            }
            let notes: Vec<&str> = [
                (c.kind == EntryKind::Input).then_some("input"),
                (c.kind == EntryKind::Aborted).then_some("aborted"),
                c.typeahead.then_some("typed ahead"),
                c.inferred.then_some("inferred"),
                c.typed.is_some().then_some("expanded"),
            ]
            .into_iter()
            .flatten()
            .collect();
            if !notes.is_empty() {
                line.push(Span::styled(
                    format!("  ({})", notes.join(", ")),
                    Style::new().fg(Color::DarkGray),
                ));
            }
            ListItem::new(Line::from(line))
        })
        .collect();
    let empty = items.is_empty();
    let list = List::new(items)
        .block(Block::bordered().title(" typed: $ command > input ✗ aborted * no echo (c closes) "))
        .highlight_style(Style::new().add_modifier(Modifier::REVERSED));
    f.render_widget(Clear, area);
    if empty {
        f.render_widget(
            Paragraph::new("no commands recorded").block(Block::bordered().title(" commands ")),
            area,
        );
        return;
    }
    let mut state = ListState::default().with_selected(Some(app.selected));
    f.render_stateful_widget(list, area, &mut state);
}

fn draw_info(f: &mut Frame, area: Rect, app: &App) {
    let m = app.tape.meta();
    let key = |k: &str| Span::styled(format!("{k:<10}"), Style::new().fg(Color::Cyan));
    let mut lines = vec![
        Line::from(vec![key("session"), Span::raw(m.session.to_string())]),
        Line::from(vec![key("state"), Span::raw(app.tape.state.clone())]),
        Line::from(vec![
            key("damage"),
            Span::raw(
                app.tape
                    .damage
                    .clone()
                    .unwrap_or_else(|| "none found".into()),
            ),
        ]),
        Line::from(vec![
            key("started"),
            Span::raw(format::timestamp_us(m.started_at_us)),
        ]),
        Line::from(vec![key("who"), Span::raw(m.identity.user.clone())]),
    ];
    if !m.identity.groups.is_empty() {
        lines.push(Line::from(vec![
            key("groups"),
            Span::raw(m.identity.groups.join(", ")),
        ]));
    }
    if let Some(issuer) = &m.identity.issuer {
        lines.push(Line::from(vec![key("issuer"), Span::raw(issuer.clone())]));
    }
    for (k, v) in &m.identity.claims {
        lines.push(Line::from(vec![
            key("claim"),
            Span::raw(format!("{k}={v}")),
        ]));
    }
    let t = &m.target;
    for (k, v) in [
        ("cluster", &t.cluster),
        ("namespace", &t.namespace),
        ("pod", &t.pod),
        ("container", &t.container),
        ("host", &t.host),
    ] {
        if let Some(v) = v {
            lines.push(Line::from(vec![key(k), Span::raw(v.clone())]));
        }
    }
    lines.push(Line::from(vec![
        key("kind"),
        Span::raw(format!(
            "{:?}{}",
            m.kind,
            if m.tty { ", terminal" } else { "" }
        )),
    ]));
    lines.push(Line::from(vec![
        key("command"),
        Span::raw(m.command.join(" ")),
    ]));
    if let Some(addr) = &m.client.address {
        lines.push(Line::from(vec![key("client"), Span::raw(addr.clone())]));
    }
    match &m.grant {
        Some(g) => {
            lines.push(Line::from(vec![key("JIT grant"), Span::raw(g.id.clone())]));
            lines.push(Line::from(vec![key("reason"), Span::raw(g.reason.clone())]));
            lines.push(Line::from(vec![
                key("approver"),
                Span::raw(g.approver.clone()),
            ]));
            lines.push(Line::from(vec![
                key("expires"),
                Span::raw(format::timestamp_us(g.expires_at_us)),
            ]));
        }
        None => lines.push(Line::from(vec![key("JIT grant"), Span::raw("none")])),
    }
    let exit = match &app.tape.exit {
        Some((code, msg)) if code < &0 => format!("signal {} {msg}", -code),
        Some((code, msg)) => format!("{code} {msg}"),
        None => "-".into(),
    };
    lines.push(Line::from(vec![key("exit"), Span::raw(exit)]));
    lines.push(Line::from(vec![
        key("duration"),
        Span::raw(clock(app.end_us())),
    ]));
    let (keyframes, bytes) = app.tape.keyframes();
    let chunks = match app.tape.indexing() {
        Some((done, total)) => format!("{done} of {total} chunks so far"),
        None => format!("{} chunks", app.tape.chunk_count()),
    };
    lines.push(Line::from(vec![
        key("index"),
        Span::raw(format!(
            "{chunks}, {keyframes} keyframes ({})",
            format::bytes(bytes as u64)
        )),
    ]));
    if let Some((took, replayed)) = app.last_seek {
        lines.push(Line::from(vec![
            key("last seek"),
            Span::raw(format!(
                "{:.1} ms ({replayed} events replayed)",
                took.as_secs_f64() * 1e3
            )),
        ]));
    }
    f.render_widget(Clear, area);
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(Block::bordered().title(" session (i closes) ")),
        area,
    );
}

const HELP: &[(&str, &str)] = &[
    ("space", "play / pause"),
    ("+ / -", "speed 0.25× … 64×"),
    (".", "one event (pauses)"),
    ("← / →", "back / forward 5 s"),
    ("↓ / ↑", "back / forward 1 min (PgDn / PgUp)"),
    ("Home / End", "start / end"),
    ("0 … 9", "jump to 0 % … 90 %"),
    ("click", "on the timeline: jump there (┃ = command)"),
    ("n / p", "next / previous command, shown whole"),
    ("c", "everything typed, by kind (Enter jumps)"),
    ("/", "search commands and output"),
    ("n / N", "next / previous match (Esc ends)"),
    ("i", "who, where, why: session details"),
    ("z", "idle gaps > 2 s play as 2 s (on/off)"),
    ("q", "quit"),
];

fn draw_help(f: &mut Frame, area: Rect) {
    let lines: Vec<Line> = HELP
        .iter()
        .map(|(k, v)| {
            Line::from(vec![
                Span::styled(format!(" {k:<11}"), Style::new().fg(Color::Cyan)),
                Span::raw(*v),
            ])
        })
        .collect();
    let box_area = centred(area, 58, HELP.len() as u16 + 2);
    f.render_widget(Clear, box_area);
    f.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" keys (any key closes) ")),
        box_area,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(buf: &Buffer) -> Vec<String> {
        (0..buf.area.height)
            .map(|y| {
                (0..buf.area.width)
                    .map(|x| buf[(x, y)].symbol())
                    .collect::<String>()
                    .trim_end()
                    .to_string()
            })
            .collect()
    }

    #[test]
    fn the_screen_is_drawn_cell_by_cell_with_its_attributes() {
        let mut term = Terminal::new(storage_schema::TermSize { cols: 12, rows: 3 });
        term.process("\x1b[1;31mred\x1b[0m \x1b[7minv\x1b[0m\r\n漢字 ok".as_bytes());
        // Framed when there is room, centred.
        let area = Rect::new(0, 0, 16, 7);
        let mut buf = Buffer::empty(area);
        draw_screen(&mut buf, area, &term, "s", None);
        let r = rows(&buf);
        assert_eq!(r[2], " │red inv     │");
        // Wide characters take two cells; the second is left for the terminal to skip.
        assert_eq!(
            [2, 4, 7, 8].map(|x| buf[(x, 3)].symbol()),
            ["漢", "字", "o", "k"]
        );
        assert!(r[1].contains("s · 12×3"), "{r:?}");
        let red = &buf[(2, 2)];
        assert_eq!(red.fg, Color::Indexed(1));
        assert!(red.modifier.contains(Modifier::BOLD));
        assert!(buf[(6, 2)].modifier.contains(Modifier::REVERSED));
        assert!(!buf[(10, 2)].modifier.contains(Modifier::REVERSED));
        // The cursor (after "ok": column 7, the wide characters take two) is shown reversed.
        assert!(buf[(9, 3)].modifier.contains(Modifier::REVERSED));
        assert!(!buf[(8, 3)].modifier.contains(Modifier::REVERSED));
    }

    #[test]
    fn a_screen_taller_than_the_terminal_keeps_the_cursor_row_in_view() {
        let mut term = Terminal::new(storage_schema::TermSize { cols: 10, rows: 8 });
        term.process(b"r0\r\nr1\r\nr2\r\nr3\r\nr4\r\nr5\r\n$ ");
        let area = Rect::new(0, 0, 10, 3);
        let mut buf = Buffer::empty(area);
        draw_screen(&mut buf, area, &term, "s", None);
        assert_eq!(rows(&buf), ["r4", "r5", "$"]);
        // With the cursor near the top, the top is shown.
        term.process(b"\x1b[H");
        let mut buf = Buffer::empty(area);
        draw_screen(&mut buf, area, &term, "s", None);
        assert_eq!(rows(&buf), ["r0", "r1", "r2"]);
    }

    #[test]
    fn clocks() {
        assert_eq!(clock(0), "0:00.0");
        assert_eq!(clock(83_560_000), "1:23.5");
        assert_eq!(clock(3_723_500_000), "1:02:03.5");
    }
}
