//! `id_token_hint`: an ID token we issued earlier, presented back to name
//! the user (OIDC Core 3.1.2.1) or the session to end (RP-Initiated Logout
//! 1.0, section 2).

use serde_json::Value;

use crate::OidcState;

/// Longest hint read; our ID tokens are well under 2 KB.
const MAX_HINT_LEN: usize = 8192;

/// What a valid hint says.
#[derive(Debug, Clone)]
pub struct IdTokenHint {
    pub sub: String,
    /// The audiences: the client it was issued to.
    pub aud: Vec<String>,
    pub sid: Option<String>,
}

impl IdTokenHint {
    pub fn issued_to(&self, client_id: &str) -> bool {
        self.aud.iter().any(|a| a == client_id)
    }
}

/// Verifies a hint: our signature with a key of the JWKS, an ID token (not
/// an access or logout token), our issuer. Expiry is not checked: OIDC Core
/// 3.1.2.1 and RP-Initiated Logout 2 say an expired ID token is a fine hint.
pub fn verify(state: &OidcState, token: &str) -> Option<IdTokenHint> {
    if token.len() > MAX_HINT_LEN {
        return None;
    }
    let (typ, claims) = state.keys.verify(token, state.clock.now()).ok()?;
    if typ.is_some_and(|t| !t.eq_ignore_ascii_case("JWT")) {
        return None;
    }
    if claims.get("iss")?.as_str()? != state.issuer {
        return None;
    }
    let aud = match claims.get("aud")? {
        Value::String(a) => vec![a.clone()],
        Value::Array(list) => list
            .iter()
            .filter_map(|a| a.as_str().map(str::to_owned))
            .collect(),
        _ => return None,
    };
    Some(IdTokenHint {
        sub: claims.get("sub")?.as_str()?.to_owned(),
        aud,
        sid: claims.get("sid").and_then(Value::as_str).map(str::to_owned),
    })
}
