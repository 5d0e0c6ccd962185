//! Segments: a named share of the probe's requests sent with headers of their own (an A/B test's
//! testers: `X-Canary: always`, or a cookie), counted apart: requests, failures, and which
//! version answered, over time. Which request belongs to which segment is a pure function of its
//! sequence number (a low-discrepancy interleave, not random), so the shares are exact within a
//! request or two over any stretch, and the workers and the aggregator agree without talking.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ProbeError;
use crate::html::escape;

const BUCKET_S: f64 = crate::aggregate::BUCKET.as_secs_f64();
use crate::outcome::RequestOutcome;

/// A share of the requests, with headers added to each.
#[derive(Clone, Debug, PartialEq)]
pub struct Segment {
    pub name: String,
    /// Fraction of all requests, 0 to 1.
    pub share: f64,
    /// Added to each of the segment's requests, in order.
    pub headers: Vec<(String, String)>,
}

impl Segment {
    /// `testers:20%:X-Canary=always` (headers separated by `,`; `Cookie=flavour=b` for a cookie).
    pub fn parse(text: &str) -> Result<Segment, String> {
        let mut parts = text.splitn(3, ':');
        let name = parts.next().unwrap_or_default().trim();
        let share = parts.next().unwrap_or_default().trim();
        let headers = parts.next().unwrap_or_default();
        if name.is_empty() || share.is_empty() || headers.trim().is_empty() {
            return Err(format!(
                "`{text}`: write NAME:SHARE%:Header=value[,Header=value], e.g. testers:20%:X-Canary=always"
            ));
        }
        let share = parse_share(share).map_err(|why| format!("`{text}`: {why}"))?;
        let headers = headers
            .split(',')
            .map(|pair| match pair.split_once('=') {
                Some((name, value)) if !name.trim().is_empty() => {
                    Ok((name.trim().to_string(), value.trim().to_string()))
                }
                _ => Err(format!("`{text}`: `{pair}` is not Header=value")),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Segment {
            name: name.to_string(),
            share,
            headers,
        })
    }
}

/// `20%` (or `20`) as 0.2; 0% to 100%.
pub fn parse_share(text: &str) -> Result<f64, String> {
    let number = text.trim().trim_end_matches('%').trim();
    match number.parse::<f64>() {
        Ok(p) if (0.0..=100.0).contains(&p) => Ok(p / 100.0),
        _ => Err(format!(
            "share `{text}` is not a percentage from 0% to 100%"
        )),
    }
}

/// Refuses shares that add up to more than all requests, names used twice, and header names or
/// values that cannot go into a request.
pub(crate) fn validate(segments: &[Segment]) -> Result<(), ProbeError> {
    let bad = |reason: String| Err(ProbeError::Config(reason));
    let total: f64 = segments.iter().map(|s| s.share).sum();
    if total > 1.0 + 1e-9 {
        return bad(format!(
            "the segments' shares add up to {:.0}%, more than all requests",
            total * 100.0
        ));
    }
    for (index, segment) in segments.iter().enumerate() {
        if segments[..index].iter().any(|s| s.name == segment.name) {
            return bad(format!("segment `{}` is given twice", segment.name));
        }
        for (name, value) in &segment.headers {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err()
                || http::HeaderValue::from_str(value).is_err()
            {
                return bad(format!(
                    "segment `{}`: `{name}: {value}` is not a valid header",
                    segment.name
                ));
            }
        }
    }
    Ok(())
}

/// The segment request `seq` belongs to, if any: the fractional part of `seq × φ` falls in the
/// segment's slice of [0, 1) (a Weyl sequence: evenly spread, no pattern a router could follow).
pub(crate) fn segment_of(seq: u64, segments: &[Segment]) -> Option<usize> {
    if segments.is_empty() {
        return None;
    }
    const PHI: f64 = 0.618_033_988_749_894_9;
    let x = (seq as f64 * PHI).fract();
    let mut end = 0.0;
    for (index, segment) in segments.iter().enumerate() {
        end += segment.share;
        if x < end {
            return Some(index);
        }
    }
    None
}

/// The request lines and headers for a segment: `base` (a whole request head) with `headers`
/// before its final blank line.
pub(crate) fn request_with(base: &[u8], headers: &[(String, String)]) -> Vec<u8> {
    let head = &base[..base.len() - 2];
    let mut request = head.to_vec();
    for (name, value) in headers {
        request.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    request.extend_from_slice(b"\r\n");
    request
}

/// A segment's counts in the report.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SegmentReport {
    pub name: String,
    /// Its share of all requests, in percent.
    pub share_pct: f64,
    pub headers: BTreeMap<String, String>,
    pub total: u64,
    pub failed: u64,
    /// Ok answers by the version that answered.
    pub by_version: BTreeMap<String, u64>,
    /// Its requests by scheduled time, one entry per timeline bucket (0.1 s, from the probe's
    /// time zero), from its first request on.
    pub timeline: Vec<SegmentBucket>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SegmentBucket {
    /// Start of the bucket, seconds since time zero.
    pub t_s: f64,
    pub total: u64,
    pub failed: u64,
    pub by_version: BTreeMap<String, u64>,
}

/// Counts per segment, as outcomes arrive (memory: one small map per segment and second).
#[derive(Default)]
pub(crate) struct SegmentCounts {
    segments: Vec<Segment>,
    counts: Vec<SegmentReport>,
}

impl SegmentCounts {
    pub(crate) fn new(segments: &[Segment]) -> Self {
        SegmentCounts {
            segments: segments.to_vec(),
            counts: segments
                .iter()
                .map(|s| SegmentReport {
                    name: s.name.clone(),
                    share_pct: s.share * 100.0,
                    headers: s.headers.iter().cloned().collect(),
                    ..SegmentReport::default()
                })
                .collect(),
        }
    }

    pub(crate) fn record(&mut self, seq: u64, scheduled: Duration, outcome: &RequestOutcome) {
        let Some(index) = segment_of(seq, &self.segments) else {
            return;
        };
        let counts = &mut self.counts[index];
        let bucket = crate::aggregate::bucket_index(scheduled) as usize;
        if counts.timeline.len() <= bucket {
            let from = counts.timeline.len();
            counts
                .timeline
                .extend((from..=bucket).map(|b| SegmentBucket {
                    t_s: (b as f64 * BUCKET_S * 10.0).round() / 10.0,
                    ..SegmentBucket::default()
                }));
        }
        let at = &mut counts.timeline[bucket];
        counts.total += 1;
        at.total += 1;
        match outcome {
            RequestOutcome::Ok { version } => {
                let version = version.as_deref().unwrap_or("unknown").to_string();
                *counts.by_version.entry(version.clone()).or_default() += 1;
                *at.by_version.entry(version).or_default() += 1;
            }
            RequestOutcome::Failed { .. } => {
                counts.failed += 1;
                at.failed += 1;
            }
        }
    }

    /// The report's segments; the seconds before the first request dropped.
    pub(crate) fn finish(self) -> Vec<SegmentReport> {
        self.counts
            .into_iter()
            .map(|mut c| {
                let first = c.timeline.iter().position(|s| s.total > 0);
                c.timeline.drain(..first.unwrap_or(c.timeline.len()));
                c
            })
            .collect()
    }
}

/// The text report's lines for the segments (nothing without segments).
pub(crate) fn render_text(segments: &[SegmentReport], out: &mut String) {
    for segment in segments {
        let headers: Vec<String> = segment
            .headers
            .iter()
            .map(|(name, value)| format!("{name}: {value}"))
            .collect();
        let versions: Vec<String> = segment
            .by_version
            .iter()
            .map(|(version, n)| format!("{version} {n}"))
            .collect();
        let _ = writeln!(
            out,
            "segment   {} ({:.0}%, {}): {} requests, {} failed, {}",
            segment.name,
            segment.share_pct,
            headers.join(", "),
            segment.total,
            segment.failed,
            if versions.is_empty() {
                "no answer".to_string()
            } else {
                versions.join(", ")
            }
        );
    }
}

/// The HTML report's table for the segments: each second's share of each version.
pub fn render_html(segments: &[SegmentReport]) -> String {
    let mut out = String::new();
    for segment in segments {
        let mut seconds: Vec<SegmentBucket> = Vec::new();
        for bucket in &segment.timeline {
            let t_s = bucket.t_s.floor();
            if seconds.last().is_none_or(|s| s.t_s != t_s) {
                seconds.push(SegmentBucket {
                    t_s,
                    ..SegmentBucket::default()
                });
            }
            let second = seconds.last_mut().expect("pushed");
            second.total += bucket.total;
            second.failed += bucket.failed;
            for (version, n) in &bucket.by_version {
                *second.by_version.entry(version.clone()).or_default() += n;
            }
        }
        let versions: Vec<&String> = segment.by_version.keys().collect();
        let _ = write!(
            out,
            "<h3>segment {} ({:.0}% of the requests, {})</h3>\n<table class=\"segment\"><tr><th>s</th><th>requests</th><th>failed</th>",
            escape(&segment.name),
            segment.share_pct,
            escape(
                &segment
                    .headers
                    .iter()
                    .map(|(n, v)| format!("{n}: {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        );
        for version in &versions {
            let _ = write!(out, "<th>{}</th>", escape(version));
        }
        out.push_str("</tr>\n");
        for second in &seconds {
            let ok: u64 = second.by_version.values().sum();
            let _ = write!(
                out,
                "<tr><td>{:.0}</td><td>{}</td><td>{}</td>",
                second.t_s, second.total, second.failed
            );
            for version in &versions {
                let n = second.by_version.get(*version).copied().unwrap_or(0);
                let share = if ok == 0 {
                    0.0
                } else {
                    100.0 * n as f64 / ok as f64
                };
                let _ = write!(out, "<td>{share:.0}%</td>");
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</table>\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(name: &str, share: f64) -> Segment {
        Segment {
            name: name.into(),
            share,
            headers: vec![("X-Canary".into(), "always".into())],
        }
    }

    #[test]
    fn shares_are_exact_within_a_few_requests_over_any_stretch() {
        let segments = [segment("a", 0.2), segment("b", 0.05)];
        for (start, n) in [(0u64, 1000u64), (12_345, 1000), (0, 100)] {
            let mut counts = [0u64; 2];
            for seq in start..start + n {
                if let Some(i) = segment_of(seq, &segments) {
                    counts[i] += 1;
                }
            }
            let want = [n as f64 * 0.2, n as f64 * 0.05];
            for (got, want) in counts.iter().zip(want) {
                assert!((*got as f64 - want).abs() <= 3.0, "{counts:?} over {n}");
            }
        }
    }

    #[test]
    fn the_cli_form_parses_and_bad_ones_say_how_to_write_it() {
        let s = Segment::parse("testers:20%:X-Canary=always,Cookie=flavour=b").unwrap();
        assert_eq!(s.name, "testers");
        assert!((s.share - 0.2).abs() < 1e-9);
        assert_eq!(
            s.headers,
            [
                ("X-Canary".to_string(), "always".to_string()),
                ("Cookie".to_string(), "flavour=b".to_string())
            ]
        );
        assert!(
            Segment::parse("testers:120%:X=1")
                .unwrap_err()
                .contains("0% to 100%")
        );
        assert!(
            Segment::parse("testers:20%")
                .unwrap_err()
                .contains("NAME:SHARE%")
        );
        assert!(
            Segment::parse("testers:20%:novalue")
                .unwrap_err()
                .contains("Header=value")
        );
    }

    #[test]
    fn segment_requests_carry_their_headers_before_the_blank_line() {
        let base = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        let request = request_with(base, &[("X-Canary".into(), "always".into())]);
        assert_eq!(
            String::from_utf8(request).unwrap(),
            "GET / HTTP/1.1\r\nHost: a\r\nX-Canary: always\r\n\r\n"
        );
    }
}
