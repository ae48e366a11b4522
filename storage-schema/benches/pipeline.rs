//! Recording-pipeline throughput, single thread, against a memcpy baseline, in one run.
//!
//! ```text
//! cargo bench -p storage-schema --bench pipeline
//! KUBETAPE_BENCH_ZSTD_LEVEL=1 cargo bench -p storage-schema --bench pipeline   # other zstd level
//! ```
//! Environment: `KUBETAPE_BENCH_ZSTD_LEVEL` (default: `FlushPolicy::default()`'s level),
//! `KUBETAPE_BENCH_ZSTD_TABLES` (`HASHLOG,CHAINLOG[,WINDOWLOG]`, or `level` for the level's own),
//! `KUBETAPE_BENCH_MIB` (input size, default 64), `KUBETAPE_BENCH_REPS` (repetitions, default 7;
//! the median is reported), `KUBETAPE_BENCH_DUMP=FILE` (write the input, and 4 MiB of each kind
//! alone, to FILE[.kind] and exit), `KUBETAPE_BENCH_PROFILE=text|random` (only the recorder on
//! that payload, 20 times, for `perf record`).
//!
//! The input is ~64 MiB of deterministic, terminal-like output cut into 4 KiB reads, as a PTY
//! relay sees it. By bytes it is a mix of:
//! - 45% application log lines: RFC 3339 µs timestamps, ANSI-coloured levels (mostly INFO), a
//!   component, templated messages with request ids (random hex), paths, status codes, latencies;
//! - 25% `ls -l --color` listings: `total` line, permissions, owners, sizes, dates, file names
//!   from word lists, directories and executables wrapped in ANSI colour escapes;
//! - 20% `seq` output: long runs of consecutive numbers, one per line;
//! - 10% less compressible dumps: `xxd` lines and base64 lines of binary-like bytes (zero
//!   padding, small integers, strings, 20% random runs);
//!
//! Every block is preceded by a coloured shell prompt and its command line, and every line ends
//! in `\r\n` (the PTY's ONLCR translation). Each kind alone is calibrated against real output
//! compressed the same way (zstd -3, 256 KiB pieces) on a Debian host: `seq` 0.05, `ls -lR`
//! 0.12, dpkg/apt logs 0.11, `xxd`/`base64` of ELF binaries 0.29/0.46. The bench prints each
//! kind's own ratio; the mix lands near 0.19 (app logs with 64-bit request ids compress worse
//! than dpkg's).
//!
//! Times are this thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`, to the nanosecond), since on a
//! shared machine wall time mostly measures the neighbours; wall-clock medians are printed
//! alongside. A sample repeats a workload for at least 250 ms and reports the time per run.
//! (Earlier versions read `/proc/thread-self/schedstat`, which the kernel updates only at
//! scheduler ticks: with two runs per sample that quantised every row to 2 ms, ~1.5%.)
//!
//! Workloads (MB = 10^6 bytes; MB/s counts raw input bytes per CPU second for every row):
//! - `memcpy`: copy each read into a reused chunk-sized buffer — the least a recorder must do;
//! - `pipeline push`: `ChunkBuilder::push` of prebuilt `Data` events, then `flush`: varint
//!   framing in the v2 layout → zstd → AES-256-GCM → BLAKE3 chain digest → Ed25519 signature
//!   per chunk;
//! - `pipeline push_data`: the same through `push_data`, the relay's path (no `Event` built);
//! - stage figures on the same data: framing alone, zstd alone (on the framed chunk plaintexts,
//!   same chunk boundaries; and on format v1's layout for comparison), AES-256-GCM alone (on the
//!   zstd output, i.e. what the pipeline encrypts, and on the raw plaintext for the cipher's own
//!   speed), digest+signature alone (and v1's SHA-256 digest for comparison);
//! - reader: `SealedChunk::decode` + `open` of the produced chunks, and zstd decompression alone.
//!
//! Then the issue-18 figures, each against its target with PASS/FAIL:
//! - recording cost per payload (`text`: the mix above; `random`: incompressible bytes): the
//!   recorder's CPU per GB against zstd alone at the policy's level and tables on the same bytes
//!   in chunk-sized pieces (ratio, target ≤ 1.15), and on `random` the absolute cost (target
//!   ≤ 0.5 CPU-s/GB, stored raw); the former 256 KiB chunks beside it. Every payload's
//!   recording is opened and compared with the input first (no loss, asserted).
//! - store cost: objects per GB of output at 400, 40, 8 and 4 MB/s (target ≤ 300 for bulk),
//!   and per hour of a modelled quiet interactive session, with the S3 PUT price they imply;
//!   chunks close as the recorder closes them (bytes, or the age deadline, simulated on the
//!   session clock).

use std::hint::black_box;
use std::time::{Duration, Instant};

use storage_schema::{
    ChainDigest, ChunkBuilder, DataKey, Event, EventKind, FlushPolicy, SealedChunk, SessionId,
    SigningKey, Stream, ZstdTables,
};
use storage_schema::{aead, event};

/// Size of one PTY read.
const READ: usize = 4096;
const DEK: [u8; 32] = [0x42; 32];
const SEED: [u8; 32] = [0x07; 32];
const META: &[u8] =
    br#"{"format":1,"kind":"exec","who":{"user":"bench"},"target":{"pod":"web-7f9c"}}"#;

fn env_num<T: std::str::FromStr>(name: &str) -> Option<T> {
    let value = std::env::var(name).ok()?;
    match value.parse() {
        Ok(v) => Some(v),
        Err(_) => panic!("{name}={value:?} is not a number"),
    }
}

// === Deterministic terminal-like data ===

