//! The server's settings: a TOML file, then `ZAPINI_ID_*` environment
//! variables on top (`ZAPINI_ID_LISTEN` for `listen`,
//! `ZAPINI_ID_TOKENS__ACCESS_TOKEN_TTL` for `[tokens] access_token_ttl`).
//!
//! Relative paths are relative to the working directory. Unknown keys, in
//! the file or the environment, are errors.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::proxies::{Cidr, TrustedProxies};

/// Environment variables that start with the prefix but are not settings.
const NOT_SETTINGS: &[&str] = &[
    "ZAPINI_ID_SECRET",
    "ZAPINI_ID_CONFIG",
    "ZAPINI_ID_TEST_CLOCK_START",
];

const PREFIX: &str = "ZAPINI_ID_";

const DAY: i64 = 24 * 3600;

/// OIDC Core 2 / Discovery 3: a case-sensitive https URL with no query or
/// fragment; plain http only for a loopback host during development.
fn check_issuer(issuer: &str) -> anyhow::Result<()> {
    let url = url::Url::parse(issuer)
        .map_err(|e| anyhow::anyhow!("issuer: not a URL ({e}): {issuer:?}"))?;
    let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => bail!("issuer: must be an https URL (http only for localhost), got {issuer:?}"),
    }
    if issuer.ends_with('/') || url.query().is_some() || url.fragment().is_some() {
        bail!("issuer: no trailing slash, query or fragment, got {issuer:?}");
    }
    if !url.username().is_empty()
        || url.password().is_some()
        || issuer.chars().any(char::is_whitespace)
    {
        bail!("issuer: no user information or spaces, got {issuer:?}");
    }
    Ok(())
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The issuer identifier: the public URL of this server, no trailing slash.
    pub issuer: String,
    /// Address to listen on.
    pub listen: String,
    /// `sqlite://…` (the embedded default) or `postgres://…`.
    pub database_url: String,
    pub database_pool_size: u32,
    /// `redis://host:port/db` to keep the ephemeral state (sessions, login
    /// transactions, codes, throttling) in Redis, shared by every instance;
    /// unset keeps it in the database.
    pub redis_url: Option<String>,
    /// Where the master secret lives when `ZAPINI_ID_SECRET` is not set.
    pub secret_file: PathBuf,
    /// Folder of client files, one TOML file per client.
    pub clients_dir: PathBuf,
    /// Folder whose templates replace the embedded ones of the same name.
    pub templates_dir: Option<PathBuf>,
    /// Name shown on the hosted pages.
    pub product_name: String,
    /// The operator's logo for the page header (.svg, .png, .webp or .jpg,
    /// at most 256 KiB); the name's initial when unset.
    pub logo_file: Option<PathBuf>,
    /// `text` (default) or `json`.
    pub log_format: String,
    /// Address blocks (`10.0.0.0/8`, `127.0.0.1`) of the reverse proxies
    /// whose `X-Forwarded-For` gives the client's address. Empty: the
    /// header is ignored and the TCP peer is the client.
    pub trusted_proxies: Vec<String>,
    /// Seconds between publishing a rotated signing key and signing with it;
    /// longer than relying parties cache the JWKS.
    pub key_activation_delay: i64,
    /// Seconds between two looks for changed signing keys and client files
    /// (SIGHUP looks at once).
    pub reload_interval: i64,
    pub tokens: Tokens,
    pub session: Session,
    pub password: Password,
    pub login: Login,
    pub webauthn: WebAuthn,
}

/// Where passkeys work. Unset values follow the issuer: its host is the
/// relying-party id and its origin the one allowed origin.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebAuthn {
    /// The relying-party id: the issuer's host or a registrable domain above
    /// it (`example.com` lets `auth.example.com` serve passkeys for it).
    pub rp_id: Option<String>,
    /// The name authenticators show; the product name when unset.
    pub rp_name: Option<String>,
    /// Origins whose pages may use the passkeys (scheme, host, port).
    pub origins: Vec<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Login {
    /// Every password sign-in needs a second factor; users without one enrol
    /// in TOTP before the sign-in completes. Clients can require it even
    /// where this is off.
    pub require_2fa: bool,
}

