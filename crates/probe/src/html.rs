//! The self-contained HTML report.

use crate::{Event, Report};

/// One self-contained HTML page, one section per run (the demo puts five on one page).
pub fn render_html(_sections: &[(&str, &Report, &[Event])]) -> String {
    String::new()
}
