//! The access log: one line per request, combined or JSON, written without ever blocking a
//! shard. Each shard formats lines into its own buffer; a full buffer (or every
//! `FLUSH_INTERVAL`) is handed to one writer thread over a bounded channel, and the writer
//! hands emptied buffers back for reuse. When the writer falls behind and the channel is full,
//! the shard drops that buffer's lines and counts them (logged as a warning at most once a
//! second per shard) rather than wait. Separate from the tracing output on stderr.
//!
//! ```text
//! shard: format line → shard buffer ─(full or 200 ms)→ try_send ─► writer thread ─► file/stdout
//!                          ▲                                             │
//!                          └──────────── emptied buffers (bounded) ◄─────┘
//! ```

pub mod format;

use std::cell::{Cell, RefCell};
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::warn;

pub use format::Entry;

/// A shard hands its buffer over once it holds this much.
pub const FLUSH_BYTES: usize = 32 * 1024;
/// A shard hands over a non-empty buffer at least this often.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(200);
/// Buffers queued for the writer, all shards together (at most ~64 × 32 KiB in flight).
const QUEUE_BUFFERS_MAX: usize = 64;

/// Where access-log lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Stdout,
    /// Opened for appending at start (created if missing).
    File(PathBuf),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// NCSA combined (client - consumer [time] "request" status bytes "referer" "agent"),
    /// then the chosen extra fields as `name=value`.
    Combined,
    /// One JSON object per line with the chosen fields, in order.
    Json,
}

/// A field of a line (`[log] access_fields`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Time,
    Client,
    Method,
    Path,
    Status,
    Bytes,
    Upstream,
    UpstreamMs,
    TotalMs,
    Cache,
    Consumer,
}

impl Field {
    pub const ALL: [Field; 11] = [
        Field::Time,
        Field::Client,
        Field::Method,
        Field::Path,
        Field::Status,
        Field::Bytes,
        Field::Upstream,
        Field::UpstreamMs,
        Field::TotalMs,
        Field::Cache,
        Field::Consumer,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Field::Time => "time",
            Field::Client => "client",
            Field::Method => "method",
            Field::Path => "path",
            Field::Status => "status",
            Field::Bytes => "bytes",
            Field::Upstream => "upstream",
            Field::UpstreamMs => "upstream_ms",
            Field::TotalMs => "total_ms",
            Field::Cache => "cache",
            Field::Consumer => "consumer",
        }
    }

    pub fn parse(s: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == s)
    }

    /// Part of the fixed combined line (the others are appended as `name=value`).
    fn in_combined(self) -> bool {
        matches!(
            self,
            Field::Time
                | Field::Client
                | Field::Method
                | Field::Path
                | Field::Status
                | Field::Bytes
                | Field::Consumer
        )
    }
}

/// The channels a shard needs to reach the writer thread.
#[derive(Debug, Clone)]
pub struct Channel {
    full: flume::Sender<Vec<u8>>,
    empty: flume::Receiver<Vec<u8>>,
}

/// Open the target and start the writer thread. Returns the shards' channel and the thread,
/// which ends once every `Channel` and `ShardLog` is dropped (after writing what it was given).
pub fn start(target: &Target) -> io::Result<(Channel, JoinHandle<()>)> {
    let mut out: Box<dyn Write + Send> = match target {
        Target::Stdout => Box::new(io::stdout()),
        Target::File(p) => Box::new(OpenOptions::new().create(true).append(true).open(p)?),
    };
    let (full_tx, full_rx) = flume::bounded::<Vec<u8>>(QUEUE_BUFFERS_MAX);
    let (empty_tx, empty_rx) = flume::bounded::<Vec<u8>>(QUEUE_BUFFERS_MAX);
    let thread = std::thread::Builder::new()
        .name("coregate-access-log".into())
        .spawn(move || {
            while let Ok(mut buf) = full_rx.recv() {
                if let Err(e) = out.write_all(&buf).and_then(|()| out.flush()) {
                    warn!(error = %e, "access log write failed; lines lost");
                }
                buf.clear();
                let _ = empty_tx.try_send(buf);
            }
        })?;
    Ok((
        Channel {
            full: full_tx,
            empty: empty_rx,
        },
        thread,
    ))
}

/// One shard's side of the access log.
#[derive(Debug)]
pub struct ShardLog {
    channel: Channel,
    format: Format,
    fields: Box<[Field]>,
    buf: RefCell<Vec<u8>>,
    /// Lines in `buf`.
    lines: Cell<u64>,
    /// Lines dropped because the writer was behind (since start).
    dropped: Cell<u64>,
    /// `dropped` when the last warning was logged, and when.
    warned: Cell<(u64, Option<Instant>)>,
}

impl ShardLog {
    pub fn new(channel: Channel, format: Format, fields: &[Field]) -> ShardLog {
        ShardLog {
            channel,
            format,
            fields: fields.into(),
            buf: RefCell::new(Vec::with_capacity(FLUSH_BYTES * 2)),
            lines: Cell::new(0),
            dropped: Cell::new(0),
            warned: Cell::new((0, None)),
        }
    }

    /// Format one line into the shard's buffer; hand the buffer over when it is full enough.
    pub fn write(&self, e: &Entry<'_>) {
        let full = {
            let mut buf = self.buf.borrow_mut();
            format::line(&mut buf, self.format, &self.fields, e);
            buf.len() >= FLUSH_BYTES
        };
        self.lines.set(self.lines.get() + 1);
        if full {
            self.flush();
        }
    }

    /// Hand the buffer to the writer now, or drop its lines if the writer is behind.
    pub fn flush(&self) {
        if self.buf.borrow().is_empty() {
            return;
        }
        let fresh = self
            .channel
            .empty
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(FLUSH_BYTES * 2));
        let full = self.buf.replace(fresh);
        let lines = self.lines.replace(0);
        if self.channel.full.try_send(full).is_err() {
            self.dropped.set(self.dropped.get() + lines);
            self.warn_dropped();
        }
    }

    /// Lines dropped so far because the writer fell behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.get()
    }

    fn warn_dropped(&self) {
        let (seen, at) = self.warned.get();
        let now = Instant::now();
        if at.is_some_and(|t| now.duration_since(t) < Duration::from_secs(1)) {
            return;
        }
        warn!(
            dropped = self.dropped.get() - seen,
            total = self.dropped.get(),
            "access log writer is behind; lines dropped"
        );
        self.warned.set((self.dropped.get(), Some(now)));
    }
}
