//! The self-contained HTML report: inline CSS and SVG, nothing fetched from the network.

use std::fmt::Write;

use crate::outcome::FailureKind;
use crate::{EventMark, Report, TimelineBucket};

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 170.0;
const LEFT: f64 = 58.0;
const RIGHT: f64 = 14.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 24.0;

const VERSION_COLORS: [&str; 8] = [
    "#4e79a7", "#59a14f", "#f28e2b", "#b07aa1", "#76b7b2", "#edc948", "#9c755f", "#ff9da7",
];

fn kind_color(kind: &str) -> &'static str {
    match kind {
        "http_5xx" => "#e15759",
        "http_4xx" => "#f28e2b",
        "refused" => "#9e0142",
        "reset" => "#8c564b",
        "timeout" => "#7f7f7f",
        "saturated" => "#bcbd22",
        _ => "#17becf",
    }
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1000px}\
h1{font-size:22px}h2{font-size:18px;margin-top:36px;border-bottom:1px solid #ccc}\
h3{font-size:14px;margin:14px 0 2px}table{border-collapse:collapse;margin:6px 0}\
td,th{padding:2px 10px 2px 0;text-align:left;vertical-align:top}th{font-weight:600}\
.legend span{display:inline-block;margin-right:14px}.swatch{display:inline-block;width:10px;\
height:10px;margin-right:4px}.bad{color:#b00}.good{color:#070}svg{display:block}\
svg text{font:11px system-ui,sans-serif;fill:#555}";

/// A mark on a section's timeline: a deployment event, or anything else timed on the probe's
/// clock (an analysis measurement and its verdict...). Each gets a dashed line of its colour
/// across the charts, a numbered label in the strip above them (rows laid out so that no two
/// labels overlap) and a row in the table below.
#[derive(Clone, Debug, PartialEq)]
pub struct Mark {
    /// Seconds since the probe's time zero.
    pub t_s: f64,
    pub label: String,
    /// A CSS colour for its line, number and label.
    pub color: String,
}

/// The colour of deployment events.
pub const EVENT_COLOR: &str = "#333";

impl From<&EventMark> for Mark {
    fn from(event: &EventMark) -> Mark {
        Mark {
            t_s: event.t_s,
            label: event.label.clone(),
            color: EVENT_COLOR.to_owned(),
        }
    }
}

/// One self-contained HTML page, one section per run (the demo puts five on one page).
pub fn render_html(sections: &[(&str, &Report, &[EventMark])]) -> String {
    let marks: Vec<Vec<Mark>> = sections
        .iter()
        .map(|(_, _, events)| events.iter().map(Mark::from).collect())
        .collect();
    let sections: Vec<(&str, &Report, &[Mark])> = sections
        .iter()
        .zip(&marks)
        .map(|((title, report, _), marks)| (*title, *report, marks.as_slice()))
        .collect();
    render_html_marked(&sections)
}

/// [`render_html`] with marks of any colour (events and other layers, merged by the caller).
pub fn render_html_marked(sections: &[(&str, &Report, &[Mark])]) -> String {
    let mut page = String::new();
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>zdd probe report</title><style>{STYLE}</style></head><body>\n\
         <h1>zdd probe report</h1>\n"
    );
    if sections.len() > 1 {
        page.push_str("<table><tr><th>run</th><th>requests</th><th>failed</th><th>longest outage</th><th>p99</th></tr>\n");
        for (title, report, _) in sections {
            let _ = writeln!(
                page,
                "<tr><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{:.3} s</td><td>{:.2} ms</td></tr>",
                escape(title),
                report.total,
                if report.failed == 0 { "good" } else { "bad" },
                report.failed,
                report.longest_outage_s,
                report.latency_ms.p99
            );
        }
        page.push_str("</table>\n");
    }
    for (title, report, events) in sections {
        section(&mut page, title, report, events);
    }
    page.push_str("</body></html>\n");
    page
}

fn section(page: &mut String, title: &str, report: &Report, events: &[Mark]) {
    let _ = writeln!(page, "<section><h2>{}</h2>", escape(title));
    summary(page, report);
    let axis = Axis::for_report(report);
    let versions: Vec<&String> = report.by_version.keys().collect();

    page.push_str("<h3>Version share of ok answers</h3>");
    legend(
        page,
        versions
            .iter()
            .enumerate()
            .map(|(i, v)| (v.as_str(), VERSION_COLORS[i % VERSION_COLORS.len()])),
    );
    let shares: Vec<(String, Vec<f64>)> = versions
        .iter()
        .map(|v| {
            let series = report
                .timeline
                .iter()
                .map(|b| share(b, v))
                .collect::<Vec<_>>();
            (v.to_string(), series)
        })
        .collect();
    let colors: Vec<&str> = (0..shares.len())
        .map(|i| VERSION_COLORS[i % VERSION_COLORS.len()])
        .collect();
    mark_strip(page, &axis, events);
    chart(page, &axis, report, events, 100.0, "%", |svg, axis, y| {
        stacked(svg, axis, y, &report.timeline, &shares, &colors)
    });

    page.push_str("<h3>Failed requests per 100 ms</h3>");
    let kinds: Vec<&str> = FailureKind::ALL
        .iter()
        .map(|k| k.as_str())
        .filter(|k| report.failed_by_kind.get(*k).copied().unwrap_or(0) > 0)
        .collect();
    legend(page, kinds.iter().map(|k| (*k, kind_color(k))));
    let failures: Vec<(String, Vec<f64>)> = kinds
        .iter()
        .map(|k| {
            let series = report
                .timeline
                .iter()
                .map(|b| b.failed_by_kind.get(*k).copied().unwrap_or(0) as f64)
                .collect();
            (k.to_string(), series)
        })
        .collect();
    let max_failed = report
        .timeline
        .iter()
        .map(|b| b.failed)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let kind_colors: Vec<&str> = kinds.iter().map(|k| kind_color(k)).collect();
    chart(
        page,
        &axis,
        report,
        events,
        max_failed,
        "",
        |svg, axis, y| stacked(svg, axis, y, &report.timeline, &failures, &kind_colors),
    );

    page.push_str("<h3>p99 latency per 100 ms (from the scheduled send time)</h3>");
    let max_p99 = report
        .timeline
        .iter()
        .filter_map(|b| b.p99_ms)
        .fold(0.0, f64::max);
    let max_p99 = if max_p99 > 0.0 { max_p99 * 1.1 } else { 1.0 };
    chart(
        page,
        &axis,
        report,
        events,
        max_p99,
        " ms",
        |svg, axis, y| p99_line(svg, axis, y, &report.timeline),
    );

    outages_and_events(page, report, events);
    page.push_str(&crate::segments::render_html(&report.segments));
    page.push_str("</section>\n");
}

fn summary(page: &mut String, report: &Report) {
    let failures: Vec<String> = report
        .failed_by_kind
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| format!("{} {n}", escape(k)))
        .collect();
    let versions: Vec<String> = report
        .by_version
        .iter()
        .map(|(v, n)| format!("{} {n}", escape(v)))
        .collect();
    let l = &report.latency_ms;
    let _ = writeln!(
        page,
        "<table>\
         <tr><th>target</th><td>{} at {} rps for {:.1} s, up to {} in flight, {} connections open at most</td></tr>\
         <tr><th>requests</th><td>{} sent, {} ok, <span class=\"{}\">{} failed</span>{}</td></tr>\
         <tr><th>versions</th><td>{}</td></tr>\
         <tr><th>latency</th><td>p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms</td></tr>\
         <tr><th>outages</th><td>{}, longest {:.3} s</td></tr></table>",
        escape(&report.url),
        report.rate,
        report.duration_s,
        report.connections,
        report.max_connections_open,
        report.total,
        report.ok,
        if report.failed == 0 { "good" } else { "bad" },
        report.failed,
        if failures.is_empty() {
            String::new()
        } else {
            format!(" ({})", failures.join(", "))
        },
        if versions.is_empty() {
            "none reported".to_string()
        } else {
            versions.join(", ")
        },
        l.p50,
        l.p90,
        l.p99,
        l.max,
        report.outages.len() as u64 + report.outages_omitted,
        report.longest_outage_s
    );
}

fn outages_and_events(page: &mut String, report: &Report, events: &[Mark]) {
    if !report.outages.is_empty() {
        page.push_str("<h3>Outages</h3><table><tr><th>start</th><th>end</th><th>duration</th><th>failed</th><th>kinds</th></tr>");
        for outage in report.outages.iter().take(200) {
            let kinds: Vec<String> = outage
                .failed_by_kind
                .iter()
                .map(|(k, n)| format!("{} {n}", escape(k)))
                .collect();
            let _ = write!(
                page,
                "<tr><td>{:.3} s</td><td>{:.3} s</td><td>{:.3} s</td><td>{}</td><td>{}</td></tr>",
                outage.start_s,
                outage.end_s,
                outage.duration_s,
                outage.failed,
                kinds.join(", ")
            );
        }
        page.push_str("</table>\n");
    }
    if !events.is_empty() {
        page.push_str("<h3>Events</h3><table><tr><th>#</th><th>time</th><th>event</th></tr>");
        for (i, event) in events.iter().enumerate() {
            let _ = write!(
                page,
                "<tr><td style=\"color:{}\">{}</td><td>{:.3} s</td><td>{}</td></tr>",
                escape(&event.color),
                i + 1,
                event.t_s,
                escape(&event.label)
            );
        }
        page.push_str("</table>\n");
    }
}

fn legend<'a>(page: &mut String, entries: impl Iterator<Item = (&'a str, &'a str)>) {
    page.push_str("<div class=\"legend\">");
    for (name, color) in entries {
        let _ = write!(
            page,
            "<span><i class=\"swatch\" style=\"background:{color}\"></i>{}</span>",
            escape(name)
        );
    }
    page.push_str("</div>");
}

