//! A managed route's request matches in each data plane's terms: the router's [`Matcher`] (the
//! builtin router, and what the others are written from), Traefik's rule syntax (local Traefik and
//! IngressRoute) and Gateway API header matches. Every regex here matches a whole value, as the
//! builtin router's do.

use serde_json::{Value, json};
use zdd_router::{Condition, Matcher, ValueMatch};

use crate::model::{self, RequestMatch};

/// The router's matcher for `matches` (all must hold).
pub fn router_matcher(matches: &[RequestMatch]) -> Matcher {
    let value = |value: &model::ValueMatch| match value {
        model::ValueMatch::Exact(text) => ValueMatch::Exact(text.clone()),
        model::ValueMatch::Regex(pattern) => ValueMatch::Regex(pattern.clone()),
    };
    Matcher::All(
        matches
            .iter()
            .map(|request_match| match request_match {
                RequestMatch::Header { name, value: v } => Condition::Header {
                    name: name.clone(),
                    value: value(v),
                },
                RequestMatch::Cookie { name, value: v } => Condition::Cookie {
                    name: name.clone(),
                    value: value(v),
                },
            })
            .collect(),
    )
}

/// A Go string literal (Traefik's rule values are Go strings): JSON's escapes are a subset of Go's.
fn go_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_owned())
}

