//! The cache phase of a request (after the gateway phases, before the action) and the one
//! writer of stored answers: fresh hits, and stale entries answering for a failing origin.
//!
//! A hit never reads the upstream. The request body is handled as for every local answer: a
//! body already buffered in full is dropped, otherwise the connection closes after the answer
//! (a body left unread would be parsed as the next request: Pingora CVE-2025-4366).

use std::time::{Duration, Instant};

use super::Conn;
use crate::cache::fill::Role;
use crate::cache::{self, rules, Compress, Entry, Found, Job, Scratch, Stats, Treatment};
use crate::compress;
use crate::config::Config;
use crate::gateway::ctx::CacheStatus;
use crate::http::request::{Method, RequestHead};
use crate::router::Route;
use crate::shard::Shard;

/// Bodies up to this size go out in the same write as the head (one copy); larger ones are
/// written straight from the entry.
const INLINE_BODY_BYTES: usize = 16 * 1024;

/// What the cache phase decided.
pub(super) enum Phase<'a> {
    /// A fresh entry answers.
    Hit(std::rc::Rc<Entry>),
    /// Go to the origin with this treatment of the response.
    Forward(Treatment<'a>),
}

impl Conn {
    /// Look the request up on a route that caches or compresses. Waits (bounded) when another
    /// request on this shard is already fetching the same key.
    pub(super) async fn cache_phase<'a>(
        &self,
        shard: &'a Shard,
        cfg: &'a Config,
        head: &RequestHead,
        route: &'a Route,
        scratch: &'a mut Scratch,
    ) -> Phase<'a> {
        let buf = self.inbuf.pending();
        let compress = route.policy.compress.then(|| Compress {
            coding: compress::negotiate(buf, &self.headers, &cfg.compression.encodings),
            settings: &cfg.compression,
        });
        let forward = |cache, x_cache, status| {
            Phase::Forward(Treatment {
                cache,
                compress,
                x_cache,
                status: std::cell::Cell::new(status),
                stats: &shard.cache.stats,
            })
        };
        let Some(policy) = &route.policy.cache else {
            return forward(None, b"", CacheStatus::None);
        };
        let c = &shard.cache;
        let req = rules::request_rules(buf, &self.headers);
        let method_ok = matches!(head.method, Method::Get | Method::Head) && !head.upgrade;
        if !method_ok || (!req.lookup && !req.store) {
            Stats::bump(&c.stats.bypass);
            return forward(None, cache::X_CACHE_BYPASS, CacheStatus::Bypass);
        }
        let host = head.authority.map_or(&b""[..], |a| a.get(buf));
        cache::write_key(&mut scratch.key, &route.name, host, head.target.get(buf));
        let hash = c.hash(&scratch.key);
        let want = compress.map(|c| c.coding);
        let mut stale = None;
        let mut lead = None;
        for round in 0..2 {
            if req.lookup {
                let fits = |e: &Entry| {
                    e.coded_for.is_none_or(|c| Some(c) == want)
                        && e.vary.iter().all(|(name, value)| {
                            scratch.vary.clear();
                            rules::vary_value(buf, &self.headers, name, &mut scratch.vary);
                            scratch.vary == **value
                        })
                };
                match c.lookup(hash, &scratch.key, Instant::now(), fits) {
                    Found::Fresh(e) => return Phase::Hit(e),
                    Found::Stale(e) => stale = Some(e),
                    Found::Nothing => {}
                }
            }
            // HEAD never stores (no body comes back) and a refresh does not wait.
            if head.method == Method::Head || !req.lookup {
                break;
            }
            match c.fills.join(hash) {
                Role::Lead(l) => {
                    lead = Some(l);
                    break;
                }
                Role::Wait(gate) if round == 0 => {
                    Stats::bump(&c.stats.coalesced);
                    let wait = cfg.cache.coalesce_timeout;
                    // Boxed: a monoio timeout holds a 128-byte-aligned timer entry, which would
                    // pad every request's future; this wait is rare.
                    let _ = Box::pin(monoio::time::timeout(wait, gate.wait())).await;
                }
                Role::Wait(_) | Role::Alone => break,
            }
        }
        Stats::bump(&c.stats.misses);
        let store = head.method == Method::Get && req.store;
        if store {
            scratch.req.clear();
            scratch.req.extend_from_slice(&buf[..head.head_len]);
            scratch.req_headers.clear();
            scratch.req_headers.extend_from_slice(&self.headers);
        }
        let job = Job {
            cache: c,
            policy,
            settings: &cfg.cache,
            hash,
            key: &scratch.key,
            req: &scratch.req,
            req_headers: &scratch.req_headers,
            store,
            stale,
            lead,
        };
        forward(Some(job), cache::X_CACHE_MISS, CacheStatus::Miss)
    }

    /// Answer a fresh hit: the request body is dropped if buffered in full, else the
    /// connection closes after the answer.
    pub(super) async fn answer_hit(
        &mut self,
        head: &RequestHead,
        entry: &Entry,
        ctx: &mut crate::gateway::RequestCtx,
        cfg: &Config,
        shard: &Shard,
    ) -> bool {
        Stats::bump(&shard.cache.stats.hits);
        ctx.cache_status = CacheStatus::Hit;
        let keep = self.take_request(head, shard);
        let (kept, bytes) = self
            .serve_entry(entry, CacheStatus::Hit, head, &ctx.resp_fields, keep, cfg)
            .await;
        ctx.outcome.status = entry.status;
        ctx.outcome.body_bytes = bytes;
        kept
    }

    /// Answer a request from `entry` (`Hit` or `Stale`), with the route's response fields
    /// `extra`. The request head must be consumed and its body dealt with by the caller;
    /// `keep`: the connection may go on. Returns (went on, body bytes sent).
    pub(crate) async fn serve_entry(
        &mut self,
        entry: &Entry,
        status: CacheStatus,
        head: &RequestHead,
        extra: &[u8],
        keep: bool,
        cfg: &Config,
    ) -> (bool, u64) {
        let head_only = head.method == Method::Head;
        let out = &mut self.out;
        out.clear();
        out.extend_from_slice(&entry.head);
        let age = entry.age_s + entry.stored.elapsed().as_secs();
        out.extend_from_slice(b"Age: ");
        out.extend_from_slice(itoa::Buffer::new().format(age).as_bytes());
        out.extend_from_slice(match status {
            CacheStatus::Stale => b"\r\nX-Cache: STALE\r\n",
            _ => b"\r\nX-Cache: HIT\r\n",
        });
        out.extend_from_slice(extra);
        if entry.status != 204 && entry.status != 304 {
            out.extend_from_slice(b"Content-Length: ");
            out.extend_from_slice(itoa::Buffer::new().format(entry.body.len()).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        if !keep {
            out.extend_from_slice(b"Connection: close\r\n");
        } else if head.version == crate::http::Version::Http10 {
            out.extend_from_slice(b"Connection: keep-alive\r\n");
        }
        out.extend_from_slice(b"\r\n");
        let body_bytes = if head_only { 0 } else { entry.body.len() };
        let inline = body_bytes <= INLINE_BODY_BYTES;
        if inline {
            out.extend_from_slice(&entry.body[..body_bytes]);
        }
        let mut sent = self.send_out(cfg, !keep).await;
        if sent && !inline {
            let send = cfg.timeouts.client_send;
            sent = write_body(&mut self.stream, &mut self.timer, entry, send).await;
        }
        (sent && keep, body_bytes as u64)
    }
}

/// Write a stored body without copying it (the entry may be evicted meanwhile: the `Rc`
/// keeps the bytes alive until the write ends).
async fn write_body(
    stream: &mut crate::stream::Stream,
    timer: &mut crate::timer::Timer,
    entry: &Entry,
    t: Duration,
) -> bool {
    use monoio::io::AsyncWriteRentExt;
    let body = entry.body.clone();
    matches!(timer.limit(t, stream.write_all(body)).await, Ok((Ok(_), _)))
}