/// Maps seconds to x pixels.
struct Axis {
    start_s: f64,
    end_s: f64,
}

impl Axis {
    fn for_report(report: &Report) -> Axis {
        let start_s = report
            .timeline
            .first()
            .map_or(report.start_s, |b| b.t_s.min(report.start_s));
        let timeline_end = report
            .timeline
            .last()
            .map_or(start_s, |b| b.t_s + bucket_s(report));
        let end_s = timeline_end.max(report.start_s + report.duration_s);
        Axis {
            start_s,
            end_s: if end_s > start_s {
                end_s
            } else {
                start_s + 1.0
            },
        }
    }

    fn x(&self, t_s: f64) -> f64 {
        let t = t_s.clamp(self.start_s, self.end_s);
        LEFT + (t - self.start_s) / (self.end_s - self.start_s) * (WIDTH - LEFT - RIGHT)
    }

    fn contains(&self, t_s: f64) -> bool {
        (self.start_s..=self.end_s).contains(&t_s)
    }

    /// Tick spacing giving at most about ten ticks.
    fn tick_step(&self) -> f64 {
        let span = self.end_s - self.start_s;
        [
            0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
            3600.0,
        ]
        .into_iter()
        .find(|step| span / step <= 10.0)
        .unwrap_or(7200.0)
    }
}

