//! Feature flags: a dark launch inside one version. `FEATURES` sets them at start, the admin
//! toggles (`/admin/features`) at runtime, and with `FEATURE_OVERRIDE=1` one request can change
//! its own set with `X-Features: a,-b`. `GET /` names the features it answered with.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;

/// The per-request override header.
pub const FEATURES_HEADER: &str = "x-features";
/// The `X-Features` answer value when no feature is on (`-` cannot start a name).
pub const NO_FEATURES: &str = "-";
const MAX_NAME: usize = 64;

/// The features switched on, shared by every request.
#[derive(Debug, Default)]
pub struct Features {
    active: RwLock<BTreeSet<String>>,
}

impl Features {
    pub fn new(active: BTreeSet<String>) -> Self {
        Self {
            active: RwLock::new(active),
        }
    }

    pub fn active(&self) -> BTreeSet<String> {
        self.active
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn change(&self, enable: &BTreeSet<String>, disable: &BTreeSet<String>) -> BTreeSet<String> {
        let mut active = self.active.write().unwrap_or_else(|e| e.into_inner());
        active.extend(enable.iter().cloned());
        active.retain(|name| !disable.contains(name));
        active.clone()
    }
}

/// A name: 1 to 64 of `A-Z a-z 0-9 _ . -`, starting with a letter or digit.
fn check_name(name: &str) -> Result<(), String> {
    let valid = name.len() <= MAX_NAME
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a feature name (1 to {MAX_NAME} of A-Z a-z 0-9 _ . -, starting with a letter or digit)"
        ))
    }
}

/// `FEATURES` and the admin toggles' lists: comma-separated names, blanks ignored.
pub fn parse_names(source: &str, value: &str) -> Result<BTreeSet<String>, String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(|name| {
            check_name(name)
                .map(|()| name.to_owned())
                .map_err(|error| format!("{source}={value:?}: {error}"))
        })
        .collect()
}

/// Applies an `X-Features` value to `base`, left to right: `name` or `+name` switches a feature
/// on for this request, `-name` off; blanks between commas are ignored.
pub fn apply_override(base: &mut BTreeSet<String>, header: &str) -> Result<(), String> {
    for item in header.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (on, name) = match item.as_bytes()[0] {
            b'-' => (false, &item[1..]),
            b'+' => (true, &item[1..]),
            _ => (true, item),
        };
        check_name(name).map_err(|error| format!("X-Features: {header:?}: {error}"))?;
        if on {
            base.insert(name.to_owned());
        } else {
            base.remove(name);
        }
    }
    Ok(())
}

/// The `X-Features` answer header's value.
pub fn header_value(active: &BTreeSet<String>) -> String {
    if active.is_empty() {
        NO_FEATURES.to_owned()
    } else {
        active.iter().cloned().collect::<Vec<_>>().join(",")
    }
}

#[derive(Serialize)]
struct FeaturesView {
    features: BTreeSet<String>,
}

/// `GET /admin/features` lists them; `POST /admin/features?enable=a,b&disable=c` switches.
pub fn admin_routes(features: Arc<Features>) -> Router {
    Router::new()
        .route("/admin/features", get(show).post(set))
        .with_state(features)
}

async fn show(State(features): State<Arc<Features>>) -> Response {
    Json(FeaturesView {
        features: features.active(),
    })
    .into_response()
}

async fn set(
    State(features): State<Arc<Features>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    const USAGE: &str = "use enable=NAME,... and/or disable=NAME,...";
    if let Some(unknown) = query
        .keys()
        .find(|key| !matches!(key.as_str(), "enable" | "disable"))
    {
        return crate::bad_request(&format!("unknown parameter {unknown:?}: {USAGE}"));
    }
    let list = |key: &str| parse_names(key, query.get(key).map_or("", String::as_str));
    let (enable, disable) = match (list("enable"), list("disable")) {
        (Ok(enable), Ok(disable)) => (enable, disable),
        (Err(message), _) | (_, Err(message)) => return crate::bad_request(&message),
    };
    if enable.is_empty() && disable.is_empty() {
        return crate::bad_request(&format!("nothing to switch: {USAGE}"));
    }
    if let Some(both) = enable.intersection(&disable).next() {
        return crate::bad_request(&format!("{both:?} is both enabled and disabled"));
    }
    let active = features.change(&enable, &disable);
    tracing::info!(?enable, ?disable, ?active, "features switched");
    Json(FeaturesView { features: active }).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    #[test]
    fn names_are_checked() {
        assert_eq!(
            parse_names("FEATURES", " new-checkout, ,dark_mode.v2 "),
            Ok(set(&["dark_mode.v2", "new-checkout"]))
        );
        assert_eq!(parse_names("FEATURES", ""), Ok(set(&[])));
        for bad in ["-x", "a b", "café", "x/y", &"n".repeat(65)] {
            let error = parse_names("FEATURES", bad).unwrap_err();
            assert!(error.starts_with("FEATURES="), "{error}");
        }
    }

    #[test]
    fn an_override_adds_and_removes_left_to_right() {
        let mut active = set(&["a", "b"]);
        apply_override(&mut active, "c, -a, +d,,-zz").unwrap();
        assert_eq!(active, set(&["b", "c", "d"]));
        apply_override(&mut active, "-c,c").unwrap();
        assert!(active.contains("c"));
        for bad in ["-", "+", "--a", "a b"] {
            let error = apply_override(&mut active, bad).unwrap_err();
            assert!(error.starts_with("X-Features:"), "{error}");
        }
        assert_eq!(header_value(&set(&[])), "-");
        assert_eq!(header_value(&set(&["b", "a"])), "a,b");
    }
}