impl Default for Login {
    fn default() -> Self {
        Self { require_2fa: true }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tokens {
    /// Authorization code lifetime in seconds, at most 60.
    pub code_ttl: i64,
    pub access_token_ttl: i64,
    pub id_token_ttl: i64,
    /// Lifetime of a refresh-token family in seconds; rotation keeps it.
    pub refresh_token_ttl: i64,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Session {
    /// SSO session lifetime in seconds.
    pub ttl: i64,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Password {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            issuer: "http://localhost:8080".into(),
            listen: "127.0.0.1:8080".into(),
            database_url: "sqlite://data/zapini-id.db?mode=rwc".into(),
            database_pool_size: 8,
            redis_url: None,
            secret_file: "data/secret.key".into(),
            clients_dir: "config/clients".into(),
            templates_dir: None,
            product_name: "Zapini ID".into(),
            logo_file: None,
            log_format: "text".into(),
            trusted_proxies: Vec::new(),
            key_activation_delay: DAY,
            reload_interval: 30,
            tokens: Tokens::default(),
            session: Session::default(),
            password: Password::default(),
            login: Login::default(),
            webauthn: WebAuthn::default(),
        }
    }
}

impl Default for Tokens {
    fn default() -> Self {
        Self {
            code_ttl: 60,
            access_token_ttl: 600,
            id_token_ttl: 600,
            refresh_token_ttl: 30 * 86_400,
        }
    }
}

impl Default for Session {
    fn default() -> Self {
        Self { ttl: 12 * 3600 }
    }
}

impl Default for Password {
    fn default() -> Self {
        let min = zapini_login::PasswordPolicy::MINIMUM;
        Self {
            memory_kib: min.memory_kib,
            iterations: min.iterations,
            parallelism: min.parallelism,
        }
    }
}

/// Turns an environment value into TOML: numbers, booleans and quoted or
/// bracketed values as TOML reads them, anything else as a string.
fn env_value(raw: &str) -> toml::Value {
    let parsed = format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"));
    match parsed {
        Some(v @ (toml::Value::Integer(_) | toml::Value::Boolean(_) | toml::Value::Array(_))) => v,
        Some(v @ toml::Value::String(_)) if raw.starts_with('"') => v,
        _ => toml::Value::String(raw.to_owned()),
    }
}

/// Applies `ZAPINI_ID_*` variables to the parsed file.
fn apply_env(
    table: &mut toml::Table,
    vars: impl Iterator<Item = (String, String)>,
) -> anyhow::Result<()> {
    for (name, raw) in vars {
        let Some(key) = name.strip_prefix(PREFIX) else {
            continue;
        };
        if NOT_SETTINGS.contains(&name.as_str()) {
            continue;
        }
        let path: Vec<String> = key.split("__").map(str::to_lowercase).collect();
        let (last, sections) = path.split_last().context("empty variable name")?;
        let mut target = &mut *table;
        for section in sections {
            let entry = target
                .entry(section.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            target = entry
                .as_table_mut()
                .with_context(|| format!("{name}: {section} is not a section"))?;
        }
        target.insert(last.clone(), env_value(&raw));
    }
    Ok(())
}

impl Config {
    /// Reads `path` (a missing default file means built-in defaults), then
    /// the environment, then checks the result.
    pub fn load(path: &Path, explicit: bool) -> anyhow::Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => String::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        Self::from_parts(&text, std::env::vars(), &path.display().to_string())
    }

    pub fn from_parts(
        text: &str,
        vars: impl Iterator<Item = (String, String)>,
        origin: &str,
    ) -> anyhow::Result<Self> {
        let mut table: toml::Table = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
            match line {
                Some(line) => anyhow::anyhow!("{origin}: line {line}: {}", e.message()),
                None => anyhow::anyhow!("{origin}: {}", e.message()),
            }
        })?;
        apply_env(&mut table, vars)?;
        let config: Config =
            toml::Value::Table(table)
                .try_into()
                .map_err(|e: toml::de::Error| {
                    let (reason, _) = zapini_core::suggest::unknown_key(e.message());
                    anyhow::anyhow!("{origin} (with ZAPINI_ID_* overrides): {reason}")
                })?;
        let problems = config.problems();
        if !problems.is_empty() {
            let lines: Vec<String> = problems.iter().map(|p| format!("{origin}: {p}")).collect();
            bail!("{}", lines.join("\n"));
        }
        Ok(config)
    }

