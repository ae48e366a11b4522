//! A recording rendered into one of the export formats (asciicast v2/v3, text): what
//! `kubetape export` writes, and the readable renderings of an evidence bundle
//! (`export --bundle`).

use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::Context as _;
use storage_schema::store::SessionReader;
use storage_schema::{EventKind, Stream};

use player::export::asciicast::{AsciicastWriter, Version};
use player::export::text::TextRenderer;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    #[value(name = "asciicast-v2")]
    AsciicastV2,
    #[value(name = "asciicast-v3")]
    AsciicastV3,
    Text,
}

/// Streams the session's events into one of the writers.
enum Sink<W: Write> {
    Cast(AsciicastWriter<W>),
    Text(TextRenderer<W>),
}

impl<W: Write> Sink<W> {
    fn new(format: Format, out: W, meta: &storage_schema::SessionMeta) -> io::Result<Self> {
        Ok(match format {
            Format::AsciicastV2 => Sink::Cast(AsciicastWriter::new(out, Version::V2, meta)?),
            Format::AsciicastV3 => Sink::Cast(AsciicastWriter::new(out, Version::V3, meta)?),
            Format::Text => Sink::Text(TextRenderer::new(out)),
        })
    }

    fn event(&mut self, event: &storage_schema::Event) -> io::Result<()> {
        if let EventKind::Gap { json } = &event.kind {
            let text = format!("kubetape: {}", super::cat::gap_line(json));
            return match self {
                Sink::Cast(w) => w.event(&storage_schema::Event {
                    at_us: event.at_us,
                    kind: EventKind::Marker { text },
                }),
                Sink::Text(r) => r.write(format!("\r\n[{text}]\r\n").as_bytes()),
            };
        }
        match self {
            Sink::Cast(w) => w.event(event),
            Sink::Text(r) => match &event.kind {
                EventKind::Data {
                    stream: Stream::Stdout | Stream::Stderr,
                    bytes,
                } => r.write(bytes),
                _ => Ok(()),
            },
        }
    }

    fn finish(self) -> io::Result<W> {
        match self {
            Sink::Cast(w) => w.finish(),
            Sink::Text(r) => r.finish(),
        }
    }
}

/// Renders the session `reader` opens in `format` into `out` (gaps become markers and are said
/// on stderr); `kubetape export --bundle` uses it for its readable renderings.
pub(crate) async fn export<W: Write>(
    reader: &SessionReader,
    format: Format,
    out: W,
) -> anyhow::Result<ExitCode> {
    let mut sink = Sink::new(format, out, reader.meta()).context("cannot write the export")?;
    // The reader's callback cannot stop it, so the first write error is kept.
    let mut write_error: Option<io::Error> = None;
    let mut gaps = 0;
    let read = reader
        .for_each_event(|event| {
            if let EventKind::Gap { json } = &event.kind {
                gaps += 1;
                eprintln!(
                    "kubetape: session {}: {}",
                    reader.meta().session,
                    super::cat::gap_line(json)
                );
            }
            if write_error.is_none()
                && let Err(e) = sink.event(event)
            {
                write_error = Some(e);
            }
        })
        .await;
    let written = match write_error {
        Some(e) => Err(e),
        None => sink.finish().and_then(|mut w| w.flush()),
    };
    match written {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(ExitCode::SUCCESS),
        Err(e) => return Err(anyhow::Error::new(e).context("cannot write the export")),
        Ok(()) => {}
    }
    if let Err(e) = read {
        // Files are removed by the caller; on stdout, the intact part has been written.
        eprintln!(
            "kubetape: session {}: {e}; the export is incomplete",
            reader.meta().session
        );
        return Ok(ExitCode::FAILURE);
    }
    if gaps > 0 {
        return Ok(ExitCode::from(super::verify::GAPS));
    }
    Ok(ExitCode::SUCCESS)
}