fn bucket_s(report: &Report) -> f64 {
    if report.bucket_s > 0.0 {
        report.bucket_s
    } else {
        0.1
    }
}

/// Maps a value in `0..=max` to y pixels.
struct YScale {
    max: f64,
}

impl YScale {
    fn y(&self, value: f64) -> f64 {
        let plot = HEIGHT - TOP - BOTTOM;
        TOP + plot - (value / self.max).clamp(0.0, 1.0) * plot
    }
}

/// One chart frame: outage shading, axes, the plotted series, then event markers on top.
fn chart(
    page: &mut String,
    axis: &Axis,
    report: &Report,
    events: &[Mark],
    y_max: f64,
    unit: &str,
    plot: impl FnOnce(&mut String, &Axis, &YScale),
) {
    let y = YScale { max: y_max };
    let _ = write!(
        page,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\">"
    );
    for outage in &report.outages {
        let (x0, x1) = (axis.x(outage.start_s), axis.x(outage.end_s));
        let _ = write!(
            page,
            "<rect x=\"{x0:.1}\" y=\"{TOP}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#fbe3e3\"><title>outage {:.3} s</title></rect>",
            (x1 - x0).max(1.0),
            HEIGHT - TOP - BOTTOM,
            outage.duration_s
        );
    }
    // Horizontal grid and y labels.
    for fraction in [0.0, 0.5, 1.0] {
        let value = y_max * fraction;
        let py = y.y(value);
        let _ = write!(
            page,
            "<line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{py:.1}\" y2=\"{py:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}{unit}</text>",
            WIDTH - RIGHT,
            LEFT - 4.0,
            py + 4.0,
            format_number(value)
        );
    }
    // Time ticks.
    let step = axis.tick_step();
    let mut tick = (axis.start_s / step).ceil() * step;
    while tick <= axis.end_s + 1e-9 {
        let px = axis.x(tick);
        let _ = write!(
            page,
            "<line x1=\"{px:.1}\" x2=\"{px:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#999\"/>\
             <text x=\"{px:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}s</text>",
            HEIGHT - BOTTOM,
            HEIGHT - BOTTOM + 4.0,
            HEIGHT - 6.0,
            format_number(tick)
        );
        tick += step;
    }
    plot(page, axis, &y);
    // Lines only: the numbers and labels are in the strip above the first chart.
    for (i, event) in events.iter().enumerate() {
        if !axis.contains(event.t_s) {
            continue;
        }
        let px = axis.x(event.t_s);
        let _ = write!(
            page,
            "<g><title>{} at {:.3} s: {}</title><line x1=\"{px:.1}\" x2=\"{px:.1}\" y1=\"{TOP}\" y2=\"{:.1}\" \
             stroke=\"{}\" stroke-dasharray=\"3,3\"/></g>",
            i + 1,
            event.t_s,
            escape(&event.label),
            HEIGHT - BOTTOM,
            escape(&event.color),
        );
    }
    let _ = writeln!(
        page,
        "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"none\" stroke=\"#999\"/></svg>",
        WIDTH - LEFT - RIGHT,
        HEIGHT - TOP - BOTTOM
    );
}

