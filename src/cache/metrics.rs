//! The shard-wide series of the response cache and of compression, read at scrape time
//! (`shard::Control::Metrics`): what the store holds, what it evicted and stored, how many
//! misses waited on another's fill, and compressed answers by coding. Per-route hits, misses,
//! stale answers and bypasses are route counters (`metrics::RouteCounters`).

use std::sync::Arc;

use super::Cache;
use crate::metrics::{labels, Families};

impl Cache {
    /// Add this shard's cache and compression series (`me`: the `shard` label set).
    pub fn collect(&self, shard: &str, me: &Arc<str>, out: &mut Families) {
        let (entries, bytes, evictions) = self.usage();
        let s = &self.stats;
        out.gauge(
            "coregate_cache_entries",
            "Responses held by the shard's cache (variants counted apart).",
            me,
            entries as f64,
        );
        out.gauge(
            "coregate_cache_bytes",
            "Bytes held by the shard's cache (keys, heads, bodies, bookkeeping).",
            me,
            bytes as f64,
        );
        out.counter(
            "coregate_cache_evictions_total",
            "Entries evicted to make room (least recently used first).",
            me,
            evictions,
        );
        out.counter(
            "coregate_cache_stores_total",
            "Responses stored in the shard's cache.",
            me,
            s.stored.get(),
        );
        out.counter(
            "coregate_cache_coalesced_total",
            "Misses that waited for another request fetching the same key.",
            me,
            s.coalesced.get(),
        );
        for (coding, n) in [("gzip", &s.compressed_gzip), ("br", &s.compressed_br)] {
            out.counter(
                "coregate_compressed_responses_total",
                "Responses compressed by coregate, by coding.",
                &labels(&[("coding", coding), ("shard", shard)]),
                n.get(),
            );
        }
    }
}