    /// Every problem of the settings, each as "field: reason".
    pub fn problems(&self) -> Vec<String> {
        let mut found = Vec::new();
        if let Err(e) = check_issuer(&self.issuer) {
            found.push(e.to_string());
        }
        if !(1..=60).contains(&self.tokens.code_ttl) {
            found.push("tokens.code_ttl: must be 1 to 60 seconds".to_owned());
        }
        for (name, value) in [
            ("tokens.access_token_ttl", self.tokens.access_token_ttl),
            ("tokens.id_token_ttl", self.tokens.id_token_ttl),
        ] {
            if !(60..=DAY).contains(&value) {
                found.push(format!("{name}: must be 60 to {DAY} seconds, got {value}"));
            }
        }
        if !(3600..=365 * DAY).contains(&self.tokens.refresh_token_ttl) {
            found.push(format!(
                "tokens.refresh_token_ttl: must be 3600 seconds to 365 days, got {}",
                self.tokens.refresh_token_ttl
            ));
        }
        if !(300..=30 * DAY).contains(&self.session.ttl) {
            found.push(format!(
                "session.ttl: must be 300 seconds to 30 days, got {}",
                self.session.ttl
            ));
        }
        if let Some(url) = &self.redis_url
            && !(url.starts_with("redis://") || url.starts_with("rediss://"))
        {
            found.push("redis_url: must start with redis:// or rediss://".to_owned());
        }
        if !(self.database_url.starts_with("sqlite:")
            || self.database_url.starts_with("postgres://")
            || self.database_url.starts_with("postgresql://"))
        {
            found.push(
                "database_url: must start with sqlite:, postgres:// or postgresql://".to_owned(),
            );
        }
        if !(1..=1000).contains(&self.database_pool_size) {
            found.push("database_pool_size: must be 1 to 1000".to_owned());
        }
        if !self.password_policy().is_strong_enough() {
            found.push(
                "password: below the OWASP minimum (memory_kib >= 19456, iterations >= 2, parallelism >= 1)"
                    .to_owned(),
            );
        }
        found.extend(self.reload_problems());
        if !matches!(self.log_format.as_str(), "text" | "json") {
            found.push("log_format: must be \"text\" or \"json\"".to_owned());
        }
        for entry in &self.trusted_proxies {
            if let Err(e) = Cidr::parse(entry) {
                found.push(format!(
                    "trusted_proxies: {e} (write an address block such as \"10.0.0.0/8\" or one address)"
                ));
            }
        }
        if let Err(e) = self.passkeys().check() {
            found.push(e);
        }
        if let Some(Err(e)) = self
            .logo_file
            .as_deref()
            .map(zapini_login::templates::read_logo)
        {
            found.push(format!("logo_file: {e}"));
        }
        found
    }

    /// A rotated key must be in every instance's JWKS, and in every relying
    /// party's copy that honours `Cache-Control`, before it signs.
    fn reload_problems(&self) -> Vec<String> {
        let mut found = Vec::new();
        if !(1..=3600).contains(&self.reload_interval) {
            found.push(format!(
                "reload_interval: must be 1 to 3600 seconds, got {}",
                self.reload_interval
            ));
        }
        let least = zapini_oidc::jwks::MAX_AGE + self.reload_interval.clamp(1, 3600);
        if !(least..=30 * DAY).contains(&self.key_activation_delay) {
            found.push(format!(
                "key_activation_delay: must be {least} seconds (the JWKS max-age of {} plus \
                 reload_interval) to 30 days, got {}",
                zapini_oidc::jwks::MAX_AGE,
                self.key_activation_delay
            ));
        }
        found
    }

