//! Relying parties, described by operators in TOML files: one file per client
//! in a folder. Secrets come from an environment variable, a file, or a
//! SHA-256 hash; never as plain text in the file.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;
use url::Url;
use zapini_core::Acr;
use zapini_core::crypto::{b64url_decode, ct_eq, sha256};

use crate::assertion::{ClientKey, parse_jwks};

/// How a client authenticates at the token endpoint (RFC 6749 2.3, OIDC Core 9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    /// A JWT signed with one of the client's own keys (OIDC Core 9).
    PrivateKeyJwt,
    /// A public client: no secret, PKCE required.
    None,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::ClientSecretBasic => "client_secret_basic",
            AuthMethod::ClientSecretPost => "client_secret_post",
            AuthMethod::PrivateKeyJwt => "private_key_jwt",
            AuthMethod::None => "none",
        }
    }
}

/// Algorithms a client may ask its ID tokens to be signed with.
pub const SIGNING_ALGS: [&str; 3] = ["RS256", "ES256", "EdDSA"];

/// Scopes the server knows; a client may be allowed a subset.
/// `offline_access` (OIDC Core 11) asks for a refresh token.
pub const KNOWN_SCOPES: [&str; 4] = ["openid", "profile", "email", "offline_access"];

/// The grants a client may use (RFC 7591 2 `grant_types`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantType {
    AuthorizationCode,
    RefreshToken,
    ClientCredentials,
}

impl GrantType {
    pub const ALL: [GrantType; 3] = [
        GrantType::AuthorizationCode,
        GrantType::RefreshToken,
        GrantType::ClientCredentials,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::RefreshToken => "refresh_token",
            GrantType::ClientCredentials => "client_credentials",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == value)
    }
}

/// A client file as written by the operator.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientFile {
    client_id: String,
    name: Option<String>,
    #[serde(default)]
    redirect_uris: Vec<String>,
    #[serde(default = "default_grant_types")]
    grant_types: Vec<String>,
    #[serde(default = "default_auth_method")]
    token_endpoint_auth_method: AuthMethod,
    client_secret_env: Option<String>,
    client_secret_file: Option<PathBuf>,
    client_secret_hash: Option<String>,
    /// The client's public keys for `private_key_jwt`: a JWK Set as a TOML
    /// table or as a JSON string.
    jwks: Option<Value>,
    /// Where the client publishes its JWK Set instead (RFC 7591 2).
    jwks_uri: Option<String>,
    #[serde(default = "default_scopes")]
    scopes: Vec<String>,
    #[serde(default = "default_alg")]
    id_token_signed_response_alg: String,
    /// Algorithm of the JWT access tokens (RFC 9068) issued to this client.
    #[serde(default = "default_alg")]
    access_token_signed_response_alg: String,
    /// Sign-ins for this client need two factors, whatever the global policy.
    #[serde(default)]
    require_2fa: bool,
    /// The operator's own app: users are not asked to consent to it, unless
    /// the request says `prompt=consent` (decision 0010).
    #[serde(default)]
    first_party: bool,
    /// The least `acr` of every sign-in for this client: `pwd`, `mfa` or
    /// `phr` (the levels are ordered).
    min_acr: Option<String>,
    /// Where RP-initiated logout may send the browser afterwards, compared
    /// exactly (OIDC RP-Initiated Logout 1.0, section 3.1).
    #[serde(default)]
    post_logout_redirect_uris: Vec<String>,
    /// OIDC Dynamic Client Registration 2: accepted for familiarity; every
    /// ID token carries `auth_time` anyway.
    #[serde(default, rename = "require_auth_time")]
    _require_auth_time: bool,
    /// Where logout tokens are posted (OIDC Back-Channel Logout 1.0, 2.2).
    backchannel_logout_uri: Option<String>,
    /// Section 2.2: accepted; logout tokens always carry `sid`.
    #[serde(default, rename = "backchannel_logout_session_required")]
    _backchannel_logout_session_required: bool,
}

