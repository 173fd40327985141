//! "Did you mean" for configuration files: turns the TOML reader's
//! "unknown field" message into one that names the nearest known key.

/// Levenshtein distance between two short ASCII-ish strings.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let current = row[j + 1];
            row[j + 1] = if ca == *cb {
                previous
            } else {
                1 + previous.min(row[j]).min(row[j + 1])
            };
            previous = current;
        }
    }
    row[b.len()]
}

/// The known key closest to `unknown`, if it is close enough to be a typo
/// (at most a third of its length, and at most three edits).
pub fn nearest<'k>(unknown: &str, known: impl IntoIterator<Item = &'k str>) -> Option<&'k str> {
    let limit = (unknown.chars().count() / 3).clamp(1, 3);
    known
        .into_iter()
        .map(|k| (distance(unknown, k), k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Rewrites serde's "unknown field `x`, expected one of `a`, `b`" (or
/// "expected `a` or `b`") as "unknown key `x`; did you mean `a`?", or as
/// "unknown key `x`; known keys: a, b" when nothing is close. Other
/// messages are returned unchanged. Also returns the unknown key.
pub fn unknown_key(message: &str) -> (String, Option<String>) {
    let Some(rest) = message.strip_prefix("unknown field `") else {
        return (message.to_owned(), None);
    };
    let Some((unknown, expected)) = rest.split_once('`') else {
        return (message.to_owned(), None);
    };
    let known: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    let text = match nearest(unknown, known.iter().copied()) {
        Some(close) => format!("unknown key `{unknown}`; did you mean `{close}`?"),
        None if known.is_empty() => format!("unknown key `{unknown}`"),
        None => format!("unknown key `{unknown}`; known keys: {}", known.join(", ")),
    };
    (text, Some(unknown.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_get_a_suggestion_and_strangers_the_list() {
        let msg =
            "unknown field `redirect_uri`, expected one of `client_id`, `redirect_uris`, `scopes`";
        let (text, key) = unknown_key(msg);
        assert_eq!(
            text,
            "unknown key `redirect_uri`; did you mean `redirect_uris`?"
        );
        assert_eq!(key.as_deref(), Some("redirect_uri"));
        let (text, _) = unknown_key("unknown field `colour`, expected `client_id` or `scopes`");
        assert_eq!(text, "unknown key `colour`; known keys: client_id, scopes");
        assert_eq!(
            unknown_key("invalid type: string").0,
            "invalid type: string"
        );
    }

    #[test]
    fn nearness_is_bounded() {
        assert_eq!(nearest("listn", ["listen", "issuer"]), Some("listen"));
        assert_eq!(nearest("x", ["listen"]), None);
        assert_eq!(
            nearest("acess_token_ttl", ["access_token_ttl", "code_ttl"]),
            Some("access_token_ttl")
        );
    }
}
