//! Passkeys (WebAuthn Level 2/3) through webauthn-rs: the relying-party
//! settings, the ceremony state kept server-side, and the checks this
//! product adds to the library's (WebAuthn L2 7.1 and 7.2 are run by
//! webauthn-rs: challenge, origin, rp id hash, flags, signature, counter).
//!
//! Ceremony state never leaves the server: it lives in the ephemeral store
//! under the hash of a value only the browser that started the ceremony
//! holds, and is taken (read and deleted in one statement) when the answer
//! comes back, so each challenge is answered at most once.

use serde::{Deserialize, Serialize};
use webauthn_rs::prelude::{
    AuthenticationResult, CreationChallengeResponse, DiscoverableAuthentication, Passkey,
    PasskeyAuthentication, PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential,
    RequestChallengeResponse, Url, Uuid, Webauthn, WebauthnBuilder, WebauthnError,
};
use zapini_core::crypto::b64url;
use zapini_store::{PasskeyRow, PasskeyUse, Store, StoreError};

/// How long a browser has to answer a WebAuthn challenge, in seconds.
pub const CEREMONY_TTL: i64 = 5 * 60;

/// Ephemeral-store namespaces of ceremony state.
pub(crate) const NS_REGISTRATION: &str = "passkey_reg";
pub(crate) const NS_ASSERTION: &str = "passkey_auth";

/// The longest passkey name kept, in characters.
pub const MAX_NAME_CHARS: usize = 64;

/// Where passkeys are valid: the relying-party id and the origins whose
/// pages may use them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub rp_id: String,
    pub rp_name: String,
    pub origins: Vec<String>,
}

impl Settings {
    /// Checks the settings against WebAuthn L2 5.1.4 / 13.4.9: the rp id is a
    /// domain (not an IP address), and every origin's host is that domain or
    /// one below it. Errors name the field.
    pub fn check(&self) -> Result<(), String> {
        let rp_id = &self.rp_id;
        let domain_like = !rp_id.is_empty()
            && rp_id.len() <= 253
            && rp_id.split('.').all(|label| {
                !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            })
            && *rp_id == rp_id.to_ascii_lowercase();
        let ip = rp_id.parse::<std::net::IpAddr>().is_ok()
            || rp_id
                .split('.')
                .all(|l| l.chars().all(|c| c.is_ascii_digit()));
        if !domain_like || ip {
            return Err(format!(
                "webauthn.rp_id: must be a lower-case domain name, not an IP address or URL, got {rp_id:?}"
            ));
        }
        // A single label other than localhost would be a public suffix
        // ("com"), which browsers refuse as an rp id.
        if !rp_id.contains('.') && rp_id != "localhost" {
            return Err(format!(
                "webauthn.rp_id: {rp_id:?} is a top-level name; use the registrable domain, e.g. \"example.com\""
            ));
        }
        if self.origins.is_empty() {
            return Err("webauthn.origins: at least one origin is needed".into());
        }
        for origin in &self.origins {
            let url = Url::parse(origin)
                .map_err(|e| format!("webauthn.origins: {origin:?} is not a URL ({e})"))?;
            let host = url.host_str().unwrap_or_default();
            let secure = url.scheme() == "https" || (url.scheme() == "http" && host == "localhost");
            if !secure {
                return Err(format!(
                    "webauthn.origins: {origin:?} must be https (http only for localhost)"
                ));
            }
            if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
                return Err(format!(
                    "webauthn.origins: {origin:?} must be scheme, host and port only"
                ));
            }
            if host != rp_id && !host.ends_with(&format!(".{rp_id}")) {
                return Err(format!(
                    "webauthn.origins: the host of {origin:?} is not {rp_id:?} or a subdomain of it (webauthn.rp_id)"
                ));
            }
        }
        if self.rp_name.trim().is_empty() {
            return Err("webauthn.rp_name: must not be empty".into());
        }
        Ok(())
    }

    /// The WebAuthn relying party for these settings.
    pub fn relying_party(&self) -> Result<Webauthn, String> {
        self.check()?;
        let mut origins = self.origins.iter().filter_map(|o| Url::parse(o).ok());
        let first = origins
            .next()
            .ok_or_else(|| "webauthn.origins: at least one origin is needed".to_owned())?;
        let mut builder = WebauthnBuilder::new(&self.rp_id, &first)
            .map_err(|e| format!("webauthn: {e}"))?
            .rp_name(&self.rp_name);
        for origin in origins {
            builder = builder.append_allowed_origin(&origin);
        }
        builder.build().map_err(|e| format!("webauthn: {e}"))
    }
}

