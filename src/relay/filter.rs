//! The optional stage of a response body relay: a streaming encoder (compression) and a
//! bounded copy of the bytes sent (the response cache's tee). Plain routes never get here.

use super::{emit_to, RelayError, Sink};
use crate::compress::Encoder;
use crate::http::chunked;

/// What happens to body data on its way to the sink: compressed by `encoder`, and the bytes
/// sent (compressed or not) copied into `tee`.
#[derive(Debug, Default)]
pub struct Filter {
    pub encoder: Option<Encoder>,
    pub tee: Option<Tee>,
    /// Body bytes written towards the sink after encoding (before chunk framing).
    pub sent: u64,
}

/// A bounded copy of a body: past `max` bytes it is dropped and stays abandoned.
#[derive(Debug, Default)]
pub struct Tee {
    pub buf: Vec<u8>,
    pub max: usize,
    pub abandoned: bool,
}

impl Tee {
    pub fn new(max: usize, expected: Option<u64>) -> Tee {
        let abandoned = expected.is_some_and(|n| n > max as u64);
        let capacity = expected.map_or(0, |n| n.min(max as u64) as usize);
        Tee {
            buf: if abandoned {
                Vec::new()
            } else {
                Vec::with_capacity(capacity)
            },
            max,
            abandoned,
        }
    }

    fn push(&mut self, data: &[u8]) {
        if self.abandoned {
            return;
        }
        if self.buf.len() + data.len() > self.max {
            self.abandoned = true;
            self.buf = Vec::new();
            return;
        }
        self.buf.extend_from_slice(data);
    }
}

impl Filter {
    /// Encoded data `data` leaves for the sink.
    pub(super) fn sent(&mut self, data: &[u8]) {
        if let Some(t) = &mut self.tee {
            t.push(data);
        }
        self.sent += data.len() as u64;
    }

    /// Move the encoder's output to `out`.
    pub(super) fn drain(&mut self, out: &mut Vec<u8>, sink: Sink) {
        let Some(e) = &mut self.encoder else { return };
        let produced = e.output();
        if produced.is_empty() {
            return;
        }
        match sink {
            Sink::Raw => out.extend_from_slice(produced),
            Sink::Chunked => chunked::write_chunk(out, produced),
        }
        if let Some(t) = &mut self.tee {
            t.push(produced);
        }
        self.sent += produced.len() as u64;
        produced.clear();
    }
}

/// `emit_to` through the filter, if any. `at`: (data bytes so far, limit).
pub(super) fn emit(
    out: &mut Vec<u8>,
    data: &[u8],
    sink: Sink,
    at: (u64, u64),
    filter: Option<&mut Filter>,
) -> Result<(), RelayError> {
    let Some(f) = filter else {
        return emit_to(out, data, sink, at.0, at.1);
    };
    if at.0 + data.len() as u64 > at.1 {
        return Err(RelayError::TooLarge);
    }
    match &mut f.encoder {
        None => {
            f.sent(data);
            emit_to(out, data, sink, 0, u64::MAX)
        }
        Some(e) => {
            e.write(data);
            f.drain(out, sink);
            Ok(())
        }
    }
}