/// `text` as a regexp (RE2, Go's and Rust's syntax) that matches it literally: both accept `\`
/// before any punctuation.
fn regex_literal(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii_punctuation() {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// `pattern` anchored: Traefik's `HeaderRegexp` finds a match anywhere in the value, some
/// gateways need the whole value to match; anchored, both mean the whole value.
fn whole(pattern: &str) -> String {
    format!("^(?:{pattern})$")
}

/// A regex on the whole `Cookie` header that holds when the cookie `name` has a value `value`
/// matches: the cookie starts the header or follows a `;`, and ends it or is followed by one.
/// (A regex value that matches `;` could run on into the next cookie: the data plane sees the
/// whole header.)
fn cookie_pattern(name: &str, value: &ValueMatch) -> String {
    let value = match value {
        ValueMatch::Exact(value) => regex_literal(value),
        ValueMatch::Regex(pattern) => format!("(?:{pattern})"),
    };
    format!(r"^(?:.*;\s*)?{}={value}\s*(?:;.*)?$", regex_literal(name))
}

fn traefik_condition(condition: &Condition) -> String {
    match condition {
        Condition::Header {
            name,
            value: ValueMatch::Exact(value),
        } => format!("Header({}, {})", go_string(name), go_string(value)),
        Condition::Header {
            name,
            value: ValueMatch::Regex(pattern),
        } => format!(
            "HeaderRegexp({}, {})",
            go_string(name),
            go_string(&whole(pattern))
        ),
        Condition::Cookie { name, value } => format!(
            "HeaderRegexp(\"Cookie\", {})",
            go_string(&cookie_pattern(name, value))
        ),
    }
}

/// A Traefik rule that takes the requests `matcher` takes.
pub fn traefik_rule(matcher: &Matcher) -> String {
    let mut rule = "PathPrefix(`/`)".to_owned();
    if let Matcher::All(conditions) = matcher {
        for condition in conditions {
            rule.push_str(" && ");
            rule.push_str(&traefik_condition(condition));
        }
    }
    rule
}

/// An HTTPRoute match (`path` and `headers`) that takes the requests `matcher` takes. The Gateway
/// API considers only the first of several header matches on one name, so two conditions on the
/// same header (two cookies) cannot be expressed: the error names the header.
pub fn gateway_match(matcher: &Matcher) -> Result<Value, String> {
    let conditions = match matcher {
        Matcher::Always => &[][..],
        Matcher::All(conditions) => conditions.as_slice(),
    };
    let mut headers: Vec<Value> = Vec::new();
    for condition in conditions {
        let (name, kind, value) = match condition {
            Condition::Header {
                name,
                value: ValueMatch::Exact(value),
            } => (name.as_str(), "Exact", value.clone()),
            Condition::Header {
                name,
                value: ValueMatch::Regex(pattern),
            } => (name.as_str(), "RegularExpression", whole(pattern)),
            Condition::Cookie { name, value } => {
                ("Cookie", "RegularExpression", cookie_pattern(name, value))
            }
        };
        let taken = headers.iter().any(|h| {
            h["name"]
                .as_str()
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
        });
        if taken {
            return Err(format!(
                "the Gateway API takes one match per header, and this route has two on {name}"
            ));
        }
        headers.push(json!({"type": kind, "name": name, "value": value}));
    }
    Ok(json!({"path": {"type": "PathPrefix", "value": "/"}, "headers": headers}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(name: &str, value: ValueMatch) -> Condition {
        Condition::Header {
            name: name.into(),
            value,
        }
    }

    fn cookie(name: &str, value: ValueMatch) -> Condition {
        Condition::Cookie {
            name: name.into(),
            value,
        }
    }

    #[test]
    fn traefik_rules_quote_values_anchor_regexes_and_isolate_cookies() {
        assert_eq!(traefik_rule(&Matcher::Always), "PathPrefix(`/`)");
        let rule = traefik_rule(&Matcher::All(vec![
            header("X-Canary", ValueMatch::Exact("al\"ways`".into())),
            header("X-User", ValueMatch::Regex("beta-\\d+|qa".into())),
            cookie("group", ValueMatch::Exact("b.1".into())),
        ]));
        assert_eq!(
            rule,
            r#"PathPrefix(`/`) && Header("X-Canary", "al\"ways`") && HeaderRegexp("X-User", "^(?:beta-\\d+|qa)$") && HeaderRegexp("Cookie", "^(?:.*;\\s*)?group=b\\.1\\s*(?:;.*)?$")"#
        );
    }

    /// The cookie pattern, tried with the router's own regex engine (RE2 syntax, as Go's).
    #[test]
    fn the_cookie_pattern_finds_the_cookie_among_the_others() {
        let exact =
            regex::Regex::new(&cookie_pattern("group", &ValueMatch::Exact("b.1".into()))).unwrap();
        for (header, holds) in [
            ("group=b.1", true),
            ("session=9; group=b.1; theme=dark", true),
            ("session=9;group=b.1", true),
            ("group=bx1", false),
            ("group=b.12", false),
            ("mygroup=b.1", false),
            ("group=b.1x; a=1", false),
        ] {
            assert_eq!(exact.is_match(header), holds, "{header}");
        }
        let pattern = cookie_pattern("user", &ValueMatch::Regex("test-[0-9]+|qa".into()));
        let regex = regex::Regex::new(&pattern).unwrap();
        assert!(regex.is_match("a=1; user=qa"));
        assert!(regex.is_match("user=test-7; b=2"));
        assert!(!regex.is_match("user=qa2"));
    }

    #[test]
    fn gateway_matches_are_exact_or_anchored_regexes_one_per_header() {
        let matched = gateway_match(&Matcher::All(vec![
            header("X-Canary", ValueMatch::Exact("always".into())),
            header("X-User", ValueMatch::Regex("beta-.*".into())),
            cookie("group", ValueMatch::Exact("b".into())),
        ]))
        .unwrap();
        assert_eq!(
            matched,
            json!({"path": {"type": "PathPrefix", "value": "/"}, "headers": [
                {"type": "Exact", "name": "X-Canary", "value": "always"},
                {"type": "RegularExpression", "name": "X-User", "value": "^(?:beta-.*)$"},
                {"type": "RegularExpression", "name": "Cookie", "value": r"^(?:.*;\s*)?group=b\s*(?:;.*)?$"},
            ]})
        );
        let two_cookies = Matcher::All(vec![
            cookie("a", ValueMatch::Exact("1".into())),
            cookie("b", ValueMatch::Exact("2".into())),
        ]);
        let err = gateway_match(&two_cookies).unwrap_err();
        assert!(err.contains("two on Cookie"), "{err}");
    }
}