/// A registration waiting for the browser's answer, bound to the SSO
/// session that asked for it.
#[derive(Serialize, Deserialize)]
pub(crate) struct Registration {
    /// Hash of the session cookie.
    pub session: String,
    pub user_id: String,
    pub user_handle: String,
    pub state: PasskeyRegistration,
}

/// A sign-in assertion waiting for the browser's answer, bound to a login
/// transaction.
#[derive(Serialize, Deserialize)]
pub(crate) enum Assertion {
    /// First step: any discoverable credential; the user is found from it.
    Discoverable(DiscoverableAuthentication),
    /// After a password: one of this user's passkeys.
    SecondStep {
        user_id: String,
        state: PasskeyAuthentication,
    },
}

/// Why a passkey was not accepted.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PasskeyError {
    #[error("the credential is not registered")]
    Unknown,
    #[error("the credential belongs to another user")]
    WrongUser,
    #[error("the signature counter did not grow")]
    Counter,
    #[error("user verification was not performed")]
    NotVerified,
    #[error("verification failed: {0}")]
    Invalid(WebauthnError),
    #[error("the credential is already registered")]
    Duplicate,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl PasskeyError {
    /// A short reason for the security log.
    pub fn reason(&self) -> &'static str {
        match self {
            PasskeyError::Unknown => "unknown_credential",
            PasskeyError::WrongUser => "wrong_user",
            PasskeyError::Counter => "counter_regression",
            PasskeyError::NotVerified => "user_not_verified",
            PasskeyError::Invalid(_) => "invalid_assertion",
            PasskeyError::Duplicate => "duplicate",
            PasskeyError::Store(_) => "store",
        }
    }
}

impl From<WebauthnError> for PasskeyError {
    fn from(err: WebauthnError) -> Self {
        match err {
            // WebAuthn L2 7.2 step 21: a counter that is not greater than
            // the stored one may mean a cloned authenticator; refused.
            WebauthnError::CredentialPossibleCompromise => PasskeyError::Counter,
            WebauthnError::UserNotVerified => PasskeyError::NotVerified,
            other => PasskeyError::Invalid(other),
        }
    }
}

/// The browser's options for `navigator.credentials.create()`.
///
/// webauthn-rs asks for a credential that may or may not be discoverable;
/// sign-in without a user name needs a discoverable one, so the request
/// says `residentKey: "required"` (WebAuthn L2 5.4.4). The library's state
/// does not depend on this member.
pub(crate) fn creation_options(ccr: &CreationChallengeResponse) -> serde_json::Value {
    let mut value = serde_json::to_value(ccr).unwrap_or_default();
    if let Some(selection) = value
        .pointer_mut("/publicKey/authenticatorSelection")
        .and_then(serde_json::Value::as_object_mut)
    {
        selection.insert("residentKey".into(), "required".into());
        selection.insert("requireResidentKey".into(), true.into());
    }
    value
}

/// The browser's options for `navigator.credentials.get()`, without the
/// mediation, which the page chooses (autofill or a button).
pub(crate) fn request_options(rcr: &RequestChallengeResponse) -> serde_json::Value {
    let mut value = serde_json::to_value(rcr).unwrap_or_default();
    if let Some(object) = value.as_object_mut() {
        object.remove("mediation");
    }
    value
}

/// The user handle for a new passkey: the one the user's other passkeys
/// carry, or a new random one. It is never the user id or e-mail address
/// (WebAuthn L2 14.6.1).
pub(crate) async fn user_handle(store: &Store, user_id: &str) -> Result<Uuid, StoreError> {
    let existing = store.passkeys().list(user_id).await?;
    Ok(existing
        .iter()
        .find_map(|p| Uuid::parse_str(&p.user_handle).ok())
        .unwrap_or_else(Uuid::new_v4))
}