/// Height of one row of labels in the mark strip.
const ROW: f64 = 14.0;
/// Longest label drawn in the strip (the full text is in the table and the tooltip).
const MAX_LABEL_CHARS: usize = 48;
/// A conservative width of one character at the charts' 11px font, so estimates err wide.
const CHAR_WIDTH: f64 = 6.6;
/// Room kept between two labels of a row.
const GAP: f64 = 8.0;

/// The numbered labels of the marks, above the charts and on their time axis: each label starts
/// at its mark's line (or ends there near the right edge) and goes in the lowest row where it
/// overlaps no other label; a thin line joins it to its time. Marks outside the probe's run are
/// only in the table below.
fn mark_strip(page: &mut String, axis: &Axis, marks: &[Mark]) {
    let shown: Vec<(usize, &Mark, String)> = marks
        .iter()
        .enumerate()
        .filter(|(_, mark)| axis.contains(mark.t_s))
        .map(|(i, mark)| (i, mark, format!("{} {}", i + 1, shorten(&mark.label))))
        .collect();
    if shown.is_empty() {
        return;
    }
    let boxes: Vec<(f64, f64)> = shown
        .iter()
        .map(|(_, mark, text)| (axis.x(mark.t_s), text_width(text)))
        .collect();
    let placed = layout_labels(&boxes, LEFT, WIDTH - RIGHT);
    let rows = placed.iter().map(|p| p.row + 1).max().unwrap_or(1);
    let height = rows as f64 * ROW + 6.0;
    let _ = write!(
        page,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"marks\" width=\"{WIDTH}\" height=\"{height:.0}\" viewBox=\"0 0 {WIDTH} {height:.0}\">"
    );
    // Row 0 is the lowest, next to the charts. Lines first, so a label's white box hides where
    // the line of a higher row's label passes behind it.
    let row_y = |row: usize| height - 6.0 - row as f64 * ROW;
    for (((_, mark, _), (px, _)), place) in shown.iter().zip(&boxes).zip(&placed) {
        let _ = write!(
            page,
            "<line x1=\"{px:.1}\" x2=\"{px:.1}\" y1=\"{:.1}\" y2=\"{height:.0}\" stroke=\"{}\" stroke-opacity=\"0.5\"/>",
            row_y(place.row) - ROW + 1.0,
            escape(&mark.color)
        );
    }
    for (((i, mark, text), place), (_, width)) in shown.iter().zip(&placed).zip(&boxes) {
        let y = row_y(place.row);
        let _ = write!(
            page,
            "<g><title>{} at {:.3} s: {}</title><rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" \
             height=\"{:.1}\" fill=\"#fff\"/><text x=\"{:.1}\" y=\"{:.1}\" style=\"fill:{}\">{}</text></g>",
            i + 1,
            mark.t_s,
            escape(&mark.label),
            place.x - 1.0,
            y - ROW,
            width + 2.0,
            ROW,
            place.x,
            y - 3.0,
            escape(&mark.color),
            escape(text)
        );
    }
    page.push_str("</svg>\n");
}

