//! Whether a request needs the user's consent (OIDC Core 3.1.2.4), and what
//! the answer on the consent page says.
//!
//! The login pages show the page and record the answer; this module only
//! reads it, so the answer sent to the client is decided here.

use zapini_core::flow::{ConsentAnswer, PendingAuthorization, SsoSession, ns};
use zapini_store::StoreError;

use crate::OidcState;
use crate::error::OAuthError;

/// Where a request stands on consent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Consent {
    /// No page is needed, or the user allowed this request.
    Given,
    /// The user refused this request on the consent page.
    Refused,
    /// The consent page must be shown.
    Ask,
}

/// Decides for a session that already satisfies the request's level.
///
/// The answer on the page for this very request counts first (only from
/// the session's user). Then `prompt=consent` asks in any case; a
/// first-party client needs no consent; otherwise an earlier consent of
/// the user to this client must cover every scope asked for.
pub(super) async fn check(
    state: &OidcState,
    pending: &PendingAuthorization,
    session: &SsoSession,
    now: i64,
) -> Result<Consent, StoreError> {
    let answer: Option<ConsentAnswer> = state
        .store
        .ephemeral()
        .get(ns::CONSENT, &pending.id, now)
        .await?;
    if let Some(answer) = answer.filter(|a| a.user_id == session.user_id) {
        return Ok(if answer.allowed {
            Consent::Given
        } else {
            Consent::Refused
        });
    }
    if pending.prompt_consent {
        return Ok(Consent::Ask);
    }
    // A client removed by a reload since the request began gets no code
    // without a fresh look at the page.
    let first_party = state
        .clients
        .get(&pending.client_id)
        .is_some_and(|c| c.first_party);
    if first_party {
        return Ok(Consent::Given);
    }
    let earlier = state
        .store
        .consents()
        .find(&session.user_id, &pending.client_id)
        .await?;
    Ok(match earlier {
        Some(c) if c.covers(&pending.consent_scope()) => Consent::Given,
        _ => Consent::Ask,
    })
}

/// OIDC Core 3.1.2.6: consent is needed but `prompt=none` forbids the page.
pub(super) fn required() -> OAuthError {
    OAuthError::new(
        "consent_required",
        "the user has not consented to this client",
    )
}

/// RFC 6749 4.1.2.1: the user refused the request.
pub(super) fn denied() -> OAuthError {
    OAuthError::new("access_denied", "the user refused the request")
}
