//! The access-log side of a connection: the parts of each request head a log line needs,
//! copied out before the head leaves the read buffer (into one reused per-connection buffer,
//! only when the access log is on), and the line written when the answer is done.

use std::ops::Range;
use std::time::{Instant, SystemTime};

use crate::access_log::Entry;
use crate::gateway::RequestCtx;
use crate::http::request::RequestHead;
use crate::http::{HeaderSpan, Version};
use crate::proxy::STATUS_CLIENT_GONE;
use crate::shard::Shard;

/// What the log needs of one request head, copied out of the read buffer.
#[derive(Debug, Default)]
pub struct LoggedRequest {
    buf: Vec<u8>,
    method: Range<usize>,
    target: Range<usize>,
    version: &'static [u8],
    referer: Option<Range<usize>>,
    user_agent: Option<Range<usize>>,
}

impl LoggedRequest {
    /// Copy the request line, Referer and User-Agent of `head` (parsed from `buf`).
    pub fn capture(&mut self, buf: &[u8], head: &RequestHead, headers: &[HeaderSpan]) {
        self.buf.clear();
        let mut put = |bytes: &[u8]| {
            let start = self.buf.len();
            self.buf.extend_from_slice(bytes);
            start..self.buf.len()
        };
        self.method = put(head.method_span.get(buf));
        // The target as received (absolute-form included), bounded by uri_bytes_max.
        self.target = put(head.target.get(buf));
        let (mut referer, mut agent) = (None, None);
        for h in headers {
            let name = h.name.get(buf);
            if referer.is_none() && name.eq_ignore_ascii_case(b"referer") {
                referer = Some(put(h.value.get(buf)));
            } else if agent.is_none() && name.eq_ignore_ascii_case(b"user-agent") {
                agent = Some(put(h.value.get(buf)));
            }
        }
        self.referer = referer;
        self.user_agent = agent;
        self.version = match head.version {
            Version::Http10 => b"HTTP/1.0",
            Version::Http11 => b"HTTP/1.1",
        };
    }

    /// No head was parsed (the request was refused while reading it).
    pub fn unknown(&mut self) {
        self.buf.clear();
        self.method = 0..0;
        self.target = 0..0;
        self.version = b"";
        self.referer = None;
        self.user_agent = None;
    }
}

/// Write the access-log line of the request `ctx` describes, if the log is on.
pub fn log_request(
    shard: &Shard,
    client: &[u8],
    req: &LoggedRequest,
    ctx: &RequestCtx,
    started: Instant,
) {
    let Some(log) = &shard.access_log else {
        return;
    };
    let o = &ctx.outcome;
    let field = |r: &Option<Range<usize>>| r.clone().map(|r| &req.buf[r]);
    log.write(&Entry {
        time: SystemTime::now(),
        client,
        method: &req.buf[req.method.clone()],
        target: &req.buf[req.target.clone()],
        version: req.version,
        status: if o.status == 0 {
            STATUS_CLIENT_GONE
        } else {
            o.status
        },
        bytes: o.body_bytes,
        upstream: o.upstream_addr,
        upstream_time: o.upstream_time,
        total_time: started.elapsed(),
        cache: ctx.cache_status.as_str(),
        consumer: ctx.consumer.as_deref(),
        referer: field(&req.referer),
        user_agent: field(&req.user_agent),
    });
}