fn default_auth_method() -> AuthMethod {
    AuthMethod::ClientSecretBasic
}

fn default_scopes() -> Vec<String> {
    ["openid", "profile", "email"].map(String::from).to_vec()
}

fn default_grant_types() -> Vec<String> {
    vec![GrantType::AuthorizationCode.as_str().to_owned()]
}

fn default_alg() -> String {
    "RS256".into()
}

/// A validated client.
#[derive(Clone)]
pub struct Client {
    pub client_id: String,
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub auth_method: AuthMethod,
    /// SHA-256 of the secret; `None` for public clients.
    secret_hash: Option<[u8; 32]>,
    /// Public keys for `private_key_jwt` given inline; empty for other
    /// methods and when the client publishes them at `jwks_uri`.
    pub keys: Vec<ClientKey>,
    /// Where the keys of a `private_key_jwt` client are fetched from.
    pub jwks_uri: Option<String>,
    pub grant_types: Vec<GrantType>,
    pub scopes: Vec<String>,
    pub id_token_alg: String,
    pub access_token_alg: String,
    pub require_2fa: bool,
    /// Users are not asked to consent unless `prompt=consent` says so.
    pub first_party: bool,
    /// The least level of its sign-ins: `min_acr`, raised to `mfa` by
    /// `require_2fa`.
    pub min_acr: Acr,
    pub post_logout_redirect_uris: Vec<String>,
    pub backchannel_logout_uri: Option<String>,
    /// The file this client came from, for messages.
    pub source: PathBuf,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("client_id", &self.client_id)
            .field("auth_method", &self.auth_method)
            .field("redirect_uris", &self.redirect_uris)
            .finish_non_exhaustive()
    }
}

impl Client {
    pub fn is_public(&self) -> bool {
        self.auth_method == AuthMethod::None
    }

    pub fn allows(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }

    /// Compares a presented secret with the stored hash in constant time.
    pub fn secret_matches(&self, presented: &str) -> bool {
        match &self.secret_hash {
            Some(hash) => ct_eq(&sha256(presented.as_bytes()), hash),
            None => false,
        }
    }

    /// RP-Initiated Logout 1.0, 3.1: an exact match with a registered
    /// `post_logout_redirect_uris` entry; no loopback port exception.
    pub fn post_logout_uri_allowed(&self, uri: &str) -> bool {
        self.post_logout_redirect_uris
            .iter()
            .any(|r| ct_eq(r.as_bytes(), uri.as_bytes()))
    }

    /// Exact redirect URI match (RFC 9700 2.1, OIDC Core 3.1.2.1), with the
    /// one exception of RFC 8252 7.3: for a registered loopback IP literal
    /// (`http://127.0.0.1` or `http://[::1]`) any port is accepted, since
    /// native apps get an ephemeral port from the OS.
    pub fn redirect_uri_allowed(&self, uri: &str) -> bool {
        self.redirect_uris
            .iter()
            .any(|registered| registered == uri || loopback_match(registered, uri))
    }
}

fn loopback_match(registered: &str, presented: &str) -> bool {
    let (Ok(reg), Ok(pre)) = (Url::parse(registered), Url::parse(presented)) else {
        return false;
    };
    let is_loopback_ip =
        |u: &Url| u.scheme() == "http" && matches!(u.host_str(), Some("127.0.0.1") | Some("[::1]"));
    if !is_loopback_ip(&reg) || !is_loopback_ip(&pre) {
        return false;
    }
    // The presented authority must be exactly host[:port]: no userinfo, no
    // backslash, which parsers disagree about.
    if !pre.username().is_empty() || pre.password().is_some() {
        return false;
    }
    // Compare everything but the port, on the original strings so that no
    // normalisation (case, dot-segments, escapes) can make two URIs equal.
    match (strip_port(registered), strip_port(presented)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

fn strip_port(uri: &str) -> Option<String> {
    let rest = uri.strip_prefix("http://")?;
    let (authority, path) = rest.split_at(rest.find(['/', '?', '#']).unwrap_or(rest.len()));
    let host = match authority.rfind(':') {
        Some(i) if !authority[i..].contains(']') => {
            let port = &authority[i + 1..];
            if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            &authority[..i]
        }
        _ => authority,
    };
    if host.contains(['@', '\\']) {
        return None;
    }
    Some(format!("http://{host}{path}"))
}

/// A problem in a client file: which file, which field, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientProblem {
    pub file: PathBuf,
    pub field: String,
    pub reason: String,
}

impl fmt::Display for ClientProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}: {}",
            self.file.display(),
            self.field,
            self.reason
        )
    }
}

