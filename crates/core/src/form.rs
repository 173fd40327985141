//! Form and query parameters as the specs see them: `application/x-www-form-urlencoded`
//! pairs in which a parameter may appear at most once (RFC 6749 3.1, 3.2).

use std::collections::HashMap;

/// Parsed parameters; a parameter sent more than once is remembered as such.
#[derive(Debug, Default)]
pub struct Params {
    values: HashMap<String, String>,
    duplicated: Vec<String>,
}

impl Params {
    pub fn parse(raw: &[u8]) -> Self {
        let mut params = Params::default();
        for (name, value) in form_urlencoded::parse(raw) {
            if params.values.contains_key(name.as_ref()) {
                if !params.duplicated.iter().any(|d| d == name.as_ref()) {
                    params.duplicated.push(name.into_owned());
                }
            } else {
                params.values.insert(name.into_owned(), value.into_owned());
            }
        }
        params
    }

    /// The value of `name`; an empty value counts as absent (RFC 6749 3.1:
    /// "parameters sent without a value MUST be treated as if they were
    /// omitted").
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn is_duplicated(&self, name: &str) -> bool {
        self.duplicated.iter().any(|d| d == name)
    }

    /// The first parameter sent more than once, if any.
    pub fn first_duplicate(&self) -> Option<&str> {
        self.duplicated.first().map(String::as_str)
    }

    /// Space-separated list parameter (`scope`, `prompt`, `ui_locales`).
    pub fn list(&self, name: &str) -> Vec<String> {
        self.get(name)
            .map(|v| {
                v.split(' ')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_detected_and_empty_values_are_absent() {
        let p = Params::parse(b"a=1&b=&a=2&c=x%20y");
        assert!(p.is_duplicated("a"));
        assert_eq!(p.first_duplicate(), Some("a"));
        assert_eq!(p.get("a"), Some("1"));
        assert_eq!(p.get("b"), None);
        assert_eq!(p.get("c"), Some("x y"));
    }

    #[test]
    fn lists_split_on_spaces() {
        let p = Params::parse(b"scope=openid++profile%20email");
        assert_eq!(p.list("scope"), ["openid", "profile", "email"]);
    }
}
