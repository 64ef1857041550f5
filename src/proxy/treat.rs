//! The response side of caching and compression, decided when the upstream's response head
//! arrives: whether the body is compressed (and with what), whether a copy is stored (the
//! entry's head is rendered now, its body teed while it streams), and whether a stale entry
//! answers instead of an upstream error. Storing happens only once the body is complete.

use std::rc::Rc;
use std::time::{Instant, SystemTime};

use tracing::debug;

use crate::cache::rules::{self, Directives, Lifetime, VaryNames};
use crate::cache::{Entry, Job, Stats, Treatment};
use crate::compress::{self, Coding, Encoder};
use crate::error::ProxyError;
use crate::gateway::ctx::CacheStatus;
use crate::http::request::{Method, RequestHead};
use crate::http::response::ResponseHead;
use crate::http::write::{self, FieldEdits};
use crate::http::{BodyKind, HeaderSpan};
use crate::relay::{Filter, Tee};

/// What happens to one response.
#[derive(Debug, Default)]
pub(super) struct Plan {
    /// The body's coding towards the client (`Identity`: as received).
    pub coding: Coding,
    /// Add `Vary: Accept-Encoding` (the response is compressible for some clients).
    pub vary: bool,
    pub x_cache: &'static [u8],
    /// The entry being stored, its body still to come.
    pub store: Option<Pending>,
}

#[derive(Debug)]
pub(super) struct Pending {
    head: Vec<u8>,
    vary: Vec<crate::cache::store::Varied>,
    coded_for: Option<Coding>,
    status: u16,
    life: Lifetime,
    received: Instant,
    /// Longest body kept.
    body_max: usize,
    /// Body length known in advance (identity, Content-Length).
    expected: Option<u64>,
}

/// A stale entry to answer with instead of this upstream status (502, 503, 504).
pub(super) fn stale_for_status(t: &Treatment<'_>, status: u16) -> Option<Rc<Entry>> {
    if !matches!(status, 502..=504) {
        return None;
    }
    t.cache.as_ref()?.stale.clone()
}

/// A stale entry to answer with instead of coregate's own error (connect failure, no server,
/// timeout: 502, 503, 504).
pub(super) fn stale_for_error(t: &Treatment<'_>, e: &ProxyError) -> Option<Rc<Entry>> {
    stale_for_status(t, e.status()?)
}

/// Decide compression and storage from the response head (`buf`/`headers` index it).
pub(super) fn plan(
    t: &Treatment<'_>,
    resp: &ResponseHead,
    buf: &[u8],
    headers: &[HeaderSpan],
    head: &RequestHead,
    edits: &FieldEdits<'_>,
) -> Plan {
    let cc = Directives::of(buf, headers, b"cache-control");
    let mut plan = Plan {
        x_cache: t.x_cache,
        ..Plan::default()
    };
    if let Some(c) = t.compress {
        if head.method != Method::Head
            && compress::compressible(resp, buf, headers, &cc, c.settings)
        {
            plan.vary = !vary_has_accept_encoding(buf, headers);
            plan.coding = c.coding;
        }
    }
    let may_compress = t.compress.is_some() && (plan.vary || plan.coding != Coding::Identity);
    if let Some(job) = t.cache.as_ref().filter(|j| j.store) {
        plan.store = pending(job, resp, buf, headers, &cc, edits, &plan, may_compress);
    }
    plan
}

fn vary_has_accept_encoding(buf: &[u8], headers: &[HeaderSpan]) -> bool {
    headers.iter().any(|h| {
        h.name.get(buf).eq_ignore_ascii_case(b"vary")
            && rules::contains_token(h.value.get(buf), b"accept-encoding")
    })
}

