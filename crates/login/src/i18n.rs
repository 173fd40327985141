//! Translations: one TOML file per language under `templates/locales/`,
//! nested tables flattened to dotted keys (`[signin] title` → `signin.title`).
//!
//! The language is chosen by the `ui_locales` authorization parameter, then
//! the language switcher's cookie, then `Accept-Language`, then the default.

use std::collections::BTreeMap;

/// The languages shipped, with their locale files.
pub const EMBEDDED: &[(&str, &str)] = &[
    ("en", include_str!("../../../templates/locales/en.toml")),
    (
        "pt-BR",
        include_str!("../../../templates/locales/pt-BR.toml"),
    ),
    ("es", include_str!("../../../templates/locales/es.toml")),
];

/// All messages of all languages.
#[derive(Debug, Default)]
pub struct Catalog {
    languages: BTreeMap<String, BTreeMap<String, String>>,
    default: String,
}

/// A locale file that is not valid TOML or holds something but text.
#[derive(Debug, thiserror::Error)]
#[error("locale {lang}: {reason}")]
pub struct LocaleError {
    pub lang: String,
    pub reason: String,
}

fn flatten(
    prefix: &str,
    table: &toml::Table,
    out: &mut BTreeMap<String, String>,
    lang: &str,
) -> Result<(), LocaleError> {
    for (key, value) in table {
        let full = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            toml::Value::String(text) => {
                out.insert(full, text.clone());
            }
            toml::Value::Table(inner) => flatten(&full, inner, out, lang)?,
            _ => {
                let reason = format!("{full} must be text");
                return Err(LocaleError {
                    lang: lang.to_owned(),
                    reason,
                });
            }
        }
    }
    Ok(())
}

/// Year, month (1 to 12), day, hour and minute of a Unix time in UTC, in the
/// proleptic Gregorian calendar (Howard Hinnant's days-to-civil algorithm).
pub fn civil(t: i64) -> (i64, i64, i64, i64, i64) {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, secs / 3600, secs % 3600 / 60)
}

impl Catalog {
    /// A date and time the way `lang` writes them, in UTC: the pattern
    /// (`time.format`) and the month names (`time.months`) come from the
    /// locale file, so a translator can change both.
    pub fn date_time(&self, lang: &str, t: i64) -> String {
        let (year, month, day, hour, minute) = civil(t);
        let months: Vec<&str> = self.text(lang, "time.months").split_whitespace().collect();
        let name = usize::try_from(month - 1)
            .ok()
            .and_then(|m| months.get(m))
            .map_or_else(|| format!("{month:02}"), |n| (*n).to_owned());
        self.text(lang, "time.format")
            .replace("{day}", &day.to_string())
            .replace("{month}", &name)
            .replace("{year}", &year.to_string())
            .replace("{time}", &format!("{hour:02}:{minute:02}"))
    }

    /// Builds the catalogue from `(language, TOML source)` pairs.
    pub fn from_sources(sources: &[(&str, &str)], default: &str) -> Result<Self, LocaleError> {
        let mut catalog = Catalog {
            default: default.to_owned(),
            ..Default::default()
        };
        for (lang, source) in sources {
            let table: toml::Table = toml::from_str(source).map_err(|e| LocaleError {
                lang: lang.to_string(),
                reason: e.to_string(),
            })?;
            let mut messages = BTreeMap::new();
            flatten("", &table, &mut messages, lang)?;
            catalog.languages.insert(lang.to_string(), messages);
        }
        Ok(catalog)
    }

    pub fn embedded() -> Result<Self, LocaleError> {
        Self::from_sources(EMBEDDED, "en")
    }

    /// The message for `key` in `lang`, falling back to the default language,
    /// then to the key itself (visible, so a missing key is noticed).
    pub fn text<'a>(&'a self, lang: &str, key: &'a str) -> &'a str {
        self.languages
            .get(lang)
            .and_then(|m| m.get(key))
            .or_else(|| self.languages.get(&self.default).and_then(|m| m.get(key)))
            .map(String::as_str)
            .unwrap_or(key)
    }

    pub fn languages(&self) -> impl Iterator<Item = &str> {
        self.languages.keys().map(String::as_str)
    }

