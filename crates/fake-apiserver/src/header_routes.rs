//! Header routes as the fake data plane follows them, so that a request's headers decide its
//! version as they would in the cluster:
//! - an IngressRoute `<name>`'s routes to a Service whose `match` has `Header`/`HeaderRegexp`
//!   matchers (zdd's own syntax: Go string literals, JSON-quoted), highest priority first;
//! - an HTTPRoute `<name>`'s rules with header matches and one backend, the most header matches
//!   first, then in list order (the Gateway API's precedence).
//!
//! Routes to a TraefikService and rules with several backends (a mirror's) are left to the
//! weights; mirrors are not followed (the fake sends no copies).

use axum::http::HeaderMap;
use regex::Regex;
use serde_json::Value;

/// A condition on one header, any of whose values may satisfy it.
enum Test {
    Exact(String),
    /// Found anywhere in the value (Traefik's `HeaderRegexp`); zdd anchors its patterns.
    Regex(Regex),
}

/// Requests whose every condition holds go to `service`.
pub(crate) struct HeaderRoute {
    conditions: Vec<(String, Test)>,
    service: String,
}

impl HeaderRoute {
    fn matches(&self, headers: &HeaderMap) -> bool {
        self.conditions.iter().all(|(name, test)| {
            headers
                .get_all(name.as_str())
                .iter()
                .filter_map(|value| value.to_str().ok())
                .any(|value| match test {
                    Test::Exact(exact) => value == exact,
                    Test::Regex(regex) => regex.is_match(value),
                })
        })
    }
}

/// The service of the first route that takes a request with `headers`.
pub(crate) fn route<'a>(routes: &'a [HeaderRoute], headers: &HeaderMap) -> Option<&'a str> {
    routes
        .iter()
        .find(|route| route.matches(headers))
        .map(|route| route.service.as_str())
}

/// The header routes of an IngressRoute, highest priority first.
pub(crate) fn of_ingress_route(object: &Value) -> Vec<HeaderRoute> {
    let mut routes: Vec<(i64, HeaderRoute)> = object["spec"]["routes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|route| {
            let [service] = route["services"].as_array()?.as_slice() else {
                return None;
            };
            if service["kind"].as_str().unwrap_or("Service") != "Service" {
                return None;
            }
            let conditions = traefik_conditions(route["match"].as_str()?)?;
            let priority = route["priority"].as_i64().unwrap_or(0);
            let service = service["name"].as_str()?.to_owned();
            Some((
                priority,
                HeaderRoute {
                    conditions,
                    service,
                },
            ))
        })
        .collect();
    routes.sort_by_key(|(priority, _)| -priority);
    routes.into_iter().map(|(_, route)| route).collect()
}

/// `Header("name", "value")` and `HeaderRegexp("name", "regex")` in a Traefik rule (joined with
/// `&&`); `None` without any, or when the rule says something else this fake does not follow.
fn traefik_conditions(rule: &str) -> Option<Vec<(String, Test)>> {
    let mut conditions = Vec::new();
    let mut rest = rule;
    while let Some(at) = rest.find("Header") {
        rest = &rest[at + "Header".len()..];
        let regex = rest.starts_with("Regexp(");
        rest = rest.strip_prefix(if regex { "Regexp(" } else { "(" })?;
        let (name, after) = string_literal(rest)?;
        let (value, after) = string_literal(after.trim_start().strip_prefix(',')?.trim_start())?;
        rest = after.strip_prefix(')')?;
        let test = if regex {
            Test::Regex(Regex::new(&value).ok()?)
        } else {
            Test::Exact(value)
        };
        conditions.push((name.to_ascii_lowercase(), test));
    }
    (!conditions.is_empty()).then_some(conditions)
}

/// A JSON-quoted string at the start of `text`, and what follows it.
fn string_literal(text: &str) -> Option<(String, &str)> {
    let mut values = serde_json::Deserializer::from_str(text).into_iter::<String>();
    let value = values.next()?.ok()?;
    Some((value, &text[values.byte_offset()..]))
}

/// The header-matched rules of an HTTPRoute, in the Gateway API's order of precedence.
pub(crate) fn of_http_route(object: &Value) -> Vec<HeaderRoute> {
    let mut routes: Vec<HeaderRoute> = object["spec"]["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|rule| {
            let [backend] = rule["backendRefs"].as_array()?.as_slice() else {
                return None;
            };
            let headers = rule["matches"][0]["headers"].as_array()?;
            let conditions = headers
                .iter()
                .map(|header| {
                    let name = header["name"].as_str()?.to_ascii_lowercase();
                    let value = header["value"].as_str()?;
                    let test = match header["type"].as_str().unwrap_or("Exact") {
                        "RegularExpression" => Test::Regex(Regex::new(value).ok()?),
                        _ => Test::Exact(value.to_owned()),
                    };
                    Some((name, test))
                })
                .collect::<Option<Vec<_>>>()?;
            let service = backend["name"].as_str()?.to_owned();
            (!conditions.is_empty()).then_some(HeaderRoute {
                conditions,
                service,
            })
        })
        .collect();
    // Stable: rules with as many header matches keep their list order.
    routes.sort_by_key(|route| std::cmp::Reverse(route.conditions.len()));
    routes
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn ingress_route_header_routes_by_priority() {
        let object = json!({"spec": {"routes": [
            {"match": "PathPrefix(`/`)", "services": [{"name": "web", "kind": "TraefikService"}]},
            {"match": r#"PathPrefix(`/`) && Header("X-Canary", "a\"b") && HeaderRegexp("Cookie", "^(?:.*;\\s*)?g=b\\s*(?:;.*)?$")"#,
             "priority": 2000, "services": [{"name": "web-v2", "port": 80}]},
            {"match": r#"PathPrefix(`/`) && HeaderRegexp("X-Canary", "^(?:a.*)$")"#,
             "priority": 1999, "services": [{"name": "web-v3", "port": 80}]},
        ]}});
        let routes = of_ingress_route(&object);
        assert_eq!(routes.len(), 2);
        let to = |pairs| route(&routes, &headers(pairs));
        assert_eq!(
            to(&[("x-canary", "a\"b"), ("cookie", "x=1; g=b")]),
            Some("web-v2")
        );
        assert_eq!(to(&[("x-canary", "a\"b")]), Some("web-v3"));
        assert_eq!(to(&[("x-canary", "b")]), None);
        assert_eq!(to(&[]), None);
    }

    #[test]
    fn http_route_header_rules_most_matches_first() {
        let object = json!({"spec": {"rules": [
            {"backendRefs": [{"name": "web-v1"}, {"name": "web-v2"}]},
            {"matches": [{"headers": [{"type": "Exact", "name": "X-A", "value": "1"}]}],
             "backendRefs": [{"name": "web-v2"}]},
            {"matches": [{"headers": [
                {"type": "Exact", "name": "X-A", "value": "1"},
                {"type": "RegularExpression", "name": "X-B", "value": "^(?:2|3)$"},
            ]}], "backendRefs": [{"name": "web-v3"}]},
        ]}});
        let routes = of_http_route(&object);
        assert_eq!(
            route(&routes, &headers(&[("x-a", "1"), ("x-b", "3")])),
            Some("web-v3")
        );
        assert_eq!(route(&routes, &headers(&[("x-a", "1")])), Some("web-v2"));
        assert_eq!(route(&routes, &headers(&[("x-b", "3")])), None);
    }
}