    /// The passkey settings, defaults filled in from the issuer.
    pub fn passkeys(&self) -> zapini_login::passkeys::Settings {
        let issuer = url::Url::parse(&self.issuer).ok();
        let rp_id = self.webauthn.rp_id.clone().unwrap_or_else(|| {
            issuer
                .as_ref()
                .and_then(|u| u.host_str().map(str::to_owned))
                .unwrap_or_default()
        });
        let origins = if self.webauthn.origins.is_empty() {
            issuer
                .map(|u| vec![u.origin().ascii_serialization()])
                .unwrap_or_default()
        } else {
            self.webauthn.origins.clone()
        };
        zapini_login::passkeys::Settings {
            rp_id,
            rp_name: self
                .webauthn
                .rp_name
                .clone()
                .unwrap_or_else(|| self.product_name.clone()),
            origins,
        }
    }

    /// The trusted proxies, parsed (start-up has checked them).
    pub fn trusted_proxies(&self) -> anyhow::Result<TrustedProxies> {
        let blocks = self
            .trusted_proxies
            .iter()
            .map(|entry| Cidr::parse(entry).map_err(|e| anyhow::anyhow!("trusted_proxies: {e}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(TrustedProxies::new(blocks))
    }

    /// The lifetimes of what the server issues.
    pub fn token_settings(&self) -> zapini_oidc::TokenSettings {
        zapini_oidc::TokenSettings {
            code_ttl: self.tokens.code_ttl,
            access_token_ttl: self.tokens.access_token_ttl,
            id_token_ttl: self.tokens.id_token_ttl,
            refresh_token_ttl: self.tokens.refresh_token_ttl,
            ..zapini_oidc::TokenSettings::default()
        }
    }

    pub fn password_policy(&self) -> zapini_login::PasswordPolicy {
        zapini_login::PasswordPolicy {
            memory_kib: self.password.memory_kib,
            iterations: self.password.iterations,
            parallelism: self.password.parallelism,
        }
    }

    pub fn is_embedded_database(&self) -> bool {
        self.database_url.starts_with("sqlite:")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Iterator<Item = (String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn environment_overrides_the_file_for_every_key() {
        let file = "listen = \"127.0.0.1:1\"\n[tokens]\naccess_token_ttl = 300\n";
        let config = Config::from_parts(
            file,
            vars(&[
                ("ZAPINI_ID_LISTEN", "0.0.0.0:9000"),
                ("ZAPINI_ID_TOKENS__ACCESS_TOKEN_TTL", "900"),
                ("ZAPINI_ID_ISSUER", "https://id.example.com"),
                ("ZAPINI_ID_SECRET", "not a setting"),
                ("OTHER", "x"),
            ]),
            "test",
        )
        .unwrap();
        assert_eq!(config.listen, "0.0.0.0:9000");
        assert_eq!(config.tokens.access_token_ttl, 900);
        assert_eq!(config.issuer, "https://id.example.com");
        assert_eq!(config.redis_url, None);
    }

    #[test]
    fn redis_and_postgres_come_from_the_environment() {
        let config = Config::from_parts(
            "",
            vars(&[
                ("ZAPINI_ID_REDIS_URL", "redis://127.0.0.1:6379/0"),
                ("ZAPINI_ID_DATABASE_URL", "postgres://zid@127.0.0.1/zid"),
            ]),
            "test",
        )
        .unwrap();
        assert_eq!(
            config.redis_url.as_deref(),
            Some("redis://127.0.0.1:6379/0")
        );
        assert!(!config.is_embedded_database());
        for bad in [
            "redis_url = \"127.0.0.1:6379\"",
            "database_url = \"mysql://x\"",
        ] {
            assert!(Config::from_parts(bad, vars(&[]), "f").is_err(), "{bad}");
        }
    }

    #[test]
    fn trusted_proxies_are_address_blocks() {
        let config = Config::from_parts(
            "trusted_proxies = [\"127.0.0.1/32\", \"10.0.0.0/8\", \"::1\"]",
            vars(&[]),
            "f",
        )
        .unwrap();
        assert!(config.trusted_proxies().is_ok());
        let from_env = Config::from_parts(
            "",
            vars(&[("ZAPINI_ID_TRUSTED_PROXIES", "[\"10.0.0.0/8\"]")]),
            "f",
        )
        .unwrap();
        assert_eq!(from_env.trusted_proxies, ["10.0.0.0/8"]);
        for bad in ["10.0.0.1/8", "10.0.0.0/40", "proxy.internal"] {
            let text = format!("trusted_proxies = [\"{bad}\"]");
            let err = Config::from_parts(&text, vars(&[]), "f").unwrap_err();
            assert!(format!("{err:#}").contains("trusted_proxies:"), "{err:#}");
        }
    }

    #[test]
    fn unknown_keys_are_errors() {
        let err = Config::from_parts("listn = \"x\"", vars(&[]), "f.toml").unwrap_err();
        assert!(format!("{err:#}").contains("listn"), "{err:#}");
        let err = Config::from_parts("", vars(&[("ZAPINI_ID_LISTN", "x")]), "f.toml").unwrap_err();
        assert!(format!("{err:#}").contains("listn"), "{err:#}");
    }

    #[test]
    fn weak_settings_are_refused() {
        for bad in [
            "issuer = \"http://id.example.com\"",
            "issuer = \"https://id.example.com/\"",
            "[tokens]\ncode_ttl = 600",
            "[password]\nmemory_kib = 1024",
            "issuer = \"http://localhost.evil.example\"",
            "issuer = \"http://localhostattacker.com:80\"",
            "issuer = \"https://a b c\"",
            "[session]\nttl = 9223372036854775807",
            "[tokens]\naccess_token_ttl = 9223372036854775807",
            "key_activation_delay = 300",
            "reload_interval = 0",
            "reload_interval = 600\nkey_activation_delay = 600",
        ] {
            assert!(Config::from_parts(bad, vars(&[]), "f").is_err(), "{bad}");
        }
    }

    /// Every key of the settings, dotted (`tokens.code_ttl`).
    fn keys(prefix: &str, value: &serde_json::Value, out: &mut Vec<String>) {
        if let Some(table) = value.as_object() {
            for (k, v) in table {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                if v.is_object() {
                    keys(&key, v, out);
                } else {
                    out.push(key);
                }
            }
        }
    }

    #[test]
    fn the_configuration_reference_documents_every_key() {
        let docs = include_str!("../../../docs/operations.md");
        let mut all = Vec::new();
        keys(
            "",
            &serde_json::to_value(Config::default()).unwrap(),
            &mut all,
        );
        let missing: Vec<&String> = all
            .iter()
            .filter(|k| !docs.contains(&format!("| `{k}`")) && !docs.contains(&format!(", `{k}`")))
            .collect();
        assert!(all.len() > 20, "{all:?}");
        assert!(
            missing.is_empty(),
            "docs/operations.md does not document {missing:?}"
        );
    }

    #[test]
    fn passkeys_follow_the_issuer_unless_configured() {
        let config =
            Config::from_parts("issuer = \"https://auth.example.com\"", vars(&[]), "f").unwrap();
        let passkeys = config.passkeys();
        assert_eq!(passkeys.rp_id, "auth.example.com");
        assert_eq!(passkeys.origins, ["https://auth.example.com"]);
        let config = Config::from_parts(
            "issuer = \"https://auth.example.com\"\n[webauthn]\nrp_id = \"example.com\"\n",
            vars(&[]),
            "f",
        )
        .unwrap();
        assert_eq!(config.passkeys().rp_id, "example.com");
        let err = Config::from_parts(
            "issuer = \"https://auth.example.com\"\n[webauthn]\nrp_id = \"other.com\"\n",
            vars(&[]),
            "f",
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("webauthn.origins"), "{err:#}");
        let err =
            Config::from_parts("issuer = \"http://127.0.0.1:8080\"", vars(&[]), "f").unwrap_err();
        assert!(format!("{err:#}").contains("webauthn.rp_id"), "{err:#}");
    }
}
