//! `[upstream.health]` (active checks) and `[upstream.outlier]` (passive checks) validated and
//! built, every error naming its key path (`upstream[0].health.healthy_threshold`).

use std::ops::RangeInclusive;
use std::time::Duration;

use super::defaults as d;
use super::upstream_file::{HealthFile, OutlierFile};
use super::ConfigError;

#[derive(Debug, Clone)]
pub struct HealthCheck {
    pub path: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub expect_status: RangeInclusive<u16>,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
}

#[derive(Debug, Clone, Copy)]
pub struct Outlier {
    pub consecutive_failures: u32,
    pub base_ejection: Duration,
    pub max_ejection: Duration,
}

pub(super) fn health(h: &HealthFile, i: usize, errs: &mut Vec<ConfigError>) -> Option<HealthCheck> {
    let key = |k: &str| format!("upstream[{i}].health.{k}");
    let before = errs.len();
    if !h.path.starts_with('/') || h.path.bytes().any(|b| b <= b' ' || b >= 0x7f) {
        errs.push(ConfigError::new(
            key("path"),
            format!(
                "\"{}\" must start with / and hold no spaces or controls",
                h.path
            ),
        ));
    }
    let ms = |k: &str, v: u64, min: u64, errs: &mut Vec<ConfigError>| {
        if v < min || v > d::TIMEOUT_MS_MAX {
            errs.push(ConfigError::new(
                key(k),
                format!("{v} ms is outside {min}..={} ms", d::TIMEOUT_MS_MAX),
            ));
        }
        Duration::from_millis(v)
    };
    let interval = ms(
        "interval_ms",
        h.interval_ms,
        d::HEALTH_INTERVAL_MS_MIN,
        errs,
    );
    let timeout = ms("timeout_ms", h.timeout_ms, 1, errs);
    threshold(&key("healthy_threshold"), h.healthy_threshold, errs);
    threshold(&key("unhealthy_threshold"), h.unhealthy_threshold, errs);
    let expect_status = status_range(&h.expect_status).unwrap_or_else(|| {
        errs.push(ConfigError::new(
            key("expect_status"),
            format!(
                "\"{}\" is not a status or a range like \"200-399\" within 100..=599",
                h.expect_status
            ),
        ));
        200..=399
    });
    (errs.len() == before).then(|| HealthCheck {
        path: h.path.clone(),
        interval,
        timeout,
        expect_status,
        healthy_threshold: h.healthy_threshold,
        unhealthy_threshold: h.unhealthy_threshold,
    })
}

pub(super) fn outlier(o: &OutlierFile, i: usize, errs: &mut Vec<ConfigError>) -> Option<Outlier> {
    let key = |k: &str| format!("upstream[{i}].outlier.{k}");
    let before = errs.len();
    threshold(&key("consecutive_failures"), o.consecutive_failures, errs);
    if o.base_ejection_ms == 0 || o.base_ejection_ms > d::TIMEOUT_MS_MAX {
        errs.push(ConfigError::new(
            key("base_ejection_ms"),
            format!(
                "{} ms is outside 1..={} ms",
                o.base_ejection_ms,
                d::TIMEOUT_MS_MAX
            ),
        ));
    }
    if o.max_ejection_ms < o.base_ejection_ms || o.max_ejection_ms > d::TIMEOUT_MS_MAX {
        errs.push(ConfigError::new(
            key("max_ejection_ms"),
            format!(
                "{} ms is outside base_ejection_ms..={} ms",
                o.max_ejection_ms,
                d::TIMEOUT_MS_MAX
            ),
        ));
    }
    (errs.len() == before).then(|| Outlier {
        consecutive_failures: o.consecutive_failures,
        base_ejection: Duration::from_millis(o.base_ejection_ms),
        max_ejection: Duration::from_millis(o.max_ejection_ms),
    })
}

fn threshold(key: &str, v: u32, errs: &mut Vec<ConfigError>) {
    if v == 0 || v > d::THRESHOLD_MAX {
        errs.push(ConfigError::new(
            key,
            format!("{v} is outside 1..={}", d::THRESHOLD_MAX),
        ));
    }
}

/// "200-399" → 200..=399; "204" → 204..=204.
fn status_range(s: &str) -> Option<RangeInclusive<u16>> {
    let (lo, hi) = s.split_once('-').unwrap_or((s, s));
    let (lo, hi) = (
        lo.trim().parse::<u16>().ok()?,
        hi.trim().parse::<u16>().ok()?,
    );
    (100 <= lo && lo <= hi && hi <= 599).then_some(lo..=hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_ranges() {
        assert_eq!(status_range("200-399"), Some(200..=399));
        assert_eq!(status_range("204"), Some(204..=204));
        assert_eq!(status_range("399-200"), None);
        assert_eq!(status_range("99-200"), None);
        assert_eq!(status_range("2xx"), None);
        assert_eq!(status_range(""), None);
    }
}
