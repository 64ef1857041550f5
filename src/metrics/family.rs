//! Metric families as they travel from a shard to the admin thread (plain owned data, `Send`),
//! merged across shards, and rendered in the Prometheus text exposition format (0.0.4):
//! `# HELP`, `# TYPE`, then every sample of the family together.

use std::fmt::Write;
use std::sync::Arc;

use super::histogram::{HistogramSnapshot, BOUNDS_S};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

#[derive(Debug, Clone)]
pub enum Value {
    Int(u64),
    Float(f64),
    Histogram(Box<HistogramSnapshot>),
}

/// One series: its rendered label set (`route="a",shard="0"`) and value.
#[derive(Debug, Clone)]
pub struct Sample {
    pub labels: Arc<str>,
    pub value: Value,
}

#[derive(Debug, Clone)]
pub struct Family {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    pub samples: Vec<Sample>,
}

/// Families in the order they were first added.
#[derive(Debug, Default, Clone)]
pub struct Families {
    pub list: Vec<Family>,
}

/// Render a label set once: `name="value",…` with values escaped as the format requires.
pub fn labels(pairs: &[(&str, &str)]) -> Arc<str> {
    let mut s = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(k);
        s.push_str("=\"");
        for c in v.chars() {
            match c {
                '\\' => s.push_str("\\\\"),
                '"' => s.push_str("\\\""),
                '\n' => s.push_str("\\n"),
                c => s.push(c),
            }
        }
        s.push('"');
    }
    s.into()
}

impl Families {
    /// The samples of family `name`, created (with its help and kind) on first use.
    pub fn family(
        &mut self,
        name: &'static str,
        help: &'static str,
        kind: Kind,
    ) -> &mut Vec<Sample> {
        let i = match self.list.iter().position(|f| f.name == name) {
            Some(i) => i,
            None => {
                self.list.push(Family {
                    name,
                    help,
                    kind,
                    samples: Vec::new(),
                });
                self.list.len() - 1
            }
        };
        debug_assert_eq!(self.list[i].kind, kind, "{name} registered with two kinds");
        &mut self.list[i].samples
    }

    pub fn counter(&mut self, name: &'static str, help: &'static str, labels: &Arc<str>, v: u64) {
        self.family(name, help, Kind::Counter).push(Sample {
            labels: labels.clone(),
            value: Value::Int(v),
        });
    }

    pub fn gauge(&mut self, name: &'static str, help: &'static str, labels: &Arc<str>, v: f64) {
        self.family(name, help, Kind::Gauge).push(Sample {
            labels: labels.clone(),
            value: Value::Float(v),
        });
    }

    pub fn histogram(
        &mut self,
        name: &'static str,
        help: &'static str,
        labels: &Arc<str>,
        h: HistogramSnapshot,
    ) {
        self.family(name, help, Kind::Histogram).push(Sample {
            labels: labels.clone(),
            value: Value::Histogram(Box::new(h)),
        });
    }

    /// Add another shard's families (their samples carry their own `shard` label).
    pub fn merge(&mut self, other: Families) {
        for f in other.list {
            self.family(f.name, f.help, f.kind).extend(f.samples);
        }
    }

    /// The Prometheus text format. Families without samples are left out.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(64 * 1024);
        for f in self.list.iter().filter(|f| !f.samples.is_empty()) {
            let kind = match f.kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
                Kind::Histogram => "histogram",
            };
            let _ = writeln!(out, "# HELP {} {}", f.name, f.help);
            let _ = writeln!(out, "# TYPE {} {kind}", f.name);
            for s in &f.samples {
                render_sample(&mut out, f.name, s);
            }
        }
        out
    }
}

fn render_sample(out: &mut String, name: &str, s: &Sample) {
    let labels = &*s.labels;
    let series = |out: &mut String, suffix: &str| {
        out.push_str(name);
        out.push_str(suffix);
        if !labels.is_empty() {
            out.push('{');
            out.push_str(labels);
            out.push('}');
        }
        out.push(' ');
    };
    match &s.value {
        Value::Int(v) => {
            series(out, "");
            let _ = writeln!(out, "{v}");
        }
        Value::Float(v) => {
            series(out, "");
            out.push_str(&float(*v));
            out.push('\n');
        }
        Value::Histogram(h) => {
            let sep = if labels.is_empty() { "" } else { "," };
            let mut cumulative = 0;
            for (i, c) in h.counts.iter().enumerate() {
                cumulative += c;
                let le = LE.get(i).copied().unwrap_or("+Inf");
                let _ = writeln!(
                    out,
                    "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}"
                );
            }
            series(out, "_sum");
            out.push_str(&float(h.sum_s));
            out.push('\n');
            series(out, "_count");
            let _ = writeln!(out, "{cumulative}");
        }
    }
}

/// `BOUNDS_S` as rendered in `le` labels.
const LE: [&str; BOUNDS_S.len()] = [
    "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1",
    "2.5", "5", "10",
];

/// A float as Prometheus reads it (`1`, `0.25`, `+Inf`).
fn float(v: f64) -> String {
    if v.is_infinite() {
        return if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if v.is_nan() {
        return "NaN".into();
    }
    format!("{v}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn le_labels_match_the_bounds() {
        for (le, b) in LE.iter().zip(BOUNDS_S) {
            assert_eq!(le.parse::<f64>().unwrap(), b);
            assert_eq!(*le, float(b));
        }
    }

    #[test]
    fn labels_are_escaped() {
        assert_eq!(
            &*labels(&[("route", "a\"b\\c\nd"), ("shard", "0")]),
            r#"route="a\"b\\c\nd",shard="0""#
        );
    }

    #[test]
    fn families_merge_and_render_grouped() {
        let mut a = Families::default();
        a.counter("x_total", "X.", &labels(&[("shard", "0")]), 3);
        a.gauge("g", "G.", &labels(&[]), 1.5);
        let mut b = Families::default();
        b.counter("x_total", "X.", &labels(&[("shard", "1")]), 4);
        let mut h = HistogramSnapshot::default();
        h.counts[0] = 2;
        h.counts[3] = 1;
        h.sum_s = 0.5;
        b.histogram("d_seconds", "D.", &labels(&[("shard", "1")]), h);
        a.merge(b);
        let text = a.render();
        let x = text.find("x_total{shard=\"1\"} 4").unwrap();
        let g = text.find("# TYPE g gauge").unwrap();
        assert!(x < g, "samples of one family stay together:\n{text}");
        assert!(text.contains("g 1.5\n"));
        assert!(text.contains("d_seconds_bucket{shard=\"1\",le=\"0.0005\"} 2\n"));
        assert!(text.contains("d_seconds_bucket{shard=\"1\",le=\"0.005\"} 3\n"));
        assert!(text.contains("d_seconds_bucket{shard=\"1\",le=\"+Inf\"} 3\n"));
        assert!(text.contains("d_seconds_count{shard=\"1\"} 3\n"));
        assert!(text.contains("d_seconds_sum{shard=\"1\"} 0.5\n"));
    }
}
