//! Seek benchmark: a generated 1-hour, 200 MB terminal session (shell work, a `top`-like
//! full-screen program redrawing every second, long `cat`s), stored like the recorder stores
//! it (chunks of ≤ 256 KiB or ≤ 1 s, encoded and zstd-compressed, decoded on demand).
//!
//! Prints: the open time as `play` opens a session (the index built by a thread of its own, see
//! below), how long that thread takes to index everything, keyframes and their bytes, peak
//! memory growth of the process while building the index and seeking (VmHWM, reset before),
//! seek latency p50/p99/max over random targets, and the baseline (replay from the start) in
//! the same run with the ratio. Then the command extractor over the same session (its
//! throughput is what indexing costs the gateway). Targets (DESIGN §7, issue 18): open < 200 ms,
//! seek < 50 ms, memory < 100 MB. Exits non-zero if one is missed or a seek's screen differs
//! from the baseline's.
//!
//! Open, as the player does it (`player/src/cmd/play/tape.rs`): the shared index
//! (`SeekIndex::shared`) with its writer started on a thread of its own over every chunk; the
//! duration from the last chunk; the first screen, a seek to 0 replayed past the index
//! (`IndexReader::start_seek_over`, as nothing is indexed yet). Timed from nothing to that
//! screen. What the player also reads at open from a store (metadata, seal, commands object,
//! the chunk listing) is not here: it is the same whatever the session's length, bar the
//! listing. Seeks are then timed on the finished index, through the `IndexReader` the player
//! seeks with.
//!
//! `cargo bench -p transcript --bench seek` (KT_SEEK_SECONDS / KT_SEEK_MB to scale it).

use std::time::{Duration, Instant};

use storage_schema::event::decode_all;
use storage_schema::{Event, EventKind, Stream, TermSize};
use transcript::{CommandExtractor, SeekConfig, SeekIndex, Terminal};

const SIZE: TermSize = TermSize {
    cols: 120,
    rows: 40,
};
const CHUNK_BYTES: usize = 256 * 1024;
const CHUNK_US: u64 = 1_000_000;

/// xorshift64*: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

const WORDS: &[&str] = &[
    "INFO",
    "WARN",
    "ERROR",
    "request",
    "served",
    "GET",
    "/api/v1/pods",
    "200",
    "latency",
    "ms",
    "connection",
    "reset",
    "by",
    "peer",
    "retrying",
    "upstream",
    "kube-system",
    "default",
    "deployment",
    "scaled",
    "replica",
    "ready",
    "container",
    "started",
    "image",
    "pulled",
];

/// One chunk as a store holds it: encoded events, compressed.
struct Stored {
    base_us: u64,
    bytes: Vec<u8>,
}

/// Cuts events into chunks the way the recorder does and stores them compressed.
struct Writer {
    chunks: Vec<Stored>,
    events: Vec<Event>,
    raw: usize,
    start_us: u64,
    total_out: usize,
    /// Command lines typed (and accepted with Enter) in the shell phases.
    typed: usize,
}