/// The credential ids to exclude from a new registration, so the same
/// authenticator is not registered twice (WebAuthn L2 5.4, excludeCredentials).
pub(crate) fn exclusions(rows: &[PasskeyRow]) -> Vec<webauthn_rs::prelude::CredentialID> {
    rows.iter()
        .filter_map(|r| serde_json::from_str::<Passkey>(&r.credential).ok())
        .map(|p| p.cred_id().clone())
        .collect()
}

/// The passkeys of a user as webauthn-rs reads them.
pub(crate) fn parsed(rows: &[PasskeyRow]) -> Vec<Passkey> {
    rows.iter()
        .filter_map(|r| serde_json::from_str(&r.credential).ok())
        .collect()
}

/// Backup flags of a freshly registered credential (WebAuthn L3 6.1.3, BE
/// and BS). webauthn-rs keeps them in the credential it serialises for
/// storage; that format is its documented persistence format.
fn backup_flags(passkey: &Passkey) -> (bool, bool) {
    let value = serde_json::to_value(passkey).unwrap_or_default();
    let flag = |name: &str| {
        value
            .pointer(&format!("/cred/{name}"))
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false)
    };
    (flag("backup_eligible"), flag("backup_state"))
}

/// Verifies a registration answer and stores the passkey.
pub(crate) async fn register(
    webauthn: &Webauthn,
    store: &Store,
    pending: Registration,
    answer: &RegisterPublicKeyCredential,
    name: &str,
    id: String,
    now: i64,
) -> Result<PasskeyRow, PasskeyError> {
    let passkey = webauthn.finish_passkey_registration(answer, &pending.state)?;
    let (backup_eligible, backup_state) = backup_flags(&passkey);
    let row = PasskeyRow {
        id,
        user_id: pending.user_id,
        user_handle: pending.user_handle,
        credential_id: b64url(passkey.cred_id()),
        name: name.to_owned(),
        credential: serde_json::to_string(&passkey).map_err(StoreError::from)?,
        backup_eligible,
        backup_state,
        counter: 0,
        created_at: now,
        last_used_at: None,
    };
    match store.passkeys().add(row.clone()).await {
        Ok(()) => Ok(row),
        Err(StoreError::Conflict) => Err(PasskeyError::Duplicate),
        Err(err) => Err(err.into()),
    }
}

/// A verified assertion: whose passkey it was and whether it can be synced.
#[derive(Debug)]
pub(crate) struct Verified {
    pub user_id: String,
    pub passkey_id: String,
    pub name: String,
    /// Backup eligible (WebAuthn L3 BE flag): `swk` rather than `hwk`.
    pub synced: bool,
}

/// Verifies a sign-in assertion against the stored credential and records
/// its use. `expected_user` is set for the second step.
pub(crate) async fn verify(
    webauthn: &Webauthn,
    store: &Store,
    assertion: Assertion,
    answer: &PublicKeyCredential,
    now: i64,
) -> Result<Verified, (Option<String>, PasskeyError)> {
    let credential_id = b64url(answer.get_credential_id());
    let row = match store.passkeys().find_by_credential_id(&credential_id).await {
        Ok(Some(row)) => row,
        Ok(None) => return Err((None, PasskeyError::Unknown)),
        Err(err) => return Err((None, err.into())),
    };
    let owner = Some(row.user_id.clone());
    let fail = |err: PasskeyError| (owner.clone(), err);
    let mut passkey: Passkey = serde_json::from_str(&row.credential)
        .map_err(|e| fail(PasskeyError::Store(StoreError::from(e))))?;
    let result: AuthenticationResult = match assertion {
        Assertion::Discoverable(state) => {
            // The user handle the authenticator returns must be the one we
            // gave this credential (WebAuthn L2 7.2 step 6).
            let (handle, _) = webauthn
                .identify_discoverable_authentication(answer)
                .map_err(|e| fail(e.into()))?;
            if handle.to_string() != row.user_handle {
                return Err(fail(PasskeyError::WrongUser));
            }
            webauthn
                .finish_discoverable_authentication_v2(answer, state, &passkey)
                .map_err(|e| fail(e.into()))?
        }
        Assertion::SecondStep { user_id, state } => {
            if user_id != row.user_id {
                return Err(fail(PasskeyError::WrongUser));
            }
            webauthn
                .finish_passkey_authentication(answer, &state)
                .map_err(|e| fail(e.into()))?
        }
    };
    // WebAuthn L2 7.2 step 17: the policy requires user verification; the
    // library checks the UV flag, and this says so again for the reader.
    if !result.user_verified() {
        return Err(fail(PasskeyError::NotVerified));
    }
    // Step 21 again, against the stored counter: a second-step challenge
    // carries the credential as it was when the challenge was made, and
    // another sign-in may have moved the counter since.
    let counter = i64::from(result.counter());
    if (counter > 0 || row.counter > 0) && counter <= row.counter {
        return Err(fail(PasskeyError::Counter));
    }
    passkey.update_credential(&result);
    let credential = serde_json::to_string(&passkey)
        .map_err(|e| fail(PasskeyError::Store(StoreError::from(e))))?;
    let used = PasskeyUse {
        credential: &credential,
        counter,
        backup_state: result.backup_state(),
        backup_eligible: result.backup_eligible(),
        at: now,
    };
    // The counter compared above must still be the stored one: a rival
    // assertion with the same counter loses here.
    match store
        .passkeys()
        .record_use(&row.id, row.counter, used)
        .await
    {
        Ok(true) => {}
        Ok(false) => return Err(fail(PasskeyError::Counter)),
        Err(err) => return Err(fail(err.into())),
    }
    Ok(Verified {
        user_id: row.user_id,
        passkey_id: row.id,
        name: row.name,
        synced: result.backup_eligible(),
    })
}