/// All problems found while loading clients.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct ClientErrors(pub Vec<ClientProblem>);

/// The loaded clients, by `client_id`.
#[derive(Debug, Default)]
pub struct ClientRegistry {
    clients: BTreeMap<String, Client>,
}

impl ClientRegistry {
    pub fn get(&self, client_id: &str) -> Option<&Client> {
        self.clients.get(client_id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Client> {
        self.clients.values()
    }

    pub fn len(&self) -> usize {
        self.clients.len()
    }

    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// Loads every `*.toml` file in `dir`. `env` looks up environment
    /// variables (injected so tests need not touch the process environment).
    /// Every problem in every file is reported, not only the first.
    pub fn load_dir(
        dir: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ClientErrors> {
        let mut problems = Vec::new();
        let mut registry = ClientRegistry::default();
        let problem = |file: &Path, field: &str, reason: String| ClientProblem {
            file: file.to_owned(),
            field: field.to_owned(),
            reason,
        };

        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) => {
                return Err(ClientErrors(vec![problem(
                    dir,
                    "clients_dir",
                    e.to_string(),
                )]));
            }
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();

        for file in files {
            match load_file(&file, env) {
                Ok(client) => {
                    if let Some(other) = registry.clients.get(&client.client_id) {
                        let reason = format!("also defined in {}", other.source.display());
                        problems.push(problem(&file, "client_id", reason));
                    } else {
                        registry.clients.insert(client.client_id.clone(), client);
                    }
                }
                Err(mut found) => problems.append(&mut found),
            }
        }

        if problems.is_empty() {
            Ok(registry)
        } else {
            Err(ClientErrors(problems))
        }
    }
}

fn load_file(
    file: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Client, Vec<ClientProblem>> {
    let problem = |field: &str, reason: String| ClientProblem {
        file: file.to_owned(),
        field: field.to_owned(),
        reason,
    };
    let text = std::fs::read_to_string(file).map_err(|e| vec![problem("-", e.to_string())])?;
    let raw: ClientFile = toml::from_str(&text).map_err(|e| {
        let (reason, unknown) = zapini_core::suggest::unknown_key(e.message());
        let field =
            unknown.unwrap_or_else(|| e.message().split('`').nth(1).unwrap_or("-").to_owned());
        let line = e
            .span()
            .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
        let reason = match line {
            Some(line) => format!("{reason} (line {line})"),
            None => reason,
        };
        vec![problem(&field, reason)]
    })?;

    let mut problems = Vec::new();
    check_client_id(&raw.client_id, &mut |r| {
        problems.push(problem("client_id", r))
    });
    for uri in &raw.redirect_uris {
        if let Err(reason) = check_redirect_uri(uri) {
            problems.push(problem("redirect_uris", format!("{uri:?}: {reason}")));
        }
    }
    let grant_types = check_grant_types(&raw, &mut |field, r| problems.push(problem(field, r)));
    let uses_code = grant_types.contains(&GrantType::AuthorizationCode);
    if uses_code && raw.redirect_uris.is_empty() {
        problems.push(problem(
            "redirect_uris",
            "at least one redirect URI is required".into(),
        ));
    }
    for scope in &raw.scopes {
        if !KNOWN_SCOPES.contains(&scope.as_str()) {
            let reason = match zapini_core::suggest::nearest(scope, KNOWN_SCOPES.iter().copied()) {
                Some(close) => format!("unknown scope {scope:?}; did you mean {close:?}?"),
                None => format!(
                    "unknown scope {scope:?}; known: {}",
                    KNOWN_SCOPES.join(", ")
                ),
            };
            problems.push(problem("scopes", reason));
        }
    }
    if uses_code && !raw.scopes.iter().any(|s| s == "openid") {
        problems.push(problem("scopes", "must include \"openid\"".into()));
    }
    let keys = match client_keys(&raw) {
        Ok(keys) => keys,
        Err((field, reason)) => {
            problems.push(problem(field, reason));
            Vec::new()
        }
    };
    if !SIGNING_ALGS.contains(&raw.id_token_signed_response_alg.as_str()) {
        let reason = format!("must be one of {}", SIGNING_ALGS.join(", "));
        problems.push(problem("id_token_signed_response_alg", reason));
    }
    if !SIGNING_ALGS.contains(&raw.access_token_signed_response_alg.as_str()) {
        let reason = format!("must be one of {}", SIGNING_ALGS.join(", "));
        problems.push(problem("access_token_signed_response_alg", reason));
    }

    for uri in &raw.post_logout_redirect_uris {
        if let Err(reason) = check_redirect_uri(uri) {
            let reason = format!("{uri:?}: {reason}");
            problems.push(problem("post_logout_redirect_uris", reason));
        }
    }
    if let Some(uri) = &raw.backchannel_logout_uri {
        // Back-Channel Logout 2.2: an absolute http(s) URI, no fragment.
        let web = uri.starts_with("https://") || uri.starts_with("http://");
        if let Err(reason) = check_redirect_uri(uri).and_then(|()| {
            web.then_some(())
                .ok_or_else(|| "must be an https (or loopback http) URI".to_owned())
        }) {
            let reason = format!("{uri:?}: {reason}");
            problems.push(problem("backchannel_logout_uri", reason));
        }
    }
    let min_acr = match raw.min_acr.as_deref().map(|v| (v, Acr::parse(v))) {
        None => Acr::Pwd,
        Some((_, Some(acr))) => acr,
        Some((v, None)) => {
            let reason = format!("unknown level {v:?}; known: pwd, mfa, phr");
            problems.push(problem("min_acr", reason));
            Acr::Pwd
        }
    };
    let min_acr = if raw.require_2fa {
        min_acr.max(Acr::Mfa)
    } else {
        min_acr
    };

    let secret_hash = match secret_hash(&raw, file, env) {
        Ok(hash) => hash,
        Err(p) => {
            problems.push(p);
            None
        }
    };
    if !problems.is_empty() {
        return Err(problems);
    }

    Ok(Client {
        name: raw.name.unwrap_or_else(|| raw.client_id.clone()),
        client_id: raw.client_id,
        redirect_uris: raw.redirect_uris,
        auth_method: raw.token_endpoint_auth_method,
        secret_hash,
        keys,
        jwks_uri: raw.jwks_uri,
        grant_types,
        scopes: raw.scopes,
        id_token_alg: raw.id_token_signed_response_alg,
        access_token_alg: raw.access_token_signed_response_alg,
        require_2fa: raw.require_2fa,
        first_party: raw.first_party,
        min_acr,
        post_logout_redirect_uris: raw.post_logout_redirect_uris,
        backchannel_logout_uri: raw.backchannel_logout_uri,
        source: file.to_owned(),
    })
}

/// Known grant types only; `client_credentials` only for a client that can
/// authenticate (RFC 6749 4.4); refresh tokens only with the code flow and
/// the `offline_access` scope, which the client must ask for (OIDC Core 11).
fn check_grant_types(raw: &ClientFile, report: &mut dyn FnMut(&str, String)) -> Vec<GrantType> {
    let mut grants = Vec::new();
    for name in &raw.grant_types {
        match GrantType::parse(name) {
            Some(g) if !grants.contains(&g) => grants.push(g),
            Some(_) => {}
            None => {
                let known: Vec<_> = GrantType::ALL.iter().map(|g| g.as_str()).collect();
                let reason = format!("unknown grant type {name:?}; known: {}", known.join(", "));
                report("grant_types", reason);
            }
        }
    }
    if grants.is_empty() {
        report("grant_types", "at least one grant type is required".into());
    }
    let public = raw.token_endpoint_auth_method == AuthMethod::None;
    if public && grants.contains(&GrantType::ClientCredentials) {
        report(
            "grant_types",
            "client_credentials needs a client that authenticates, not a public one".into(),
        );
    }
    let refresh = grants.contains(&GrantType::RefreshToken);
    if refresh && !grants.contains(&GrantType::AuthorizationCode) {
        report(
            "grant_types",
            "refresh_token needs authorization_code: refresh tokens come from a sign-in".into(),
        );
    }
    let offline = raw.scopes.iter().any(|s| s == "offline_access");
    if refresh != offline {
        report(
            "scopes",
            "\"offline_access\" in scopes and \"refresh_token\" in grant_types go together".into(),
        );
    }
    grants
}

/// The keys of a `private_key_jwt` client: inline in `jwks`, or published at
/// `jwks_uri` (RFC 7591 2: one or the other, never both).
fn client_keys(raw: &ClientFile) -> Result<Vec<ClientKey>, (&'static str, String)> {
    let uses_keys = raw.token_endpoint_auth_method == AuthMethod::PrivateKeyJwt;
    match (&raw.jwks, &raw.jwks_uri, uses_keys) {
        (Some(_), Some(_), _) => Err((
            "jwks_uri",
            "give the keys either inline in jwks or at jwks_uri, not both".into(),
        )),
        (None, None, false) => Ok(Vec::new()),
        (None, None, true) => Err((
            "jwks",
            "private_key_jwt needs the client's public keys in jwks or at jwks_uri".into(),
        )),
        (Some(_), None, false) => Err(("jwks", "used only with private_key_jwt".into())),
        (None, Some(_), false) => Err(("jwks_uri", "used only with private_key_jwt".into())),
        (None, Some(uri), true) => check_jwks_uri(uri)
            .map(|()| Vec::new())
            .map_err(|e| ("jwks_uri", format!("{uri:?}: {e}"))),
        (Some(Value::String(json)), None, true) => {
            let value: Value =
                serde_json::from_str(json).map_err(|e| ("jwks", format!("not JSON: {e}")))?;
            parse_jwks(&value).map_err(|e| ("jwks", e))
        }
        (Some(value), None, true) => parse_jwks(value).map_err(|e| ("jwks", e)),
    }
}

/// A `jwks_uri` is fetched by the server, so it must be `https`; plain
/// `http` only to a loopback address, for a client on the same machine.
fn check_jwks_uri(uri: &str) -> Result<(), String> {
    let url = url::Url::parse(uri).map_err(|e| format!("not an absolute URL: {e}"))?;
    if url.fragment().is_some() {
        return Err("must not have a fragment".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials".into());
    }
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name == "localhost",
        None => false,
    };
    match url.scheme() {
        "https" if url.host().is_some() => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err("must be an https URL (plain http only on a loopback address)".into()),
    }
}

fn check_client_id(id: &str, report: &mut dyn FnMut(String)) {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || "-._~".contains(c);
    if id.is_empty() || id.len() > 128 || !id.chars().all(ok_char) {
        report("must be 1 to 128 characters of A-Z a-z 0-9 - . _ ~".into());
    }
}

/// OIDC Core 3.1.2.1 and RFC 6749 3.1.2: absolute, no fragment; https, or
/// http only for loopback during development; private-use schemes for native
/// apps (RFC 8252 7.1) must contain a dot.
fn check_redirect_uri(uri: &str) -> Result<(), String> {
    if uri
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == '\\')
    {
        return Err("must not contain spaces, control characters or backslashes".into());
    }
    if uri.contains('*') {
        return Err("wildcards are not supported: redirect URIs are compared exactly".into());
    }
    let url = Url::parse(uri).map_err(|e| format!("not an absolute URI ({e})"))?;
    if url.fragment().is_some() {
        return Err("must not contain a fragment (RFC 6749 3.1.2)".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain user information (user@host)".into());
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" => match url.host_str() {
            Some("localhost") | Some("127.0.0.1") | Some("[::1]") => Ok(()),
            _ => Err("http is allowed only for localhost and loopback addresses".into()),
        },
        scheme if scheme.contains('.') => Ok(()),
        _ => Err("scheme must be https, loopback http, or a reverse-domain private scheme".into()),
    }
}

fn secret_hash(
    raw: &ClientFile,
    file: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<[u8; 32]>, ClientProblem> {
    let problem = |field: &str, reason: &str| ClientProblem {
        file: file.to_owned(),
        field: field.to_owned(),
        reason: reason.to_owned(),
    };
    let sources = [
        raw.client_secret_env.is_some(),
        raw.client_secret_file.is_some(),
        raw.client_secret_hash.is_some(),
    ];
    let given = sources.iter().filter(|s| **s).count();

    if raw.token_endpoint_auth_method == AuthMethod::None {
        return match given {
            0 => Ok(None),
            _ => Err(problem(
                "token_endpoint_auth_method",
                "a public client (none) has no secret",
            )),
        };
    }
    if raw.token_endpoint_auth_method == AuthMethod::PrivateKeyJwt {
        return match given {
            0 => Ok(None),
            _ => Err(problem(
                "token_endpoint_auth_method",
                "a private_key_jwt client has keys, not a secret",
            )),
        };
    }
    if given != 1 {
        let reason =
            "give exactly one of client_secret_env, client_secret_file, client_secret_hash";
        return Err(problem("client_secret_*", reason));
    }

    let secret = if let Some(var) = &raw.client_secret_env {
        env(var).ok_or_else(|| problem("client_secret_env", &format!("{var} is not set")))?
    } else if let Some(path) = &raw.client_secret_file {
        let path = if path.is_relative() {
            file.parent().unwrap_or(Path::new(".")).join(path)
        } else {
            path.clone()
        };
        std::fs::read_to_string(&path)
            .map_err(|e| problem("client_secret_file", &format!("{}: {e}", path.display())))?
            .trim_end_matches(['\r', '\n'])
            .to_owned()
    } else {
        let text = raw.client_secret_hash.as_deref().unwrap_or_default();
        return parse_secret_hash(text).map(Some).ok_or_else(|| {
            problem(
                "client_secret_hash",
                "expected sha256:<base64url of 32 bytes>",
            )
        });
    };

    if secret.len() < 32 {
        return Err(problem(
            "client_secret_*",
            "the secret must be at least 32 characters (zapini-id clients new-secret makes one)",
        ));
    }
    Ok(Some(sha256(secret.as_bytes())))
}

/// Parses `sha256:<base64url>` as written by `zapini-id clients hash-secret`.
pub fn parse_secret_hash(text: &str) -> Option<[u8; 32]> {
    let raw = b64url_decode(text.strip_prefix("sha256:")?)?;
    raw.try_into().ok()
}

/// The `sha256:<base64url>` form of a secret's hash, for client files.
pub fn format_secret_hash(secret: &str) -> String {
    format!(
        "sha256:{}",
        zapini_core::crypto::b64url(&sha256(secret.as_bytes()))
    )
}

#[cfg(test)]
mod tests;
