//! What the YAML library says about a spec it cannot read, in its reader's words: one message
//! with the field path and what to do, its position given once (by [`super::SpecError`]).

/// Rewrites serde-saphyr's `message` about the field at `path` (`app.?` for a key of `app`).
/// Returns the path to show and the message.
pub(super) fn in_users_words(path: &str, message: &str) -> (String, String) {
    let message = strip_position(message);
    let parent = path.strip_suffix(".?").or_else(|| path.strip_suffix('?'));
    let parent = parent.map(|p| p.trim_end_matches('.'));
    let join = |parent: &str, key: &str| {
        if parent.is_empty() {
            key.to_string()
        } else {
            format!("{parent}.{key}")
        }
    };
    if let Some(rest) = message.strip_prefix("duplicate mapping key: ") {
        let key = rest.split(',').next().unwrap_or(rest).trim();
        let at = join(parent.unwrap_or(path), key);
        return (at, format!("`{key}` is written twice here; keep one"));
    }
    if let Some((unknown, allowed)) = between_backticks_then_list(message, "unknown field ") {
        let hint = closest(&unknown, &allowed)
            .map(|near| format!("did you mean `{near}`? "))
            .unwrap_or_default();
        return (
            path.to_string(),
            format!(
                "unknown field `{unknown}`: {hint}allowed here: {}",
                allowed.join(", ")
            ),
        );
    }
    if let Some((unknown, allowed)) = between_backticks_then_list(message, "unknown variant ") {
        let hint = closest(&unknown, &allowed)
            .map(|near| format!("did you mean `{near}`? "))
            .unwrap_or_default();
        return (
            path.to_string(),
            format!(
                "unknown `{unknown}`: {hint}expected one of {}",
                allowed.join(", ")
            ),
        );
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or(rest);
        let at = join(path.trim_end_matches('.'), field);
        return (at, format!("missing: `{field}` is required here"));
    }
    let plain = match message {
        m if m.starts_with("invalid u") || m.starts_with("invalid i") => {
            "expected a whole number (0 or more)".to_string()
        }
        m if m.starts_with("invalid f") => "expected a number".to_string(),
        m if m.starts_with("invalid bool") => "expected true or false".to_string(),
        m if m.contains("expected mapping start") => {
            "expected a mapping (`key: value` lines, or `{ key: value }`)".to_string()
        }
        m if m.contains("expected sequence start") => {
            "expected a list (`- item` lines, or `[a, b]`)".to_string()
        }
        m if m.contains("unexpected end of input") => {
            "the spec ends early: it needs at least name, app, versions and strategy".to_string()
        }
        m if m.contains("expected end of mapping after enum variant value") => {
            "give exactly one strategy (recreate, rollingUpdate, blueGreen or canary)".to_string()
        }
        m if m.contains("untagged enum RawIntOrPercent") => {
            "expected a count (1) or a percentage (\"25%\")".to_string()
        }
        m if m.contains("untagged enum RawPause") => {
            "expected a duration (5s), { duration: 5s } or {} (until zdd promote)".to_string()
        }
        m => m.to_string(),
    };
    (parent.unwrap_or(path).to_string(), plain)
}

/// serde-saphyr appends ` at line L, column C`; the position is shown once, in front.
fn strip_position(message: &str) -> &str {
    match message.rfind(" at line ") {
        Some(at) if message[at..].contains(", column ") => &message[..at],
        _ => message,
    }
}

/// `unknown field `x`, expected one of a, b, c` → (`x`, [a, b, c]).
fn between_backticks_then_list(message: &str, prefix: &str) -> Option<(String, Vec<String>)> {
    let rest = message.strip_prefix(prefix)?.strip_prefix('`')?;
    let (name, rest) = rest.split_once('`')?;
    let list = rest
        .split_once("expected one of ")
        .or_else(|| rest.split_once("expected "))
        .map(|(_, list)| list)
        .unwrap_or_default();
    let allowed = list
        .split(',')
        .map(|item| item.trim().trim_matches('`').to_string())
        .filter(|item| !item.is_empty())
        .collect();
    Some((name.to_string(), allowed))
}

/// The allowed name nearest to `typed`, when it is near enough to be a typo.
fn closest<'a>(typed: &str, allowed: &'a [String]) -> Option<&'a str> {
    allowed
        .iter()
        .map(|name| {
            (
                edit_distance(&typed.to_lowercase(), &name.to_lowercase()),
                name,
            )
        })
        .filter(|(distance, name)| *distance <= (name.len() / 3).max(2))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, name)| name.as_str())
}

/// Levenshtein distance (insertions, deletions, substitutions).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != *cb);
            current.push(substitute.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_name_the_key_and_say_what_to_do() {
        let (path, message) = in_users_words(
            "app.?",
            "duplicate mapping key: replicas, set DuplicateKeyPolicy in Options if acceptable at line 5, column 3",
        );
        assert_eq!(path, "app.replicas");
        assert_eq!(message, "`replicas` is written twice here; keep one");
    }

    #[test]
    fn unknown_fields_suggest_the_nearest_and_keep_no_position() {
        let (path, message) = in_users_words(
            "app.replica",
            "unknown field `replica`, expected one of command, image, replicas, env at line 4, column 3",
        );
        assert_eq!(path, "app.replica");
        assert_eq!(
            message,
            "unknown field `replica`: did you mean `replicas`? allowed here: command, image, replicas, env"
        );
        let (_, far) = in_users_words(
            "x",
            "unknown field `zzzzzz`, expected one of command, image",
        );
        assert!(!far.contains("did you mean"), "{far}");
    }

    #[test]
    fn type_errors_say_what_is_expected() {
        let (path, message) = in_users_words("app.replicas", "invalid u32 at line 4, column 13");
        assert_eq!(path, "app.replicas");
        assert_eq!(message, "expected a whole number (0 or more)");
        let (_, message) = in_users_words("x", "invalid boolean at line 1, column 2");
        assert_eq!(message, "expected true or false");
    }

    #[test]
    fn missing_fields_name_their_path() {
        let (path, message) = in_users_words("", "missing field `name` at line 7, column 1");
        assert_eq!(path, "name");
        assert_eq!(message, "missing: `name` is required here");
    }
}