#[allow(clippy::too_many_arguments)]
fn pending(
    job: &Job<'_>,
    resp: &ResponseHead,
    buf: &[u8],
    headers: &[HeaderSpan],
    cc: &Directives,
    edits: &FieldEdits<'_>,
    plan: &Plan,
    may_compress: bool,
) -> Option<Pending> {
    let authorized = rules::field(job.req, job.req_headers, b"authorization").is_some();
    let names = rules::vary_names(buf, headers);
    let mut refused = rules::refuse_reason(resp.status, cc, authorized, &names);
    if refused.is_none()
        && !job.policy.strip_set_cookie
        && rules::field(buf, headers, b"set-cookie").is_some()
    {
        refused = Some("Set-Cookie");
    }
    let now = SystemTime::now();
    let life = rules::lifetime(buf, headers, cc, job.policy.ttl, job.policy.stale, now);
    let (None, Some(life), VaryNames::Names(names)) = (refused, life, names) else {
        debug!(
            reason = refused.unwrap_or("no freshness"),
            "response not stored"
        );
        return None;
    };
    let mut head = Vec::with_capacity(512);
    write::status_line(&mut head, buf, resp);
    let store_edits = FieldEdits {
        remove: &job.policy.store_remove,
        extra: b"",
        weaken_etag: plan.coding != Coding::Identity || edits.weaken_etag,
    };
    write::response_fields(&mut head, buf, resp, headers, &store_edits);
    head.extend_from_slice(plan.coding.field());
    if plan.vary {
        head.extend_from_slice(compress::VARY_FIELD);
    }
    let vary = names
        .into_iter()
        .map(|name| {
            let mut v = Vec::new();
            rules::vary_value(job.req, job.req_headers, &name, &mut v);
            (name, v.into_boxed_slice())
        })
        .collect();
    let expected = match (plan.coding, resp.body) {
        (Coding::Identity, BodyKind::Length(n)) => Some(n),
        (Coding::Identity, BodyKind::None) => Some(0),
        _ => None,
    };
    let s = job.settings;
    let body_max = s.entry_bytes_max.saturating_sub(head.len() + job.key.len());
    if expected.is_some_and(|n| n > body_max as u64) {
        debug!("response larger than entry_bytes_max; not stored");
        return None;
    }
    Some(Pending {
        head,
        vary,
        coded_for: may_compress.then_some(plan.coding),
        status: resp.status,
        life,
        received: Instant::now(),
        body_max,
        expected,
    })
}

/// The relay filter a plan needs; `None` when the body passes untouched.
pub(super) fn filter(t: &Treatment<'_>, plan: &Plan) -> Option<Filter> {
    let encoder = t
        .compress
        .and_then(|c| Encoder::new(plan.coding, c.settings));
    let tee = plan
        .store
        .as_ref()
        .map(|p| Tee::new(p.body_max, p.expected));
    if encoder.is_none() && tee.is_none() {
        return None;
    }
    match plan.coding {
        Coding::Gzip => Stats::bump(&t.stats.compressed_gzip),
        Coding::Br => Stats::bump(&t.stats.compressed_br),
        Coding::Identity => {}
    }
    Some(Filter {
        encoder,
        tee,
        sent: 0,
    })
}

/// The body went out in full: store the entry if its copy is whole.
pub(super) fn finish(t: &Treatment<'_>, pending: Pending, filter: Option<Filter>) {
    let (Some(job), Some(tee)) = (&t.cache, filter.and_then(|f| f.tee)) else {
        return;
    };
    if tee.abandoned {
        debug!("response over entry_bytes_max; not stored");
        return;
    }
    let fresh_until = pending.received + pending.life.fresh;
    let entry = Entry {
        key: job.key.into(),
        vary: pending.vary.into_boxed_slice(),
        coded_for: pending.coded_for,
        status: pending.status,
        head: pending.head.into_boxed_slice(),
        body: Rc::new(tee.buf.into_boxed_slice()),
        stored: pending.received,
        age_s: pending.life.age_s,
        fresh_until,
        stale_until: fresh_until + pending.life.stale,
    };
    if !job.cache.insert(job.hash, entry) {
        debug!("response larger than the shard's cache; not stored");
    }
}

/// Mark a stale answer in the treatment (for the log).
pub(super) fn mark_stale(t: &Treatment<'_>) {
    t.status.set(CacheStatus::Stale);
    Stats::bump(&t.stats.stale);
}
