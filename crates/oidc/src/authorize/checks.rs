//! The checks of stage two that need no state: response mode, `prompt`,
//! `display`, `max_age`, scope and PKCE (OIDC Core 3.1.2.1, RFC 7636).

use zapini_core::flow::ResponseMode;
use zapini_core::form::Params;

use super::DISPLAY_VALUES;
use crate::clients::Client;
use crate::error::OAuthError;

/// OAuth 2.0 Multiple Response Type Encoding Practices 2.1 (`query`) and
/// OAuth 2.0 Form Post Response Mode 2 (`form_post`).
pub(super) fn response_mode(params: &Params) -> Result<ResponseMode, OAuthError> {
    match params.get("response_mode") {
        None | Some("query") => Ok(ResponseMode::Query),
        Some("form_post") => Ok(ResponseMode::FormPost),
        Some(other) => Err(OAuthError::invalid_request(format!(
            "response_mode {} is not supported",
            other.chars().take(32).collect::<String>()
        ))),
    }
}

/// OIDC Core 3.1.2.1: `prompt`, `display` and `max_age`.
pub(super) fn check_prompt_display_max_age(params: &Params) -> Result<(), OAuthError> {
    let prompt = params.list("prompt");
    if prompt.iter().any(|p| p == "none") && prompt.len() > 1 {
        // OIDC Core 3.1.2.1: none must not be combined with other values.
        return Err(OAuthError::invalid_request(
            "prompt=none cannot be combined with other values",
        ));
    }
    // The pages adapt to any screen, so every display value is served by
    // the same page; a value outside the four of 3.1.2.1 is a mistake.
    if params
        .get("display")
        .is_some_and(|d| !DISPLAY_VALUES.contains(&d))
    {
        return Err(OAuthError::invalid_request(
            "display must be page, popup, touch or wap",
        ));
    }
    if params.get("max_age").is_some() && max_age(params).is_none() {
        return Err(OAuthError::invalid_request(
            "max_age must be a non-negative integer",
        ));
    }
    Ok(())
}

/// RFC 6749 3.3: the granted scope is the requested one limited to what the
/// client may have; unknown values are dropped. `openid` is required, since
/// this is an OpenID provider (OIDC Core 3.1.2.1).
pub(super) fn granted_scope(client: &Client, params: &Params) -> Result<Vec<String>, OAuthError> {
    let requested = params.list("scope");
    if !requested.iter().any(|s| s == "openid") {
        return Err(OAuthError::new(
            "invalid_scope",
            "the scope must include openid",
        ));
    }
    let mut granted: Vec<String> = Vec::new();
    for scope in requested {
        if client.scopes.contains(&scope) && !granted.contains(&scope) {
            granted.push(scope);
        }
    }
    Ok(granted)
}

/// RFC 7636 4.3 and RFC 9700 2.1.1: S256 only; public clients must use it.
pub(super) fn pkce_challenge(
    client: &Client,
    params: &Params,
) -> Result<Option<String>, OAuthError> {
    let challenge = params.get("code_challenge");
    let method = params.get("code_challenge_method");
    match (challenge, method) {
        (None, None) if client.is_public() => Err(OAuthError::invalid_request(
            "code_challenge is required for public clients (PKCE)",
        )),
        (None, None) => Ok(None),
        (None, Some(_)) => Err(OAuthError::invalid_request(
            "code_challenge_method without code_challenge",
        )),
        // RFC 7636 4.3: an absent method means "plain", which is not offered.
        (Some(_), None) | (Some(_), Some("plain")) => Err(OAuthError::invalid_request(
            "code_challenge_method must be S256",
        )),
        (Some(c), Some("S256")) => {
            // RFC 7636 4.2: BASE64URL(SHA256(verifier)) is 43 characters.
            let valid = c.len() == 43
                && c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if valid {
                Ok(Some(c.to_owned()))
            } else {
                Err(OAuthError::invalid_request(
                    "code_challenge is not a base64url SHA-256 value",
                ))
            }
        }
        (Some(_), Some(_)) => Err(OAuthError::invalid_request(
            "code_challenge_method must be S256",
        )),
    }
}

pub(super) fn max_age(params: &Params) -> Option<i64> {
    params
        .get("max_age")
        .and_then(|v| v.parse::<u32>().ok())
        .map(i64::from)
}