fn shorten(label: &str) -> String {
    if label.chars().count() <= MAX_LABEL_CHARS {
        label.to_owned()
    } else {
        let kept: String = label.chars().take(MAX_LABEL_CHARS - 1).collect();
        format!("{kept}…")
    }
}

fn text_width(text: &str) -> f64 {
    text.chars().count() as f64 * CHAR_WIDTH
}

/// Where one label goes: its row (0 nearest the charts) and the x its text starts at.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Placed {
    row: usize,
    x: f64,
}

/// Lays out labels given as (x of their mark, width) between `min_x` and `max_x`: each starts
/// just right of its mark, or ends just left of it when it would pass `max_x`, and takes the
/// lowest row where it keeps `GAP` from every label already there. Labels are placed in time
/// order, so the earlier of two close marks keeps the lower row. Results are in input order.
fn layout_labels(labels: &[(f64, f64)], min_x: f64, max_x: f64) -> Vec<Placed> {
    let mut order: Vec<usize> = (0..labels.len()).collect();
    order.sort_by(|a, b| labels[*a].0.total_cmp(&labels[*b].0));
    let mut rows: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut placed = vec![Placed { row: 0, x: min_x }; labels.len()];
    for i in order {
        let (mark_x, width) = labels[i];
        let mut start = mark_x + 3.0;
        if start + width > max_x {
            start = mark_x - 3.0 - width;
        }
        let start = start.max(min_x);
        let span = (start, start + width);
        let free = |row: &Vec<(f64, f64)>| {
            row.iter()
                .all(|(a, b)| span.1 + GAP <= *a || *b + GAP <= span.0)
        };
        let row = match rows.iter().position(free) {
            Some(row) => row,
            None => {
                rows.push(Vec::new());
                rows.len() - 1
            }
        };
        rows[row].push(span);
        placed[i] = Placed { row, x: start };
    }
    placed
}

/// Share of a bucket's ok answers given by `version`, in percent.
fn share(bucket: &TimelineBucket, version: &str) -> f64 {
    if bucket.ok == 0 {
        0.0
    } else {
        100.0 * bucket.by_version.get(version).copied().unwrap_or(0) as f64 / bucket.ok as f64
    }
}

/// Stacked step areas, one per series, in order from the bottom.
fn stacked(
    page: &mut String,
    axis: &Axis,
    y: &YScale,
    timeline: &[TimelineBucket],
    series: &[(String, Vec<f64>)],
    colors: &[&str],
) {
    let width = timeline
        .windows(2)
        .next()
        .map_or(0.1, |w| w[1].t_s - w[0].t_s);
    let mut base = vec![0.0; timeline.len()];
    for ((name, values), color) in series.iter().zip(colors) {
        let top: Vec<f64> = base.iter().zip(values).map(|(b, v)| b + v).collect();
        if values.iter().all(|v| *v == 0.0) {
            continue;
        }
        let upper = steps(timeline, width, &top);
        let lower = steps(timeline, width, &base);
        let mut d = String::new();
        for (i, (t, v)) in upper.iter().enumerate() {
            let _ = write!(
                d,
                "{}{:.1},{:.1}",
                if i == 0 { "M" } else { "L" },
                axis.x(*t),
                y.y(*v)
            );
        }
        for (t, v) in lower.iter().rev() {
            let _ = write!(d, "L{:.1},{:.1}", axis.x(*t), y.y(*v));
        }
        let _ = write!(
            page,
            "<path d=\"{d}Z\" fill=\"{color}\" fill-opacity=\"0.85\"><title>{}</title></path>",
            escape(name)
        );
        base = top;
    }
}