/// splitmix64: small, fast, deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Below `n`, small values more likely (latencies, sizes).
    fn skewed(&mut self, n: u64) -> u64 {
        let bound = self.below(n) + 1;
        self.below(bound)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    fn hex(&mut self, out: &mut Vec<u8>, digits: usize) {
        for _ in 0..digits {
            out.push(b"0123456789abcdef"[self.below(16) as usize]);
        }
    }
}

const WORDS: &[&str] = &[
    "config", "server", "handler", "cache", "index", "main", "utils", "router", "auth", "session",
    "worker", "queue", "metrics", "storage", "backup", "deploy", "values", "schema", "migrate",
    "client", "proxy", "api",
];
const EXTS: &[&str] = &[
    ".rs", ".go", ".py", ".yaml", ".json", ".log", ".tar.gz", ".sh", ".md", ".txt", "",
];
const USERS: &[&str] = &["root", "app", "www-data", "postgres", "nobody"];
const MONTHS: &[&str] = &[
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const COMPONENTS: &[&str] = &[
    "http_server",
    "db::pool",
    "scheduler",
    "grpc::client",
    "cache::lru",
    "auth::oidc",
    "kube::watcher",
];
const PATHS: &[&str] = &[
    "/api/v1/namespaces/default/pods",
    "/api/v1/users",
    "/healthz",
    "/metrics",
    "/api/v2/orders",
    "/static/app.js",
    "/api/v1/sessions",
];
const METHODS: &[&str] = &["GET", "GET", "GET", "POST", "PUT", "DELETE"];
const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn prompt(rng: &mut Rng, out: &mut Vec<u8>, command: &str) {
    out.extend_from_slice(b"\x1b[01;32mapp@web-7f9c");
    rng.hex(out, 4);
    out.extend_from_slice(b"\x1b[00m:\x1b[01;34m~/srv\x1b[00m$ ");
    out.extend_from_slice(command.as_bytes());
    out.extend_from_slice(b"\r\n");
}

struct Clock {
    secs: u64,
    micros: u64,
}

fn log_block(rng: &mut Rng, clock: &mut Clock, out: &mut Vec<u8>) {
    prompt(rng, out, "kubectl logs -f deploy/web --tail=100");
    let mut request = Vec::new();
    let mut lines_left = 0;
    for _ in 0..10 + rng.below(90) {
        // A request logs a few lines under one id.
        if lines_left == 0 {
            request.clear();
            rng.hex(&mut request, 16);
            lines_left = 1 + rng.below(5);
        }
        lines_left -= 1;
        clock.micros += 100 + rng.skewed(50_000);
        clock.secs += clock.micros / 1_000_000;
        clock.micros %= 1_000_000;
        let (h, m, s) = (
            (clock.secs / 3600) % 24,
            (clock.secs / 60) % 60,
            clock.secs % 60,
        );
        let level = match rng.below(100) {
            0..70 => "\x1b[32m INFO\x1b[0m",
            70..85 => "\x1b[34mDEBUG\x1b[0m",
            85..95 => "\x1b[33m WARN\x1b[0m",
            _ => "\x1b[31mERROR\x1b[0m",
        };
        let line = format!(
            "2026-11-23T{h:02}:{m:02}:{s:02}.{:06}Z {level} {}",
            clock.micros,
            rng.pick(COMPONENTS)
        );
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"{request_id=");
        out.extend_from_slice(&request);
        let path = rng.below(PATHS.len() as u64) as usize;
        let msg = match rng.below(5) {
            // Probes: a good part of any Kubernetes service's log.
            4 => format!("}}: GET /readyz 200 {}ms bytes=2", rng.skewed(3)),
            0 | 1 => format!(
                "}}: {} {} {} {}ms bytes={}",
                rng.pick(METHODS),
                PATHS[path],
                *rng.pick(&[200, 200, 200, 200, 200, 201, 204, 304, 404, 500]),
                rng.skewed(300),
                (path as u64 + 1) * 731 + rng.below(16)
            ),
            2 => format!(
                "}}: acquired connection pool={} idle={} in_use={}",
                rng.pick(WORDS),
                rng.below(8),
                rng.below(16),
            ),
            _ => format!(
                "}}: reconciled {}/{} generation={} took={}ms",
                rng.pick(WORDS),
                rng.pick(WORDS),
                clock.secs / 60,
                rng.skewed(2000)
            ),
        };
        out.extend_from_slice(msg.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

fn ls_block(rng: &mut Rng, out: &mut Vec<u8>) {
    prompt(rng, out, "ls -l --color=auto");
    let lines = 10 + rng.below(100);
    out.extend_from_slice(format!("total {}\r\n", lines * 4 + rng.below(200)).as_bytes());
    // Most files of a directory share an owner and the time they were installed.
    let owner = *rng.pick(USERS);
    let (month, day, hour, minute) = (
        *rng.pick(MONTHS),
        1 + rng.below(28),
        rng.below(24),
        rng.below(60),
    );
    let prefix = *rng.pick(WORDS);
    for _ in 0..lines {
        let kind = rng.below(10);
        let (perm, links) = match kind {
            0..2 => ("drwxr-xr-x", 2 + rng.below(6)),
            2 => ("-rwxr-xr-x", 1),
            3 => ("lrwxrwxrwx", 1),
            _ => (
                *rng.pick(&["-rw-r--r--", "-rw-r--r--", "-rw-r--r--", "-rw-------"]),
                1,
            ),
        };
        let user = if rng.below(10) < 8 {
            owner
        } else {
            *rng.pick(USERS)
        };
        let name = format!(
            "{prefix}_{}{}",
            rng.pick(WORDS),
            if kind < 2 { "" } else { rng.pick(EXTS) }
        );
        let bits = 6 + rng.below(15);
        let size = if kind < 2 { 4096 } else { rng.below(1 << bits) };
        let line = if rng.below(10) < 8 {
            format!(
                "{perm} {links:>2} {user:<8} {user:<8} {size:>8} {month} {day:>2} {hour:02}:{minute:02} "
            )
        } else {
            let (mon, d) = (rng.pick(MONTHS), 1 + rng.below(28));
            format!("{perm} {links:>2} {user:<8} {user:<8} {size:>8} {mon} {d:>2}  2025 ")
        };
        out.extend_from_slice(line.as_bytes());
        match kind {
            0..2 => out.extend_from_slice(format!("\x1b[01;34m{name}\x1b[0m\r\n").as_bytes()),
            2 => out.extend_from_slice(format!("\x1b[01;32m{name}\x1b[0m\r\n").as_bytes()),
            3 => out.extend_from_slice(
                format!("\x1b[01;36m{name}\x1b[0m -> ../shared/{name}\r\n").as_bytes(),
            ),
            _ => out.extend_from_slice(format!("{name}\r\n").as_bytes()),
        }
    }
}

fn seq_block(rng: &mut Rng, out: &mut Vec<u8>) {
    // `seq` is run to produce a lot of output: long runs (35-350 KB).
    let start = 1 + rng.skewed(100_000);
    let count = 5_000 + rng.below(45_000);
    prompt(rng, out, &format!("seq {start} {}", start + count - 1));
    for n in start..start + count {
        out.extend_from_slice(n.to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

/// Bytes as in an executable or a data file: zero padding, small little-endian integers, strings
/// and some high-entropy runs (code, compressed or encrypted sections).
fn binary_like(rng: &mut Rng, n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 32);
    while out.len() < n {
        match rng.below(10) {
            0..3 => out.extend(std::iter::repeat_n(0, 4 + rng.below(24) as usize)),
            3..5 => {
                for _ in 0..1 + rng.below(6) {
                    out.extend_from_slice(&(rng.skewed(1 << 16) as u32).to_le_bytes());
                }
            }
            5..7 => {
                out.extend_from_slice(rng.pick(WORDS).as_bytes());
                out.extend_from_slice(rng.pick(EXTS).as_bytes());
                out.push(0);
            }
            _ => out.extend((0..8 + rng.below(24)).map(|_| rng.next() as u8)),
        }
    }
    out.truncate(n);
    out
}

fn dump_block(rng: &mut Rng, out: &mut Vec<u8>) {
    let lines = 8 + rng.below(24) as usize;
    if rng.below(2) == 0 {
        prompt(rng, out, "xxd /tmp/blob | head");
        let bytes = binary_like(rng, lines * 16);
        for (i, row) in bytes.chunks(16).enumerate() {
            out.extend_from_slice(format!("{:08x}: ", i * 16).as_bytes());
            for pair in row.chunks(2) {
                out.extend_from_slice(format!("{:02x}{:02x} ", pair[0], pair[1]).as_bytes());
            }
            out.push(b' ');
            out.extend(
                row.iter()
                    .map(|&b| if b.is_ascii_graphic() { b } else { b'.' }),
            );
            out.extend_from_slice(b"\r\n");
        }
    } else {
        prompt(rng, out, "base64 /tmp/blob | head");
        let bytes = binary_like(rng, lines * 57);
        for row in bytes.chunks(57) {
            for group in row.chunks(3) {
                let v = group
                    .iter()
                    .enumerate()
                    .fold(0u32, |v, (i, &b)| v | u32::from(b) << (16 - 8 * i));
                for k in 0..4 {
                    out.push(B64[(v >> (18 - 6 * k)) as usize & 63]);
                }
            }
            out.extend_from_slice(b"\r\n");
        }
    }
}

const KINDS: [&str; 4] = ["logs", "ls -l", "seq", "hex/base64"];
/// Share of the input, by bytes, of each of [`KINDS`].
const SHARE: [f64; 4] = [0.45, 0.25, 0.20, 0.10];

struct Terminal {
    rng: Rng,
    clock: Clock,
}

impl Terminal {
    fn new() -> Self {
        Self {
            rng: Rng(0x6b75_6265_7461_7065),
            clock: Clock {
                secs: 15 * 3600,
                micros: 0,
            },
        }
    }

    fn block(&mut self, kind: usize, out: &mut Vec<u8>) {
        match kind {
            0 => log_block(&mut self.rng, &mut self.clock, out),
            1 => ls_block(&mut self.rng, out),
            2 => seq_block(&mut self.rng, out),
            _ => dump_block(&mut self.rng, out),
        }
    }
}

/// `size` bytes of terminal-like output; the kinds are interleaved by blocks, always growing the
/// kind furthest below its share, so the mix holds at any size.
fn terminal_data(size: usize) -> (Vec<u8>, [usize; 4]) {
    let mut term = Terminal::new();
    let mut out = Vec::with_capacity(size + (64 << 10));
    let mut made = [0usize; 4];
    while out.len() < size {
        let total = out.len().max(1) as f64;
        let need = |k: usize| SHARE[k] - made[k] as f64 / total;
        let kind = (0..4)
            .max_by(|&a, &b| need(a).total_cmp(&need(b)))
            .expect("four kinds");
        let before = out.len();
        term.block(kind, &mut out);
        made[kind] += out.len() - before;
    }
    out.truncate(size);
    (out, made)
}

/// stored/raw of 4 MiB of one kind alone, compressed in chunk-sized pieces.
fn kind_ratio(kind: usize, compressor: &mut zstd::bulk::Compressor<'_>, chunk: usize) -> f64 {
    let mut term = Terminal::new();
    let mut out = Vec::new();
    while out.len() < 4 << 20 {
        term.block(kind, &mut out);
    }
    let stored: usize = out
        .chunks(chunk)
        .map(|c| compressor.compress(c).unwrap().len())
        .sum();
    stored as f64 / out.len() as f64
}

// === Measurement ===

struct Row {
    name: String,
    cpu: Duration,
    wall: Duration,
    stored: Option<usize>,
}

/// This thread's CPU time: on a shared machine wall time mostly measures the neighbours.
fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// Shortest sample: whole runs of `f` are repeated until a sample takes this long.
const MIN_SAMPLE: Duration = Duration::from_millis(250);

/// One row's work: a whole run over the input, returning the bytes it stored, if any.
type Workload<'a> = Box<dyn FnMut() -> Option<usize> + 'a>;

/// Medians over `reps` samples of the time of one run of each workload: (CPU time, wall time,
/// what it reports as stored bytes). The samples are interleaved — one of each workload in
/// turn, `reps` times — so a slow spell of this shared machine lands on every row alike rather
/// than on whichever row was running, and rows can be compared within a run.
fn measure_interleaved(
    reps: usize,
    workloads: &mut [Workload<'_>],
) -> Vec<(Duration, Duration, Option<usize>)> {
    // Runs per sample, so that each sample lasts MIN_SAMPLE.
    let runs: Vec<u32> = workloads
        .iter_mut()
        .map(|f| {
            let start = Instant::now();
            black_box(f());
            (MIN_SAMPLE.as_secs_f64() / start.elapsed().as_secs_f64())
                .ceil()
                .max(1.0) as u32
        })
        .collect();
    let mut samples = vec![(Vec::new(), Vec::new(), None); workloads.len()];
    for _ in 0..reps {
        for ((f, &runs), (cpu, wall, stored)) in workloads.iter_mut().zip(&runs).zip(&mut samples) {
            let (start, start_cpu) = (Instant::now(), thread_cpu());
            for _ in 0..runs {
                *stored = black_box(f());
            }
            let elapsed = start.elapsed();
            wall.push(elapsed / runs);
            cpu.push((thread_cpu() - start_cpu) / runs);
        }
    }
    samples
        .into_iter()
        .map(|(mut cpu, mut wall, stored)| {
            cpu.sort();
            wall.sort();
            (cpu[reps / 2], wall[reps / 2], stored)
        })
        .collect()
}

fn nonce(seq: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..4].copy_from_slice(b"KTck");
    n[4..].copy_from_slice(&seq.to_be_bytes());
    n
}

fn main() {
    let policy = FlushPolicy {
        zstd_level: env_num("KUBETAPE_BENCH_ZSTD_LEVEL")
            .unwrap_or(FlushPolicy::default().zstd_level),
        // KUBETAPE_BENCH_ZSTD_TABLES=16,12,18 (hash, chain, window logs; window 21 if left out)
        // or "level" for the level's own.
        zstd_tables: match std::env::var("KUBETAPE_BENCH_ZSTD_TABLES").as_deref() {
            Err(_) => FlushPolicy::default().zstd_tables,
            Ok("level") => None,
            Ok(logs) => {
                let logs: Vec<u32> = logs
                    .split(',')
                    .map(|n| n.parse().expect("HASH,CHAIN[,WINDOW]"))
                    .collect();
                Some(ZstdTables {
                    hash_log: logs[0],
                    chain_log: logs[1],
                    window_log: logs.get(2).copied().unwrap_or(21),
                })
            }
        },
        ..FlushPolicy::default()
    };
    let mib: usize = env_num("KUBETAPE_BENCH_MIB").unwrap_or(64);
    let reps: usize = env_num::<usize>("KUBETAPE_BENCH_REPS").unwrap_or(7).max(1);
    let session = SessionId::from_bytes(*b"kubetape-bench-1");
    let dek = DataKey::from_bytes(DEK);
    let signer = SigningKey::from_seed("bench", SEED);

    let (data, made) = terminal_data(mib << 20);
    if let Ok(payload) = std::env::var("KUBETAPE_BENCH_PROFILE") {
        // For `perf record`: only the recorder, on one payload, 20 times.
        let data = if payload == "random" {
            random_data(data.len())
        } else {
            data
        };
        let mut builder = new_builder(policy);
        let start = thread_cpu();
        for _ in 0..20 {
            record_more(&mut builder, &data, 10, &mut |c| {
                black_box(c);
            });
        }
        let cpu = (thread_cpu() - start) / 20;
        println!(
            "{payload}: recorder {:.3} CPU-s/GB",
            cpu.as_secs_f64() * 1e9 / data.len() as f64
        );
        return;
    }
    if let Ok(path) = std::env::var("KUBETAPE_BENCH_DUMP") {
        // Inspect the input (`less -R`, `zstd -3`): write it, one file per kind too, and stop.
        std::fs::write(&path, &data).unwrap();
        for (k, name) in KINDS.iter().enumerate() {
            let mut term = Terminal::new();
            let mut out = Vec::new();
            while out.len() < 4 << 20 {
                term.block(k, &mut out);
            }
            std::fs::write(format!("{path}.{}", name.replace(['/', ' '], "_")), out).unwrap();
        }
        println!("input written to {path}");
        return;
    }
    let raw = data.len();
    let pct = |n: usize| 100.0 * n as f64 / made.iter().sum::<usize>() as f64;
    println!(
        "input: {:.1} MB terminal-like ({:.0}% logs, {:.0}% ls -l, {:.0}% seq, {:.0}% hex/base64) in {} reads of {} B",
        raw as f64 / 1e6,
        pct(made[0]),
        pct(made[1]),
        pct(made[2]),
        pct(made[3]),
        raw.div_ceil(READ),
        READ
    );
    println!(
        "policy: zstd level {} tables {}, chunks close at {} KiB; {} repetitions, median reported",
        policy.zstd_level,
        policy
            .zstd_tables
            .map_or("(the level's own)".to_string(), |t| format!(
                "hashLog {} chainLog {} windowLog {}",
                t.hash_log, t.chain_log, t.window_log
            )),
        policy.max_bytes >> 10,
        reps
    );
    let mut compressor = policy.compressor().unwrap();
    let ratios: Vec<String> = (0..4)
        .map(|k| {
            format!(
                "{} {:.3}",
                KINDS[k],
                kind_ratio(k, &mut compressor, policy.max_bytes)
            )
        })
        .collect();
    println!(
        "zstd level {} stored/raw of each kind alone: {}",
        policy.zstd_level,
        ratios.join(", ")
    );
    let events: Vec<Event> = data
        .chunks(READ)
        .enumerate()
        .map(|(i, bytes)| Event {
            at_us: i as u64 * 1000,
            kind: EventKind::Data {
                stream: Stream::Stdout,
                bytes: bytes.to_vec(),
            },
        })
        .collect();
    // What the rows work on, made once: chunk plaintexts in both layouts (same chunk
    // boundaries: a chunk closes once its encoded events reach max_bytes, the same count in
    // either layout), their zstd output, and the pipeline's chunks.
    let frame_all = |v1: bool| {
        let mut plaintexts = Vec::new();
        let (mut heads, mut payloads) = (Vec::new(), Vec::new());
        let mut prev = None;
        for event in &events {
            let base = prev.unwrap_or(event.at_us);
            if v1 {
                event.encode(base, &mut payloads);
            } else {
                event.encode_split(base, &mut heads, &mut payloads);
            }
            prev = Some(event.at_us);
            if heads.len() + payloads.len() >= policy.max_bytes {
                event::finish_split(&mut payloads, &heads);
                plaintexts.push(std::mem::take(&mut payloads));
                heads.clear();
                prev = None;
            }
        }
        if prev.is_some() {
            event::finish_split(&mut payloads, &heads);
            plaintexts.push(payloads);
        }
        if v1 {
            // v1 has no heads' length behind the events.
            for p in &mut plaintexts {
                p.truncate(p.len() - 4);
            }
        }
        plaintexts
    };
    let plaintexts = frame_all(false);
    let plaintexts_v1 = frame_all(true);
    let compressed: Vec<Vec<u8>> = plaintexts
        .iter()
        .map(|p| compressor.compress(p).unwrap())
        .collect();
    // The writer; each chunk goes to `sink` as it closes, as a recorder hands it to its uploader.
    let run_pipeline = |via_push_data: bool, sink: &mut dyn FnMut(SealedChunk)| {
        let mut builder =
            ChunkBuilder::new(session, META, dek.clone(), signer.clone(), policy).unwrap();
        for event in &events {
            let closed = if via_push_data {
                let EventKind::Data { stream, bytes } = &event.kind else {
                    unreachable!()
                };
                builder.push_data(event.at_us, *stream, bytes).unwrap()
            } else {
                builder.push(event).unwrap()
            };
            closed.into_iter().for_each(&mut *sink);
        }
        builder.flush().unwrap().into_iter().for_each(sink);
    };
    let mut chunks = Vec::new();
    run_pipeline(false, &mut |c| chunks.push(c));
    let stored: Vec<Vec<u8>> = chunks.iter().map(SealedChunk::encode).collect();
    let opened: usize = stored
        .iter()
        .map(|b| SealedChunk::decode(b).unwrap().open(&dek).unwrap())
        .flat_map(|events| {
            events
                .into_iter()
                .map(|e| e.stream_bytes().map_or(0, |(_, n)| n))
        })
        .sum();
    assert_eq!(opened, raw, "the chunks open to the input");
    // A measured run keeps only the stored size: chunks are dropped as they close.
    let stored_len = |via_push_data: bool| {
        let mut n = 0;
        run_pipeline(via_push_data, &mut |c| n += c.encoded_len());
        Some(n)
    };
    let zstd_all = |z: &mut zstd::bulk::Compressor<'_>, plaintexts: &[Vec<u8>]| {
        Some(
            plaintexts
                .iter()
                .map(|p| z.compress(p).unwrap().len())
                .sum(),
        )
    };
    let header = [0u8; 92];
    // The rows own their buffers and share the rest.
    let (data, events, plaintexts, plaintexts_v1, compressed, stored) = (
        &data,
        &events,
        &plaintexts,
        &plaintexts_v1,
        &compressed,
        &stored,
    );
    let (stored_len, zstd_all, signer, dek) = (&stored_len, &zstd_all, &signer, &dek);

    // Every row; each returns the bytes it stored, if it stores any.
    let mut rows: Vec<(String, Workload)> = Vec::new();
    let mut buf = Vec::with_capacity(policy.max_bytes + READ);
    rows.push((
        "memcpy into chunk buffer (baseline)".into(),
        Box::new(move || {
            for read in data.chunks(READ) {
                if buf.len() + read.len() > policy.max_bytes {
                    black_box(&buf);
                    buf.clear();
                }
                buf.extend_from_slice(read);
            }
            black_box(&buf);
            buf.clear();
            None
        }),
    ));
    rows.push((
        "pipeline: ChunkBuilder::push + flush".into(),
        Box::new(move || stored_len(false)),
    ));
    let pipeline_row = rows.len() - 1;
    rows.push((
        "pipeline: ChunkBuilder::push_data + flush".into(),
        Box::new(move || stored_len(true)),
    ));
    let (mut heads, mut payloads) = (
        Vec::with_capacity(4096),
        Vec::with_capacity(policy.max_bytes + READ + 64),
    );
    rows.push((
        "stage: framing (Event::encode_split)".into(),
        Box::new(move || {
            let mut prev = None;
            for event in events {
                event.encode_split(prev.unwrap_or(event.at_us), &mut heads, &mut payloads);
                prev = Some(event.at_us);
                if heads.len() + payloads.len() >= policy.max_bytes {
                    event::finish_split(&mut payloads, &heads);
                    black_box(&payloads);
                    payloads.clear();
                    heads.clear();
                    prev = None;
                }
            }
            payloads.clear();
            heads.clear();
            None
        }),
    ));
    let mut z = policy.compressor().unwrap();
    rows.push((
        "stage: zstd as the policy sets it".into(),
        Box::new(move || zstd_all(&mut z, plaintexts)),
    ));
    // Format v1's layout (heads between payloads), for the v2 layout's gain.
    let mut z = policy.compressor().unwrap();
    rows.push((
        "stage: zstd as set, v1 layout (comparison)".into(),
        Box::new(move || zstd_all(&mut z, plaintexts_v1)),
    ));
    // The untuned level, for the table sizes' gain and ratio.
    let mut z = zstd::bulk::Compressor::new(policy.zstd_level).unwrap();
    rows.push((
        format!(
            "stage: zstd level {} untuned (comparison)",
            policy.zstd_level
        ),
        Box::new(move || zstd_all(&mut z, plaintexts)),
    ));
    rows.push((
        "stage: AES-256-GCM on the zstd output".into(),
        Box::new(move || {
            let mut n = 0;
            for (seq, c) in compressed.iter().enumerate() {
                let ct = aead::seal(&DEK, nonce(seq as u64), &header, c).unwrap();
                n += black_box(ct).len();
            }
            Some(n)
        }),
    ));
    rows.push((
        "stage: AES-256-GCM on the raw plaintext".into(),
        Box::new(move || {
            for (seq, p) in plaintexts.iter().enumerate() {
                black_box(aead::seal(&DEK, nonce(seq as u64), &header, p).unwrap());
            }
            None
        }),
    ));
    rows.push((
        "stage: chain digest (BLAKE3) + Ed25519 sign".into(),
        Box::new(move || {
            for c in compressed {
                let digest = ChainDigest::of(2, &header, c);
                black_box(signer.sign(b"kubetape/chunk/v2", &digest.0));
            }
            None
        }),
    ));
    // Format v1's chain digest, for BLAKE3's gain.
    rows.push((
        "stage: v1 chain digest, SHA-256 (comparison)".into(),
        Box::new(move || {
            for c in compressed {
                black_box(ChainDigest::of(1, &header, c));
            }
            None
        }),
    ));
    rows.push((
        "reader: SealedChunk::decode + open".into(),
        Box::new(move || {
            for bytes in stored {
                black_box(SealedChunk::decode(bytes).unwrap().open(dek).unwrap());
            }
            None
        }),
    ));
    rows.push((
        "reader stage: zstd decompress".into(),
        Box::new(move || {
            for (c, p) in compressed.iter().zip(plaintexts) {
                black_box(zstd::bulk::decompress(c, p.len()).unwrap());
            }
            None
        }),
    ));
    let names: Vec<String> = rows.iter().map(|(name, _)| name.clone()).collect();
    let mut workloads: Vec<Workload> = rows.into_iter().map(|(_, w)| w).collect();
    let rows: Vec<Row> = measure_interleaved(reps, &mut workloads)
        .into_iter()
        .zip(names)
        .map(|((cpu, wall, stored), name)| Row {
            name,
            cpu,
            wall,
            stored,
        })
        .collect();
    drop(workloads);

    let mbps = |d: Duration| raw as f64 / 1e6 / d.as_secs_f64();
    let base = mbps(rows[0].cpu);
    println!();
    println!(
        "MB/s = raw input bytes (10^6) per second of this thread's CPU time; wall-clock medians for reference"
    );
    println!(
        "{:<44} {:>8} {:>8} {:>9} {:>10} {:>11}",
        "workload", "cpu ms", "wall ms", "MB/s", "vs memcpy", "stored/raw"
    );
    println!("{}", "-".repeat(95));
    for r in &rows {
        let ratio = r.stored.map_or_else(
            || "-".to_string(),
            |s| format!("{:.4}", s as f64 / raw as f64),
        );
        println!(
            "{:<44} {:>8.1} {:>8.1} {:>9.0} {:>9.4}x {:>11}",
            r.name,
            r.cpu.as_secs_f64() * 1e3,
            r.wall.as_secs_f64() * 1e3,
            mbps(r.cpu),
            mbps(r.cpu) / base,
            ratio
        );
    }
    println!();
    let p = &rows[pipeline_row];
    println!(
        "pipeline: {:.0} MB/s per core (target >= 500 MB/s); stored/raw = {:.3}",
        mbps(p.cpu),
        p.stored.unwrap_or(0) as f64 / raw as f64
    );
    drop(rows);
    recording_cost(policy, reps, data);
    store_cost(policy, data);
}

// === Recording cost per payload (issue 18, target 2) ===

/// The former chunk cap, run beside the policy for comparison.
const OLD_MAX_BYTES: usize = 256 << 10;

/// Bytes no compressor can shrink: what `cat` of a compressed file or `/dev/urandom` prints.
fn random_data(size: usize) -> Vec<u8> {
    let mut rng = Rng(0x7261_6e64_6f6d_2121);
    let mut out = Vec::with_capacity(size + 8);
    while out.len() < size {
        out.extend_from_slice(&rng.next().to_le_bytes());
    }
    out.truncate(size);
    out
}

/// Records `data` in 4 KiB reads through `ChunkBuilder::push_data`, closing chunks as the
/// recorder does: by bytes inside the builder, and at the builder's deadline (the recorder's
/// timer) before an event that comes after it. Reads are `us_per_read` apart. Calls `sink`
/// with each chunk.
fn record(
    policy: FlushPolicy,
    data: &[u8],
    us_per_read: u64,
    sink: &mut dyn FnMut(SealedChunk),
) -> storage_schema::Totals {
    let mut builder = new_builder(policy);
    record_more(&mut builder, data, us_per_read, sink);
    *builder.totals()
}

fn new_builder(policy: FlushPolicy) -> ChunkBuilder {
    let session = SessionId::from_bytes(*b"kubetape-bench-2");
    let signer = SigningKey::from_seed("bench", SEED);
    ChunkBuilder::new(session, META, DataKey::from_bytes(DEK), signer, policy).unwrap()
}

/// [`record`] into a builder that may have recorded before (times continue from its last
/// event): a long session in its steady state, its buffer grown once, not once per run.
fn record_more(
    builder: &mut ChunkBuilder,
    data: &[u8],
    us_per_read: u64,
    sink: &mut dyn FnMut(SealedChunk),
) {
    let start = builder.totals().last_us + us_per_read;
    for (i, read) in data.chunks(READ).enumerate() {
        let at_us = start + i as u64 * us_per_read;
        if builder.deadline_us().is_some_and(|d| d <= at_us) {
            builder.flush().unwrap().into_iter().for_each(&mut *sink);
        }
        for chunk in builder.push_data(at_us, Stream::Stdout, read).unwrap() {
            sink(chunk);
        }
    }
    builder.flush().unwrap().into_iter().for_each(sink);
}

/// [`record_more`] as the recorder does it: each chunk encoded in place and, once written,
/// its buffer given back to the builder (`ChunkBuilder::recycle`). Returns the bytes stored.
fn record_recycling(builder: &mut ChunkBuilder, data: &[u8], us_per_read: u64) -> usize {
    let mut stored = 0;
    let mut written = |builder: &mut ChunkBuilder, chunks: Vec<SealedChunk>| {
        for chunk in chunks {
            let bytes = chunk.into_encoded();
            stored += bytes.len();
            builder.recycle(bytes);
        }
    };
    let start = builder.totals().last_us + us_per_read;
    for (i, read) in data.chunks(READ).enumerate() {
        let at_us = start + i as u64 * us_per_read;
        if builder.deadline_us().is_some_and(|d| d <= at_us) {
            let closed = builder.flush().unwrap().into_iter().collect();
            written(builder, closed);
        }
        let closed = builder.push_data(at_us, Stream::Stdout, read).unwrap();
        written(builder, closed);
    }
    let closed = builder.flush().unwrap().into_iter().collect();
    written(builder, closed);
    stored
}

/// Opens every chunk and checks the stdout they hold is `data`, byte for byte.
fn assert_reads_back(chunks: &[Vec<u8>], data: &[u8]) {
    let dek = DataKey::from_bytes(DEK);
    let mut at = 0;
    let mut prev = None;
    for bytes in chunks {
        let chunk = SealedChunk::decode(bytes).unwrap();
        if let Some(prev) = prev {
            assert_eq!(chunk.header.prev, prev, "the chain links");
        }
        prev = Some(chunk.digest());
        for event in chunk.open(&dek).unwrap() {
            let EventKind::Data { bytes, .. } = event.kind else {
                panic!("only stdout was recorded")
            };
            assert_eq!(&data[at..at + bytes.len()], &bytes[..], "byte {at}");
            at += bytes.len();
        }
    }
    assert_eq!(at, data.len(), "every byte was recorded");
}

/// Everything the recorder adds to zstd, per payload: the recorder's thread CPU time against
/// zstd alone at the policy's level and tables on the same bytes in the same chunk-sized
/// pieces, interleaved in one run; and on incompressible bytes the absolute cost.
fn recording_cost(policy: FlushPolicy, reps: usize, text: &[u8]) {
    /// Reads 10 µs apart: 400 MB/s, bulk output; the byte cap closes chunks.
    const BULK_US: u64 = 10;
    let random = random_data(text.len());
    let old = FlushPolicy {
        max_bytes: OLD_MAX_BYTES,
        ..policy
    };
    let payloads: [(&str, &[u8]); 2] = [("text", text), ("random", &random)];
    println!();
    println!(
        "recording cost (issue 18 target 2): recorder (push_data, seal, sign, encode; buffers given back as the recorder does once written) vs zstd level {} alone on the same bytes, {} MB each, thread CPU",
        policy.zstd_level,
        text.len() / 1_000_000
    );
    // No loss: the recording reads back equal, on every payload, before anything is timed.
    for (name, data) in payloads {
        let mut chunks = Vec::new();
        record(policy, data, BULK_US, &mut |c| chunks.push(c.encode()));
        assert_reads_back(&chunks, data);
        println!(
            "  {name}: {} chunks read back equal to the input",
            chunks.len()
        );
    }
    let mut workloads: Vec<Workload> = Vec::new();
    for (_, data) in payloads {
        let mut z = policy.compressor().unwrap();
        workloads.push(Box::new(move || {
            Some(
                data.chunks(policy.max_bytes)
                    .map(|p| z.compress(p).unwrap().len())
                    .sum(),
            )
        }));
        // One builder per row across runs: a session's steady state.
        for policy in [policy, old] {
            let mut builder = new_builder(policy);
            workloads.push(Box::new(move || {
                Some(record_recycling(&mut builder, data, BULK_US))
            }));
        }
    }
    let results = measure_interleaved(reps, &mut workloads);
    let s_per_gb = |d: Duration, n: usize| d.as_secs_f64() * 1e9 / n as f64;
    println!(
        "  {:<8} {:>12} {:>14} {:>7} {:>14} {:>7} {:>11}  result",
        "payload", "zstd s/GB", "recorder s/GB", "ratio", "256 KiB s/GB", "ratio", "stored/raw"
    );
    let mut all_pass = true;
    for ((name, data), row) in payloads.iter().zip(results.chunks(3)) {
        let n = data.len();
        let (zstd, new, old) = (row[0].0, row[1].0, row[2].0);
        let ratio = new.as_secs_f64() / zstd.as_secs_f64();
        let (target, pass) = if *name == "random" {
            let cost = s_per_gb(new, n);
            // AES-GCM alone costs more than zstd's pass over random bytes (which finds no
            // match and skips ahead), so the target here is the absolute one.
            ("<= 0.50 s/GB, stored raw".to_string(), cost <= 0.5)
        } else {
            ("ratio <= 1.15".to_string(), ratio <= 1.15)
        };
        all_pass &= pass;
        println!(
            "  {:<8} {:>12.3} {:>14.3} {:>6.3}x {:>14.3} {:>6.3}x {:>11.4}  {} ({target})",
            name,
            s_per_gb(zstd, n),
            s_per_gb(new, n),
            ratio,
            s_per_gb(old, n),
            old.as_secs_f64() / zstd.as_secs_f64(),
            row[1].2.unwrap_or(0) as f64 / n as f64,
            if pass { "PASS" } else { "FAIL" }
        );
    }
    println!("recording cost: {}", if all_pass { "PASS" } else { "FAIL" });
}

// === Store cost: objects per GB and per session-hour (issue 18, target 3) ===

/// S3 Standard list price, USD per 1,000 PUT requests.
const PUT_PRICE_PER_1000: f64 = 0.005;

/// One hour of a quiet interactive session, as a list of (µs, bytes) reads: a command typed a
/// key at a time (each echoed), its output in a few reads over up to ~2 s, then 5-60 s of
/// reading the screen or thinking.
fn interactive_hour() -> Vec<(u64, usize)> {
    let mut rng = Rng(0x696e_7465_7261_6374);
    let mut reads = Vec::new();
    let mut t = 0u64;
    while t < 3_600_000_000 {
        for _ in 0..5 + rng.below(30) {
            t += 80_000 + rng.below(250_000);
            reads.push((t, 1));
        }
        for _ in 0..1 + rng.below(8) {
            t += rng.below(300_000);
            reads.push((t, 1 + rng.skewed(8192) as usize));
        }
        t += 5_000_000 + rng.below(55_000_000);
    }
    reads
}

/// Objects (chunks) one session-hour of `reads` writes under `policy`.
fn session_hour_objects(policy: FlushPolicy, reads: &[(u64, usize)]) -> u64 {
    let session = SessionId::from_bytes(*b"kubetape-bench-3");
    let signer = SigningKey::from_seed("bench", SEED);
    let mut builder =
        ChunkBuilder::new(session, META, DataKey::from_bytes(DEK), signer, policy).unwrap();
    let bytes = [b'x'; 8192];
    for &(at_us, n) in reads {
        if builder.deadline_us().is_some_and(|d| d <= at_us) {
            builder.flush().unwrap();
        }
        builder
            .push_data(at_us, Stream::Stdout, &bytes[..n])
            .unwrap();
    }
    builder.flush().unwrap();
    builder.totals().chunks
}

fn store_cost(policy: FlushPolicy, text: &[u8]) {
    let old = FlushPolicy {
        max_bytes: OLD_MAX_BYTES,
        ..policy
    };
    println!();
    println!(
        "store cost (issue 18 target 3): objects (one create-only PUT each) per GB of output, at {} per 1,000 PUTs",
        PUT_PRICE_PER_1000
    );
    println!(
        "  {:<34} {:>12} {:>10} {:>14} {:>10}  result",
        "output", "objects/GB", "$ /GB", "256 KiB obj/GB", "$ /GB"
    );
    let per_gb = |policy: FlushPolicy, us_per_read: u64| {
        let totals = record(policy, text, us_per_read, &mut |_| {});
        totals.chunks as f64 * 1e9 / text.len() as f64
    };
    let mut bulk_pass = true;
    // 4 KiB reads every 10 µs (400 MB/s: `cat` of a big file) down to every 1 ms (4 MB/s).
    for (label, us) in [
        ("bulk, 400 MB/s", 10),
        ("bulk, 40 MB/s", 100),
        ("steady, 8 MB/s", 500),
        ("steady, 4 MB/s", 1000),
    ] {
        let (new, was) = (per_gb(policy, us), per_gb(old, us));
        let pass = new <= 300.0;
        if us <= 100 {
            bulk_pass &= pass;
        }
        println!(
            "  {:<34} {:>12.0} {:>10.4} {:>14.0} {:>10.4}  {}",
            label,
            new,
            new * PUT_PRICE_PER_1000 / 1000.0,
            was,
            was * PUT_PRICE_PER_1000 / 1000.0,
            if pass {
                "PASS (<= 300)"
            } else {
                "FAIL (<= 300)"
            }
        );
    }
    let hour = interactive_hour();
    let hour_bytes: usize = hour.iter().map(|r| r.1).sum();
    let (new, was) = (
        session_hour_objects(policy, &hour),
        session_hour_objects(old, &hour),
    );
    println!(
        "  {:<34} {:>12} {:>10.4} {:>14} {:>10.4}  (the 1 s loss bound sets this)",
        format!("interactive, per session-hour ({} KB)", hour_bytes / 1000),
        format!("{new}/h"),
        new as f64 * PUT_PRICE_PER_1000 / 1000.0,
        format!("{was}/h"),
        was as f64 * PUT_PRICE_PER_1000 / 1000.0,
    );
    println!(
        "store cost: bulk output {}",
        if bulk_pass {
            "PASS (<= 300 objects per GB)"
        } else {
            "FAIL (<= 300 objects per GB)"
        }
    );
}
