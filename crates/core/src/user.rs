//! Users as the rest of the product sees them.

use serde::{Deserialize, Serialize};

use crate::clock::UnixTime;

/// An account. The password hash lives only in the store's row, never here,
/// so a `User` can be passed around and logged without care.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Stable, opaque identifier; the `sub` claim.
    pub id: String,
    /// Lower-cased e-mail address, the sign-in name.
    pub email: String,
    /// Whether the operator vouched for the address when creating the user.
    pub email_verified: bool,
    pub name: Option<String>,
    pub disabled: bool,
    pub created_at: UnixTime,
}

/// Normalises an e-mail address for lookup: trimmed and lower-cased.
///
/// Lower-casing the local part is not what RFC 5321 says, but no real mail
/// provider distinguishes case, and two accounts differing only by case would
/// confuse people.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// A plausible e-mail address: one `@`, something on both sides, no spaces.
pub fn is_plausible_email(email: &str) -> bool {
    let mut parts = email.split('@');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(local), Some(domain), None) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !email.chars().any(|c| c.is_whitespace() || c.is_control())
                && email.len() <= 254
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(normalize_email("  Ana@Example.COM "), "ana@example.com");
        assert!(is_plausible_email("ana@example.com"));
        assert!(!is_plausible_email("ana@example"));
        assert!(!is_plausible_email("ana@@example.com"));
        assert!(!is_plausible_email("an a@example.com"));
        assert!(!is_plausible_email("@example.com"));
    }
}