/// The corner points of a step function over the buckets, merging equal neighbours.
fn steps(timeline: &[TimelineBucket], width: f64, values: &[f64]) -> Vec<(f64, f64)> {
    let mut points: Vec<(f64, f64)> = Vec::new();
    for (bucket, value) in timeline.iter().zip(values) {
        match points.last() {
            Some((_, last)) if *last == *value => {}
            Some((_, last)) => {
                let last = *last;
                points.push((bucket.t_s, last));
                points.push((bucket.t_s, *value));
            }
            None => points.push((bucket.t_s, *value)),
        }
    }
    if let (Some(last_bucket), Some((_, last))) = (timeline.last(), points.last()) {
        let last = *last;
        points.push((last_bucket.t_s + width, last));
    }
    points
}

/// A step line of per-bucket p99, broken where a bucket had no answer.
fn p99_line(page: &mut String, axis: &Axis, y: &YScale, timeline: &[TimelineBucket]) {
    let width = timeline
        .windows(2)
        .next()
        .map_or(0.1, |w| w[1].t_s - w[0].t_s);
    let mut d = String::new();
    let mut drawing = false;
    for bucket in timeline {
        match bucket.p99_ms {
            Some(p99) => {
                let (x0, x1, py) = (axis.x(bucket.t_s), axis.x(bucket.t_s + width), y.y(p99));
                let _ = write!(
                    d,
                    "{}{x0:.1},{py:.1}L{x1:.1},{py:.1}",
                    if drawing { "L" } else { "M" }
                );
                drawing = true;
            }
            None => drawing = false,
        }
    }
    if !d.is_empty() {
        let _ = write!(
            page,
            "<path d=\"{d}\" fill=\"none\" stroke=\"#4e79a7\" stroke-width=\"1.5\"/>"
        );
    }
}

