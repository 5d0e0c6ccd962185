//! A check's report as one self-contained page: the verdicts, the termination drawn on a time
//! line (inline SVG), the recommendation. Nothing is fetched from elsewhere.

use std::fmt::Write;

use super::measurements::{SlowOutcome, Termination};
use super::report::CheckReport;
use super::verdicts::{Verdict, human};

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1100px}\
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ccc}\
table{border-collapse:collapse;margin:6px 0}td,th{padding:4px 10px 4px 0;text-align:left;\
vertical-align:top;border-bottom:1px solid #eee}th{font-weight:600}code,pre{font:13px ui-monospace,monospace}\
pre{background:#f6f6f6;padding:10px}.pass{color:#070;font-weight:600}.fail{color:#b00;font-weight:700}\
.info{color:#05a;font-weight:600}.skipped{color:#888}.verdict{white-space:nowrap}\
svg text{font:11px system-ui,sans-serif;fill:#444}";

pub fn render_html(report: &CheckReport) -> String {
    let mut page = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>zdd check: {}</title><style>{STYLE}</style></head><body>\n\
         <h1>zdd check: <code>{}</code></h1>\n<p>{}</p>\n",
        escape(&report.command.join(" ")),
        escape(&report.command.join(" ")),
        escape(&report.assumptions())
    );
    for note in &report.notes {
        let _ = writeln!(page, "<p><em>note:</em> {}</p>", escape(note));
    }
    let _ = writeln!(
        page,
        "<p class=\"{}\">{}</p>",
        if report.passed { "pass" } else { "fail" },
        escape(&report.verdict_line())
    );
    page.push_str(
        "<table><tr><th>#</th><th>check</th><th>verdict</th><th>measured</th><th>fix</th></tr>\n",
    );
    for check in &report.checks {
        let class = match check.verdict {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Info => "info",
            Verdict::Skipped => "skipped",
        };
        let _ = writeln!(
            page,
            "<tr><td>{}</td><td>{}</td><td class=\"verdict {class}\">{}</td><td>{}</td><td>{}</td></tr>",
            check.number,
            escape(check.name),
            check.verdict,
            escape(&check.measured),
            escape(&check.fix)
        );
    }
    page.push_str("</table>\n");
    if let Some(termination) = &report.measurements.termination {
        page.push_str("<h2>The termination, on one time line</h2>\n");
        page.push_str(&timeline(report, termination));
    }
    if let Some(recommendation) = &report.recommendation {
        page.push_str("<h2>To paste into the Deployment</h2>\n");
        let _ = writeln!(page, "<pre>{}</pre>", escape(&recommendation.yaml));
    }
    page.push_str("</body></html>\n");
    page
}

/// One bar per thing that lasted: preStop, the router sending, the app accepting, the process,
/// the slow request; a line at SIGTERM.
fn timeline(report: &CheckReport, t: &Termination) -> String {
    let m = &report.measurements;
    let sigterm = t.sigterm_s.unwrap_or(t.terminating_s);
    let exit = t.exit_s.unwrap_or(sigterm);
    let mut bars: Vec<(String, f64, f64, &str)> = Vec::new();
    if sigterm - t.terminating_s > 0.01 {
        bars.push(("preStop sleep".into(), t.terminating_s, sigterm, "#999"));
    }
    if let Some(removal) = t.removal_s {
        bars.push((
            "the router still sends it requests".into(),
            t.terminating_s,
            removal,
            "#e8a33d",
        ));
    }
    if let Some(accepting) = t.accepting_after_sigterm_s() {
        bars.push((
            "it accepts connections".into(),
            sigterm,
            sigterm + accepting,
            "#4c9a4c",
        ));
    }
    let process = match (&t.exit, t.sigkill_s) {
        (_, Some(_)) => "the process runs (SIGKILLed)".to_owned(),
        (Some(how), None) => format!("the process runs (exit: {how})"),
        (None, None) => "the process runs".to_owned(),
    };
    bars.push((process, t.terminating_s, exit, "#5577aa"));
    if let Some(slow) = &m.slow {
        let color = match slow.outcome {
            SlowOutcome::Answered { status } if (200..400).contains(&status) => "#4c9a4c",
            _ => "#c33",
        };
        bars.push((
            format!("{} in flight", slow.path),
            slow.sent_s,
            slow.ended_s,
            color,
        ));
    }
    let from = bars.iter().map(|b| b.1).fold(sigterm, f64::min) - 0.2;
    let to = bars.iter().map(|b| b.2).fold(sigterm, f64::max) + 0.2;
    let (left, width, row) = (250.0, 800.0, 26.0);
    let x = |t_s: f64| left + (t_s - from) / (to - from) * width;
    let height = row * (bars.len() as f64 + 2.0);
    let mut svg = format!(
        "<svg width=\"{}\" height=\"{height}\" role=\"img\" aria-label=\"termination time line\">\n",
        left + width + 20.0
    );
    for (index, (label, start, end, color)) in bars.iter().enumerate() {
        let y = row * index as f64 + 8.0;
        let _ = writeln!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\
             <rect x=\"{:.1}\" y=\"{y}\" width=\"{:.1}\" height=\"14\" fill=\"{color}\">\
             <title>{}: {} to {} after SIGTERM</title></rect>",
            left - 8.0,
            y + 11.0,
            escape(label),
            x(*start),
            (x(*end) - x(*start)).max(2.0),
            escape(label),
            human(start - sigterm),
            human(end - sigterm)
        );
    }
    let axis_y = row * bars.len() as f64 + 10.0;
    let _ = writeln!(
        svg,
        "<line x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"0\" y2=\"{axis_y}\" stroke=\"#b00\" \
         stroke-dasharray=\"4 3\"/><text x=\"{0:.1}\" y=\"{1}\" text-anchor=\"middle\" \
         style=\"fill:#b00\">SIGTERM</text>",
        x(sigterm),
        axis_y + 14.0
    );
    let _ = writeln!(
        svg,
        "<text x=\"{left}\" y=\"{0}\">{1}</text><text x=\"{2}\" y=\"{0}\" text-anchor=\"end\">{3}</text>",
        axis_y + 30.0,
        escape(&format!("{} after SIGTERM", human(from - sigterm))),
        left + width,
        escape(&format!("{} after SIGTERM", human(to - sigterm)))
    );
    svg.push_str("</svg>\n");
    svg
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
