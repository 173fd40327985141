//! Security events: what the security log records and users see.

use serde::{Deserialize, Serialize};

use crate::clock::UnixTime;

/// The kinds of security event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    SignInSucceeded,
    SignInFailed,
    TwoFactorEnabled,
    TwoFactorDisabled,
    TwoFactorReset,
    RecoveryCodeUsed,
    RecoveryCodesRenewed,
    PasswordChanged,
    SessionSignedOut,
    Throttled,
    PasskeyAdded,
    PasskeyRemoved,
    PasskeyUsed,
    PasskeyRefused,
    ConsentGranted,
    ConsentRevoked,
}

impl EventKind {
    pub const ALL: [EventKind; 16] = [
        EventKind::SignInSucceeded,
        EventKind::SignInFailed,
        EventKind::TwoFactorEnabled,
        EventKind::TwoFactorDisabled,
        EventKind::TwoFactorReset,
        EventKind::RecoveryCodeUsed,
        EventKind::RecoveryCodesRenewed,
        EventKind::PasswordChanged,
        EventKind::SessionSignedOut,
        EventKind::Throttled,
        EventKind::PasskeyAdded,
        EventKind::PasskeyRemoved,
        EventKind::PasskeyUsed,
        EventKind::PasskeyRefused,
        EventKind::ConsentGranted,
        EventKind::ConsentRevoked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::SignInSucceeded => "sign_in_succeeded",
            EventKind::SignInFailed => "sign_in_failed",
            EventKind::TwoFactorEnabled => "two_factor_enabled",
            EventKind::TwoFactorDisabled => "two_factor_disabled",
            EventKind::TwoFactorReset => "two_factor_reset",
            EventKind::RecoveryCodeUsed => "recovery_code_used",
            EventKind::RecoveryCodesRenewed => "recovery_codes_renewed",
            EventKind::PasswordChanged => "password_changed",
            EventKind::SessionSignedOut => "session_signed_out",
            EventKind::Throttled => "throttled",
            EventKind::PasskeyAdded => "passkey_added",
            EventKind::PasskeyRemoved => "passkey_removed",
            EventKind::PasskeyUsed => "passkey_used",
            EventKind::PasskeyRefused => "passkey_refused",
            EventKind::ConsentGranted => "consent_granted",
            EventKind::ConsentRevoked => "consent_revoked",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

/// One security event. `detail` holds what else is worth knowing (the methods
/// of a sign-in, the reason of a failure); never a secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    pub user_id: Option<String>,
    pub kind: EventKind,
    pub detail: serde_json::Value,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub at: UnixTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_text() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
        }
    }
}