/// A passkey name from the form, or a label for the device if empty.
pub(crate) fn clean_name(raw: &str, fallback: &str) -> String {
    // Control characters and the invisible format characters that reorder
    // text (bidi overrides and isolates) are dropped.
    let invisible = |c: char| matches!(c, '\u{061C}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}');
    let name: String = raw
        .chars()
        .filter(|c| !c.is_control() && !invisible(*c))
        .take(MAX_NAME_CHARS)
        .collect();
    let name = name.trim();
    if name.is_empty() {
        fallback.chars().take(MAX_NAME_CHARS).collect()
    } else {
        name.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(rp_id: &str, origins: &[&str]) -> Settings {
        Settings {
            rp_id: rp_id.into(),
            rp_name: "Zapini".into(),
            origins: origins.iter().map(|o| o.to_string()).collect(),
        }
    }

    #[test]
    fn a_registrable_domain_serves_its_subdomains() {
        let s = settings("example.com", &["https://auth.example.com"]);
        assert!(s.check().is_ok());
        assert!(s.relying_party().is_ok());
        assert!(
            settings("localhost", &["http://localhost:8080"])
                .check()
                .is_ok()
        );
    }

    #[test]
    fn bad_settings_name_the_field() {
        for (s, field) in [
            (
                settings("127.0.0.1", &["http://127.0.0.1:8080"]),
                "webauthn.rp_id",
            ),
            (
                settings("https://example.com", &["https://example.com"]),
                "webauthn.rp_id",
            ),
            (settings("com", &["https://example.com"]), "webauthn.rp_id"),
            (
                settings("example.com", &["https://evil.com"]),
                "webauthn.origins",
            ),
            (
                settings("example.com", &["https://notexample.com"]),
                "webauthn.origins",
            ),
            (
                settings("example.com", &["http://auth.example.com"]),
                "webauthn.origins",
            ),
            (
                settings("example.com", &["https://auth.example.com/login"]),
                "webauthn.origins",
            ),
            (settings("example.com", &[]), "webauthn.origins"),
        ] {
            let err = s.check().unwrap_err();
            assert!(err.starts_with(field), "{err}");
        }
    }

    #[test]
    fn names_are_trimmed_bounded_and_defaulted() {
        assert_eq!(clean_name("  Work laptop \n", "x"), "Work laptop");
        assert_eq!(clean_name("", "Chrome · Linux"), "Chrome · Linux");
        assert_eq!(clean_name("Key\u{202E}txt.exe", "x"), "Keytxt.exe");
        assert_eq!(
            clean_name(&"a".repeat(200), "x").chars().count(),
            MAX_NAME_CHARS
        );
    }
}