fn format_number(value: f64) -> String {
    if value == value.round() || value >= 10.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::{Outage, TimelineBucket};

    fn sample() -> Report {
        let timeline = (0..30)
            .map(|i| {
                let t_s = i as f64 * 0.1;
                let (version, failed) = match i {
                    0..10 => ("v1", 0),
                    10..15 => ("", 20),
                    _ => ("v2", 0),
                };
                TimelineBucket {
                    t_s,
                    ok: if failed > 0 { 0 } else { 20 },
                    failed,
                    by_version: if version.is_empty() {
                        BTreeMap::new()
                    } else {
                        BTreeMap::from([(version.to_string(), 20)])
                    },
                    failed_by_kind: if failed > 0 {
                        BTreeMap::from([("refused".to_string(), failed)])
                    } else {
                        BTreeMap::new()
                    },
                    p99_ms: (failed == 0).then_some(1.5),
                }
            })
            .collect();
        Report {
            url: "http://127.0.0.1:1/<x>".into(),
            rate: 200,
            connections: 64,
            total: 600,
            ok: 500,
            failed: 100,
            failed_by_kind: BTreeMap::from([("refused".to_string(), 100)]),
            by_version: BTreeMap::from([("v1".to_string(), 200), ("v2".to_string(), 300)]),
            outages: vec![Outage {
                start_s: 1.0,
                end_s: 1.5,
                duration_s: 0.5,
                failed: 100,
                failed_by_kind: BTreeMap::from([("refused".to_string(), 100)]),
            }],
            longest_outage_s: 0.5,
            duration_s: 3.0,
            bucket_s: 0.1,
            timeline,
            ..Report::default()
        }
    }

    #[test]
    fn the_page_is_self_contained_with_three_charts_per_section_and_events() {
        let report = sample();
        let events = [
            EventMark {
                t_s: 0.9,
                label: "stop <v1>".into(),
            },
            EventMark {
                t_s: 1.5,
                label: "v2 ready".into(),
            },
        ];
        let page = render_html(&[("recreate", &report, &events), ("blue-green", &report, &[])]);
        assert!(page.starts_with("<!DOCTYPE html>"));
        // Three charts per section, and the mark strip of the section with events.
        assert_eq!(page.matches("<svg").count(), 7);
        assert_eq!(page.matches("class=\"marks\"").count(), 1);
        assert_eq!(page.matches("<section>").count(), 2);
        // Nothing fetched: no scripts, stylesheets or images from elsewhere.
        for external in ["<script", "<link", "src=", "@import", "url("] {
            assert!(!page.contains(external), "{external}");
        }
        assert!(page.contains("stop &lt;v1&gt;"));
        assert!(!page.contains("<v1>"));
        assert!(page.contains("&lt;x&gt;"));
        // Both versions get an area, failures get an area, outages are shaded.
        assert!(page.contains("<title>v1</title>") && page.contains("<title>v2</title>"));
        assert!(page.contains("<title>refused</title>"));
        assert!(page.contains("outage 0.500 s"));
        // EventMark markers: two lines in each of the first section's three charts.
        assert_eq!(page.matches("stroke-dasharray").count(), 6);
    }

    #[test]
    fn an_empty_report_still_renders() {
        let page = render_html(&[("nothing", &Report::default(), &[])]);
        assert_eq!(page.matches("<svg").count(), 3);
        assert!(!page.contains("NaN"));
    }

    /// No two labels of a row overlap, and every label stays inside the frame.
    fn assert_readable(labels: &[(f64, f64)], placed: &[Placed]) {
        for (i, (a, wa)) in placed.iter().zip(labels.iter().map(|l| l.1)).enumerate() {
            assert!(
                a.x >= LEFT && a.x + wa <= WIDTH - RIGHT,
                "label {i} at {a:?}"
            );
            for (j, (b, wb)) in placed.iter().zip(labels.iter().map(|l| l.1)).enumerate() {
                if i != j && a.row == b.row {
                    assert!(
                        a.x + wa <= b.x || b.x + wb <= a.x,
                        "labels {i} {a:?} and {j} {b:?} overlap"
                    );
                }
            }
        }
    }

    #[test]
    fn labels_of_close_marks_get_distinct_rows() {
        // A blue-green run's events: four within a few pixels, then two far apart, one at the
        // right edge (placed to the left of its mark).
        let labels = [
            (300.0, 120.0),
            (302.0, 90.0),
            (301.0, 150.0),
            (306.0, 60.0),
            (600.0, 100.0),
            (940.0, 110.0),
        ];
        let placed = layout_labels(&labels, LEFT, WIDTH - RIGHT);
        assert_readable(&labels, &placed);
        let close: Vec<usize> = placed[..4].iter().map(|p| p.row).collect();
        let mut distinct = close.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 4, "rows {close:?}");
        // The earliest of the close ones, and the ones with room, stay on the lowest row.
        assert_eq!((placed[0].row, placed[4].row, placed[5].row), (0, 0, 0));
        assert!(placed[5].x + 110.0 <= 940.0, "{:?}", placed[5]);

        // Many marks at the same instant (an analysis layer on top of events) still never
        // overlap.
        let crowd: Vec<(f64, f64)> = (0..30).map(|i| (500.0 + (i % 3) as f64, 80.0)).collect();
        let placed = layout_labels(&crowd, LEFT, WIDTH - RIGHT);
        assert_readable(&crowd, &placed);
    }

    #[test]
    fn the_strip_numbers_every_mark_once_and_keeps_its_colour() {
        let report = sample();
        let marks = [
            Mark {
                t_s: 1.0,
                label: "switch traffic to v2".into(),
                color: EVENT_COLOR.into(),
            },
            Mark {
                t_s: 1.01,
                label: "error-rate 0.0% <= 1% pass".into(),
                color: "#2ca02c".into(),
            },
        ];
        let page = render_html_marked(&[("blue-green", &report, &marks)]);
        assert_eq!(page.matches("class=\"marks\"").count(), 1);
        assert!(page.contains(">1 switch traffic to v2</text>"));
        assert!(page.contains(">2 error-rate 0.0% &lt;= 1% pass</text>"));
        assert!(page.contains("stroke=\"#2ca02c\" stroke-dasharray"));
        assert_eq!(page.matches(" stroke-dasharray").count(), 6);
    }

    #[test]
    fn steps_merge_equal_neighbours() {
        let timeline: Vec<TimelineBucket> = (0..4)
            .map(|i| TimelineBucket {
                t_s: i as f64,
                ..TimelineBucket::default()
            })
            .collect();
        let points = steps(&timeline, 1.0, &[1.0, 1.0, 2.0, 2.0]);
        assert_eq!(points, vec![(0.0, 1.0), (2.0, 1.0), (2.0, 2.0), (4.0, 2.0)]);
    }
}