impl Writer {
    fn push(&mut self, event: Event) {
        if self.events.is_empty() {
            self.start_us = event.at_us;
        }
        if let Some((Stream::Stdout, n)) = event.stream_bytes() {
            self.total_out += n;
        }
        self.raw += event.stream_bytes().map_or(8, |(_, n)| n);
        self.events.push(event);
        let last = self.events.last().map_or(0, |e| e.at_us);
        if self.raw >= CHUNK_BYTES || last - self.start_us >= CHUNK_US {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.events.is_empty() {
            return;
        }
        let base_us = self.events[0].at_us;
        let mut enc = Vec::with_capacity(self.raw + 64);
        let mut prev = base_us;
        for e in &self.events {
            e.encode(prev, &mut enc);
            prev = e.at_us;
        }
        let bytes = zstd::bulk::compress(&enc, 1).expect("zstd");
        self.chunks.push(Stored { base_us, bytes });
        self.events.clear();
        self.raw = 0;
    }
}

fn out(at_us: u64, bytes: Vec<u8>) -> Event {
    Event {
        at_us,
        kind: EventKind::Data {
            stream: Stream::Stdout,
            bytes,
        },
    }
}

fn log_line(rng: &mut Rng, n: u64) -> String {
    let mut line = format!(
        "2026-11-23T18:{:02}:{:02}.{:03}Z",
        n / 60 % 60,
        n % 60,
        n % 1000
    );
    for _ in 0..(4 + rng.below(10)) {
        line.push(' ');
        line.push_str(WORDS[rng.below(WORDS.len() as u64) as usize]);
    }
    line.push_str("\r\n");
    line
}

/// The session: phases of 45 s in the order shell, top, shell, cat, until `seconds`; each
/// cat phase writes an equal share of `cat_bytes` in 16 KiB writes.
fn generate(seconds: u64, cat_bytes: usize) -> Writer {
    let mut w = Writer {
        chunks: Vec::new(),
        events: Vec::new(),
        raw: 0,
        start_us: 0,
        total_out: 0,
        typed: 0,
    };
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let phase_us = 45_000_000;
    let phases = seconds * 1_000_000 / phase_us;
    let cat_phases = phases.div_ceil(4).max(1);
    let per_cat = cat_bytes / cat_phases as usize;
    let mut n = 0u64;
    for p in 0..phases {
        let start = p * phase_us;
        let end = start + phase_us;
        let mut t = start;
        match p % 4 {
            0 | 2 => {
                // Shell: prompt, a typed command (echoed key by key), some output.
                while t + 3_000_000 < end {
                    w.push(out(
                        t,
                        b"\x1b[1;32mops@pod\x1b[0m:\x1b[1;34m~\x1b[0m$ ".to_vec(),
                    ));
                    for c in "kubectl get pods -A".bytes() {
                        t += 80_000 + rng.below(60_000);
                        w.push(Event {
                            at_us: t,
                            kind: EventKind::Data {
                                stream: Stream::Stdin,
                                bytes: vec![c],
                            },
                        });
                        w.push(out(t + 2_000, vec![c]));
                    }
                    t += 100_000;
                    w.push(Event {
                        at_us: t,
                        kind: EventKind::Data {
                            stream: Stream::Stdin,
                            bytes: b"\r".to_vec(),
                        },
                    });
                    w.push(out(t + 2_000, b"\r\n".to_vec()));
                    w.typed += 1;
                    let mut body = String::new();
                    for _ in 0..(5 + rng.below(40)) {
                        n += 1;
                        body.push_str(&log_line(&mut rng, n));
                    }
                    t += 50_000;
                    w.push(out(t, body.into_bytes()));
                    t += 500_000 + rng.below(1_500_000);
                }
            }
            1 => {
                // top: alternate screen, a coloured full redraw every second.
                w.push(out(t, b"\x1b[?1049h\x1b[?25l\x1b[H\x1b[2J".to_vec()));
                while t + 1_000_000 < end {
                    t += 1_000_000;
                    let mut frame = format!(
                        "\x1b[Htop - 18:{:02}:{:02} up 3 days, load average: 0.{:02}, 0.{:02}\x1b[K\r\n",
                        t / 60_000_000 % 60,
                        t / 1_000_000 % 60,
                        rng.below(100),
                        rng.below(100)
                    );
                    frame.push_str("\x1b[7m  PID USER      PR  NI    VIRT    RES  %CPU %MEM COMMAND\x1b[K\x1b[0m\r\n");
                    for row in 0..(SIZE.rows - 3) {
                        frame.push_str(&format!(
                            "\x1b[{};1H{:5} root      20   0 {:7} {:6} \x1b[1m{:4}.{}\x1b[0m {:4}.{} {}\x1b[K",
                            row + 3,
                            1000 + rng.below(9000),
                            rng.below(9_000_000),
                            rng.below(900_000),
                            rng.below(100),
                            rng.below(10),
                            rng.below(10),
                            rng.below(10),
                            WORDS[rng.below(WORDS.len() as u64) as usize]
                        ));
                    }
                    w.push(out(t, frame.into_bytes()));
                }
                w.push(out(t + 10_000, b"\x1b[?25h\x1b[?1049l".to_vec()));
            }
            _ => {
                // cat of a big log: 16 KiB writes as fast as the link goes.
                let mut written = 0;
                let mut buf = String::new();
                while written < per_cat {
                    while buf.len() < 16 * 1024 {
                        n += 1;
                        buf.push_str(&log_line(&mut rng, n));
                    }
                    t += 300 + rng.below(200);
                    written += buf.len();
                    w.push(out(t.min(end - 1), std::mem::take(&mut buf).into_bytes()));
                }
            }
        }
    }
    w.flush();
    w
}

fn chunk_events(chunks: &[Stored], i: usize) -> Result<Vec<Event>, std::io::Error> {
    let c = &chunks[i];
    let raw = zstd::bulk::decompress(&c.bytes, 64 << 20)?;
    decode_all(&raw, c.base_us).map_err(std::io::Error::other)
}

/// The screen at `at`, replayed from the start: the baseline.
fn replay(chunks: &[Stored], at: u64) -> Terminal {
    let mut term = Terminal::new(SIZE);
    for i in 0..chunks.len() {
        for e in chunk_events(chunks, i).expect("chunk") {
            if e.at_us > at {
                return term;
            }
            term.apply(&e);
        }
    }
    term
}

/// (VmRSS, VmHWM) in KiB.
fn mem() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    // `cargo bench` passes --bench; nothing to parse.
    let seconds: u64 = std::env::var("KT_SEEK_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3600);
    let mb: usize = std::env::var("KT_SEEK_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);

    let t0 = Instant::now();
    let session = generate(seconds, mb * 1_000_000);
    let chunks = session.chunks;
    let stored: usize = chunks.iter().map(|c| c.bytes.len()).sum();
    println!(
        "session: {} s, {:.1} MB of output, {} chunks ({:.1} MB compressed), generated in {:.1?}",
        seconds,
        session.total_out as f64 / 1e6,
        chunks.len(),
        stored as f64 / 1e6,
        t0.elapsed()
    );

    // Peak memory from here on: reset the high-water mark to the current RSS.
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let (rss0, _) = mem();

    // Open as `play` does, then wait for the background indexer (which the player does not).
    let (open, index, build, first_text) = std::thread::scope(|scope| {
        let t1 = Instant::now();
        let (mut writer, reader) = SeekIndex::shared(SIZE, SeekConfig::default());
        let chunks = &chunks;
        let indexer = scope.spawn(move || {
            for i in 0..chunks.len() {
                let events = chunk_events(chunks, i).expect("chunk");
                writer.push_chunk(&events);
            }
            t1.elapsed()
        });
        let duration = chunk_events(chunks, chunks.len() - 1)
            .expect("chunk")
            .iter()
            .map(|e| e.at_us)
            .max();
        let mut first = reader.start_seek_over(0, chunks.len()).expect("keyframe");
        while let Some(i) = first.next_chunk() {
            first.feed_chunk(&chunk_events(chunks, i).expect("chunk"));
        }
        let first = first.finish();
        let open = t1.elapsed();
        std::hint::black_box(duration);
        let build = indexer.join().expect("indexer");
        (open, reader, build, first.terminal.text())
    });
    let end_us = index.end_us();
    let first_want = replay(&chunks, 0).text();

    let mut rng = Rng(42);
    let mut lat = Vec::new();
    let mut replayed = 0;
    for _ in 0..300 {
        let at = rng.below(end_us + 1);
        let t = Instant::now();
        let seeked = index.seek(at, |i| chunk_events(&chunks, i)).expect("seek");
        lat.push(t.elapsed());
        replayed += seeked.replayed;
        std::hint::black_box(seeked.terminal.text());
    }
    lat.sort();
    let (_, hwm) = mem();
    let peak_mb = hwm.saturating_sub(rss0) as f64 / 1024.0;
    let (keyframes, keyframe_bytes) = index.keyframes();
    println!(
        "open: first screen in {open:.1?} (indexer started, duration read){}",
        if first_text == first_want {
            ""
        } else {
            ": WRONG SCREEN"
        }
    );
    println!(
        "index: built in the background in {build:.1?} from open ({:.0} MB/s), {keyframes} keyframes, {:.2} MB of keyframes",
        session.total_out as f64 / 1e6 / build.as_secs_f64(),
        keyframe_bytes as f64 / 1e6
    );
    println!(
        "memory: peak growth {peak_mb:.1} MB while building and seeking (VmHWM{})",
        if reset {
            ", reset before"
        } else {
            " not resettable: absolute"
        }
    );
    let p50 = percentile(&lat, 0.5);
    let p99 = percentile(&lat, 0.99);
    println!(
        "seek: {} random targets, p50 {p50:.2?}, p99 {p99:.2?}, max {:.2?}, {:.0} events replayed on average",
        lat.len(),
        lat[lat.len() - 1],
        replayed as f64 / lat.len() as f64
    );

    // Baseline in the same run: replay from the start, and the same screens.
    let mut base = Vec::new();
    let mut mismatches = 0;
    for k in 0..3 {
        let at = end_us / 4 * (k + 1) + rng.below(end_us / 8);
        let t = Instant::now();
        let term = replay(&chunks, at);
        base.push(t.elapsed());
        let seeked = index.seek(at, |i| chunk_events(&chunks, i)).expect("seek");
        if seeked.terminal.text() != term.text() || seeked.terminal.cursor() != term.cursor() {
            mismatches += 1;
            eprintln!("screen at {at} µs differs from the replay from the start");
        }
    }
    base.sort();
    let b50 = percentile(&base, 0.5);
    println!(
        "baseline (replay from the start): p50 {b50:.2?} over {} targets; seek is {:.0}× faster at p50",
        base.len(),
        b50.as_secs_f64() / p50.as_secs_f64()
    );
    // The extractor over the same session: what indexing commands costs the gateway.
    let t = Instant::now();
    let mut x = CommandExtractor::tty(SIZE);
    for i in 0..chunks.len() {
        for e in chunk_events(&chunks, i).expect("chunk") {
            x.feed(&e);
        }
    }
    let commands = x.finish();
    let took = t.elapsed();
    let typed = commands
        .iter()
        .filter(|c| c.text == "kubectl get pods -A")
        .count();
    let extract_mbs = session.total_out as f64 / 1e6 / took.as_secs_f64();
    // The terminal emulator alone over the same events (decoding included, as above): the
    // floor the extractor is built on, measured in the same run.
    let t = Instant::now();
    let mut term = Terminal::new(SIZE);
    for i in 0..chunks.len() {
        for e in chunk_events(&chunks, i).expect("chunk") {
            match &e.kind {
                EventKind::Data {
                    stream: Stream::Stdout,
                    bytes,
                } => term.process(bytes),
                EventKind::Resize { cols, rows } => term.resize(TermSize {
                    cols: *cols,
                    rows: *rows,
                }),
                _ => {}
            }
        }
    }
    std::hint::black_box(term.cursor());
    let emulator_mbs = session.total_out as f64 / 1e6 / t.elapsed().as_secs_f64();
    println!(
        "extract: {} commands ({typed} as typed) in {took:.1?} ({extract_mbs:.0} MB/s of output \
         on one core); the emulator alone: {emulator_mbs:.0} MB/s; extraction costs {:.2}× it",
        commands.len(),
        emulator_mbs / extract_mbs
    );
    let extracted_all = typed == commands.len() && typed == session.typed;

    let open_ok = open < Duration::from_millis(200) && first_text == first_want;
    let ok = open_ok
        && p99 < Duration::from_millis(50)
        && peak_mb < 100.0
        && mismatches == 0
        && extracted_all;
    println!(
        "targets: open < 200 ms: {open_ok}; seek p99 < 50 ms: {}; peak memory < 100 MB: {}; screens equal to baseline: {}; every typed command extracted: {extracted_all} ({})",
        p99 < Duration::from_millis(50),
        peak_mb < 100.0,
        mismatches == 0,
        session.typed
    );
    if !ok {
        std::process::exit(1);
    }
}
