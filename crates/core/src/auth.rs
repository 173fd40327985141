//! Authentication methods and what tokens say about them (RFC 8176 `amr`,
//! OIDC Core 2 `acr`), following the table in the product decisions.

use serde::{Deserialize, Serialize};

use crate::clock::UnixTime;

/// One method completed in an authentication event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// A password checked against its Argon2id hash.
    Password,
    /// A TOTP code from an authenticator app (RFC 6238).
    Totp,
    /// A one-time recovery code, standing in for the TOTP device.
    RecoveryCode,
    /// A WebAuthn assertion with user verification; `synced` is the
    /// backup-eligible flag (a passkey that can leave the device).
    Passkey { synced: bool },
}

/// Authentication context class, ordered `pwd < mfa < phr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Acr {
    /// One knowledge factor.
    Pwd,
    /// Two factors of different kinds.
    Mfa,
    /// Phishing-resistant: a WebAuthn credential bound to our origin.
    Phr,
}

impl Acr {
    pub fn as_str(self) -> &'static str {
        match self {
            Acr::Pwd => "pwd",
            Acr::Mfa => "mfa",
            Acr::Phr => "phr",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "pwd" => Some(Acr::Pwd),
            "mfa" => Some(Acr::Mfa),
            "phr" => Some(Acr::Phr),
            _ => None,
        }
    }
}

/// One authentication event: the methods completed and when it finished.
///
/// `amr` and `acr` are derived from the methods of this event only; nothing is
/// inherited from an earlier event (RFC 8176 section 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Authentication {
    /// Random identifier of this event, so a request that demands a new
    /// authentication can tell it from the one it refused.
    pub id: String,
    pub methods: Vec<AuthMethod>,
    pub time: UnixTime,
}

impl Authentication {
    pub fn new(id: String, methods: Vec<AuthMethod>, time: UnixTime) -> Self {
        Self { id, methods, time }
    }

    fn has_passkey(&self) -> Option<bool> {
        self.methods.iter().find_map(|m| match m {
            AuthMethod::Passkey { synced } => Some(*synced),
            _ => None,
        })
    }

    fn factor_count(&self) -> usize {
        let knowledge = self.methods.contains(&AuthMethod::Password);
        let possession = self
            .methods
            .iter()
            .any(|m| matches!(m, AuthMethod::Totp | AuthMethod::RecoveryCode));
        // A passkey with user verification is possession plus inherence or
        // knowledge (the device unlock), two factors on its own.
        let passkey = self.has_passkey().is_some();
        usize::from(knowledge) + usize::from(possession) + if passkey { 2 } else { 0 }
    }

    /// RFC 8176 method references, in a stable order.
    pub fn amr(&self) -> Vec<&'static str> {
        let mut amr = Vec::new();
        if self.methods.contains(&AuthMethod::Password) {
            amr.push("pwd");
        }
        if self
            .methods
            .iter()
            .any(|m| matches!(m, AuthMethod::Totp | AuthMethod::RecoveryCode))
        {
            amr.push("otp");
        }
        if let Some(synced) = self.has_passkey() {
            amr.push(if synced { "swk" } else { "hwk" });
            amr.push("user");
        }
        if self.factor_count() >= 2 {
            amr.push("mfa");
        }
        amr
    }

    /// The level this event reached.
    pub fn acr(&self) -> Acr {
        if self.has_passkey().is_some() {
            Acr::Phr
        } else if self.factor_count() >= 2 {
            Acr::Mfa
        } else {
            Acr::Pwd
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AuthMethod::*;

    fn event(methods: &[AuthMethod]) -> Authentication {
        Authentication::new("e".into(), methods.to_vec(), 0)
    }

    #[test]
    fn amr_and_acr_follow_the_product_table() {
        let cases: &[(&[AuthMethod], &[&str], Acr)] = &[
            (&[Password], &["pwd"], Acr::Pwd),
            (&[Password, Totp], &["pwd", "otp", "mfa"], Acr::Mfa),
            (&[Password, RecoveryCode], &["pwd", "otp", "mfa"], Acr::Mfa),
            (
                &[Passkey { synced: false }],
                &["hwk", "user", "mfa"],
                Acr::Phr,
            ),
            (
                &[Passkey { synced: true }],
                &["swk", "user", "mfa"],
                Acr::Phr,
            ),
            (
                &[Password, Passkey { synced: false }],
                &["pwd", "hwk", "user", "mfa"],
                Acr::Phr,
            ),
        ];
        for (methods, amr, acr) in cases {
            let e = event(methods);
            assert_eq!(e.amr(), *amr, "{methods:?}");
            assert_eq!(e.acr(), *acr, "{methods:?}");
        }
    }

    #[test]
    fn acr_levels_are_ordered() {
        assert!(Acr::Pwd < Acr::Mfa && Acr::Mfa < Acr::Phr);
        assert_eq!(Acr::parse("mfa"), Some(Acr::Mfa));
        assert_eq!(Acr::parse("urn:other"), None);
    }
}