    /// Keys present in the default language but missing in `lang`.
    pub fn missing_keys(&self, lang: &str) -> Vec<&str> {
        let Some(base) = self.languages.get(&self.default) else {
            return vec![];
        };
        let other = self.languages.get(lang);
        base.keys()
            .filter(|k| other.is_none_or(|o| !o.contains_key(*k)))
            .map(String::as_str)
            .collect()
    }

    /// Picks the first supported language from preference lists, in order.
    /// `accept_language` is an HTTP `Accept-Language` value (RFC 9110 12.5.4).
    pub fn negotiate(&self, preferred: &[&str], accept_language: Option<&str>) -> String {
        let mut wanted: Vec<String> = preferred.iter().map(|s| s.to_string()).collect();
        if let Some(header) = accept_language {
            let mut ranked: Vec<(f32, String)> = header
                .split(',')
                .filter_map(|part| {
                    let mut pieces = part.trim().split(';');
                    let tag = pieces.next()?.trim().to_owned();
                    let q = pieces
                        .find_map(|p| p.trim().strip_prefix("q=").and_then(|q| q.parse().ok()))
                        .unwrap_or(1.0);
                    (!tag.is_empty() && q > 0.0).then_some((q, tag))
                })
                .collect();
            ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
            wanted.extend(ranked.into_iter().map(|(_, tag)| tag));
        }
        wanted
            .iter()
            .find_map(|tag| self.supported(tag))
            .unwrap_or_else(|| self.default.clone())
    }

    /// The supported language matching a BCP 47 tag: exact (case-insensitive),
    /// then by primary subtag (`pt-PT` → `pt-BR`, `es-MX` → `es`).
    fn supported(&self, tag: &str) -> Option<String> {
        let exact = self.languages.keys().find(|l| l.eq_ignore_ascii_case(tag));
        let primary = tag.split('-').next().unwrap_or(tag);
        exact
            .or_else(|| {
                self.languages.keys().find(|l| {
                    l.split('-')
                        .next()
                        .is_some_and(|p| p.eq_ignore_ascii_case(primary))
                })
            })
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        Catalog::from_sources(
            &[
                ("en", "[a]\nb = \"Hello\"\nc = \"Only en\"\n"),
                ("pt-BR", "[a]\nb = \"Olá\"\n"),
            ],
            "en",
        )
        .unwrap()
    }

    #[test]
    fn keys_fall_back_to_the_default_language_then_the_key() {
        let c = catalog();
        assert_eq!(c.text("pt-BR", "a.b"), "Olá");
        assert_eq!(c.text("pt-BR", "a.c"), "Only en");
        assert_eq!(c.text("pt-BR", "a.x"), "a.x");
        assert_eq!(c.missing_keys("pt-BR"), ["a.c"]);
    }

    #[test]
    fn negotiation_prefers_explicit_then_accept_language() {
        let c = catalog();
        assert_eq!(c.negotiate(&["pt-BR"], Some("en")), "pt-BR");
        assert_eq!(
            c.negotiate(&["fr"], Some("fr-FR, pt;q=0.8, en;q=0.5")),
            "pt-BR"
        );
        assert_eq!(c.negotiate(&[], Some("de")), "en");
        assert_eq!(c.negotiate(&[], Some("en;q=0, pt")), "pt-BR");
    }

    #[test]
    fn dates_are_written_in_each_language() {
        let c = Catalog::embedded().unwrap();
        assert_eq!(civil(951_782_400), (2000, 2, 29, 0, 0));
        assert_eq!(
            c.date_time("en", 1_796_403_468),
            "December 4, 2026, 16:57 UTC"
        );
        assert_eq!(
            c.date_time("pt-BR", 1_796_403_468),
            "4 de dezembro de 2026, 16:57 UTC"
        );
        assert_eq!(c.date_time("es", 0), "1 de enero de 1970, 00:00 UTC");
    }

    #[test]
    fn every_shipped_language_has_every_key() {
        let c = Catalog::embedded().unwrap();
        for lang in c.languages() {
            assert!(
                c.missing_keys(lang).is_empty(),
                "{lang}: {:?}",
                c.missing_keys(lang)
            );
        }
    }
}
