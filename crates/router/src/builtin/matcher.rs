//! A rule's matcher as the hot path reads it: header names parsed and regexes compiled when the
//! table is applied; per request, exact values are compared as bytes and cookies are found in the
//! `Cookie` header without allocating.

use http::HeaderMap;
use http::header::{COOKIE, HeaderName};
use regex::bytes::{Regex, RegexBuilder};

use crate::{Condition, Matcher, ValueMatch};

pub(super) enum CompiledMatcher {
    Always,
    /// Every condition holds.
    All(Box<[CompiledCondition]>),
}

pub(super) enum CompiledCondition {
    Header(HeaderName, ValueTest),
    Cookie(Box<[u8]>, ValueTest),
    /// A header name no request can carry, or a regex that does not compile.
    Never,
}

pub(super) enum ValueTest {
    Exact(Box<[u8]>),
    /// Anchored at both ends: it matches the whole value.
    Regex(Regex),
}

impl ValueTest {
    fn compile(value: &ValueMatch) -> Option<ValueTest> {
        Some(match value {
            ValueMatch::Exact(text) => ValueTest::Exact(text.as_bytes().into()),
            ValueMatch::Regex(pattern) => {
                let anchored = format!("^(?:{pattern})$");
                match RegexBuilder::new(&anchored).build() {
                    Ok(regex) => ValueTest::Regex(regex),
                    Err(err) => {
                        tracing::warn!(
                            "regex {pattern:?} does not compile, it matches nothing: {err}"
                        );
                        return None;
                    }
                }
            }
        })
    }

    fn matches(&self, value: &[u8]) -> bool {
        match self {
            ValueTest::Exact(exact) => **exact == *value,
            ValueTest::Regex(regex) => regex.is_match(value),
        }
    }
}

impl CompiledMatcher {
    pub(super) fn compile(matcher: &Matcher) -> CompiledMatcher {
        match matcher {
            Matcher::Always => CompiledMatcher::Always,
            Matcher::All(conditions) => {
                CompiledMatcher::All(conditions.iter().map(CompiledCondition::compile).collect())
            }
        }
    }

    pub(super) fn matches(&self, headers: &HeaderMap) -> bool {
        match self {
            CompiledMatcher::Always => true,
            CompiledMatcher::All(conditions) => conditions.iter().all(|c| c.matches(headers)),
        }
    }
}

impl CompiledCondition {
    fn compile(condition: &Condition) -> CompiledCondition {
        let compiled = match condition {
            Condition::Header { name, value } => HeaderName::try_from(name.as_str())
                .ok()
                .zip(ValueTest::compile(value))
                .map(|(name, test)| CompiledCondition::Header(name, test)),
            Condition::Cookie { name, value } => ValueTest::compile(value)
                .map(|test| CompiledCondition::Cookie(name.as_bytes().into(), test)),
        };
        compiled.unwrap_or(CompiledCondition::Never)
    }

    fn matches(&self, headers: &HeaderMap) -> bool {
        match self {
            CompiledCondition::Header(name, test) => headers
                .get_all(name)
                .iter()
                .any(|value| test.matches(value.as_bytes())),
            CompiledCondition::Cookie(name, test) => headers.get_all(COOKIE).iter().any(|value| {
                cookies(value.as_bytes()).any(|(key, value)| key == &**name && test.matches(value))
            }),
            CompiledCondition::Never => false,
        }
    }
}

/// The `name=value` pairs of a `Cookie` header (RFC 6265 5.4: separated by `; `), as slices of it.
fn cookies(header: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    header.split(|byte| *byte == b';').filter_map(|pair| {
        let pair = pair.trim_ascii();
        let at = pair.iter().position(|byte| *byte == b'=')?;
        Some((pair[..at].trim_ascii(), pair[at + 1..].trim_ascii()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    fn condition(header: bool, name: &str, value: ValueMatch) -> Matcher {
        let name = name.to_owned();
        Matcher::All(vec![if header {
            Condition::Header { name, value }
        } else {
            Condition::Cookie { name, value }
        }])
    }

    fn exact(text: &str) -> ValueMatch {
        ValueMatch::Exact(text.into())
    }

    fn regex(text: &str) -> ValueMatch {
        ValueMatch::Regex(text.into())
    }

    #[test]
    fn header_exact_and_regex_match_a_whole_value_of_any_occurrence() {
        let canary = CompiledMatcher::compile(&Matcher::header("X-Canary", "always"));
        assert!(canary.matches(&headers(&[("x-canary", "always")])));
        assert!(canary.matches(&headers(&[("x-canary", "no"), ("x-canary", "always")])));
        assert!(!canary.matches(&headers(&[("x-canary", "always!")])));
        assert!(!canary.matches(&headers(&[("x-canary", "Always")])));
        assert!(!canary.matches(&headers(&[])));
        let beta = CompiledMatcher::compile(&condition(true, "x-user", regex("beta-[0-9]+")));
        assert!(beta.matches(&headers(&[("x-user", "beta-42")])));
        assert!(!beta.matches(&headers(&[("x-user", "beta-42x")])));
        assert!(!beta.matches(&headers(&[("x-user", "xbeta-42")])));
        // Alternatives stay inside the anchors.
        let either = CompiledMatcher::compile(&condition(true, "x-user", regex("a|b")));
        assert!(!either.matches(&headers(&[("x-user", "ab")])));
        assert!(either.matches(&headers(&[("x-user", "b")])));
    }

    #[test]
    fn cookie_values_are_found_among_the_others() {
        let group = CompiledMatcher::compile(&condition(false, "group", exact("b")));
        assert!(group.matches(&headers(&[("cookie", "group=b")])));
        assert!(group.matches(&headers(&[("cookie", "session=1; group=b; theme=dark")])));
        assert!(group.matches(&headers(&[("cookie", "a=1"), ("cookie", "group=b")])));
        assert!(!group.matches(&headers(&[("cookie", "group=bb; x=b")])));
        assert!(!group.matches(&headers(&[("cookie", "mygroup=b")])));
        assert!(!group.matches(&headers(&[("x-group", "b")])));
        let tester = CompiledMatcher::compile(&condition(false, "user", regex("test-.*")));
        assert!(tester.matches(&headers(&[("cookie", "a=1;user=test-7")])));
        assert!(!tester.matches(&headers(&[("cookie", "user=prod-1; b=test-2")])));
    }

    #[test]
    fn every_condition_must_hold_and_broken_ones_match_nothing() {
        let both = CompiledMatcher::compile(&Matcher::All(vec![
            Condition::Header {
                name: "x-a".into(),
                value: exact("1"),
            },
            Condition::Cookie {
                name: "b".into(),
                value: exact("2"),
            },
        ]));
        assert!(both.matches(&headers(&[("x-a", "1"), ("cookie", "b=2")])));
        assert!(!both.matches(&headers(&[("x-a", "1")])));
        assert!(!both.matches(&headers(&[("cookie", "b=2")])));
        let bad_regex = CompiledMatcher::compile(&condition(true, "x-a", regex("(")));
        assert!(!bad_regex.matches(&headers(&[("x-a", "(")])));
        let bad_name = CompiledMatcher::compile(&condition(true, "not a name", exact("1")));
        assert!(!bad_name.matches(&headers(&[])));
        assert!(CompiledMatcher::compile(&Matcher::All(vec![])).matches(&headers(&[])));
    }
}
