//! TOTP (RFC 6238) and recovery codes: enrolment material, verification, and
//! the single-use rules, which the store enforces atomically.

use qrcode::QrCode;
use qrcode::render::svg;
use totp_rs::{Algorithm, Builder, Secret as TotpSecret, Totp};
use zapini_core::Secret;
use zapini_core::crypto::{CryptoError, Sealer, random_bytes};
use zapini_store::{Store, StoreError};

/// Purpose labels for sealing and keyed hashing.
pub const SEED_PURPOSE: &str = "totp-seed";
const RECOVERY_PURPOSE: &str = "recovery-code";

/// How many recovery codes a set has.
pub const RECOVERY_CODES: usize = 10;

/// Errors of second-factor handling.
#[derive(Debug, thiserror::Error)]
pub enum FactorError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error("totp: {0}")]
    Totp(String),
}

/// SHA-1, 6 digits, 30 seconds: what every authenticator app reads; one step
/// of skew either way (RFC 6238 5.2, product decision).
fn totp(seed: &[u8], issuer: &str, account: &str) -> Result<Totp, FactorError> {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_step_duration(30)
        .with_skew(1)
        .with_secret(seed.to_vec())
        .with_issuer(Some(issuer))
        .with_account_name(account)
        .build()
        .map_err(|e| FactorError::Totp(e.to_string()))
}

/// What the enrolment page shows for a new seed.
pub struct Enrolment {
    /// The seed in base32, for typing into an app by hand.
    pub secret_text: String,
    pub otpauth_url: String,
    /// The `otpauth://` URL as an SVG QR code.
    pub qr_svg: String,
}

impl Enrolment {
    /// The base32 key in groups of four, easier to type by hand.
    pub fn secret_groups(&self) -> String {
        let chars: Vec<char> = self.secret_text.chars().collect();
        chars
            .chunks(4)
            .map(|c| c.iter().collect::<String>())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A new random seed (160 bits, RFC 4226 4 recommends at least 128).
pub fn new_seed() -> Result<Vec<u8>, FactorError> {
    Ok(random_bytes(20)?)
}

pub fn enrolment(seed: &[u8], issuer: &str, account: &str) -> Result<Enrolment, FactorError> {
    let t = totp(seed, issuer, account)?;
    let otpauth_url = t.to_url().map_err(|e| FactorError::Totp(e.to_string()))?;
    let code = QrCode::new(otpauth_url.as_bytes()).map_err(|e| FactorError::Totp(e.to_string()))?;
    let qr_svg = code
        .render::<svg::Color<'_>>()
        .min_dimensions(220, 220)
        .quiet_zone(true)
        .build();
    let secret_text = TotpSecret::from(seed.to_vec()).to_base32();
    Ok(Enrolment {
        secret_text,
        otpauth_url,
        qr_svg,
    })
}

/// Digits only, with spaces and dashes people type removed.
fn normalise_code(code: &str) -> Option<String> {
    let digits: String = code
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
    (digits.len() == 6 && digits.bytes().all(|b| b.is_ascii_digit())).then_some(digits)
}

/// The time step `code` belongs to for `seed` at `now`, within the skew.
pub fn matching_step(seed: &[u8], code: &str, now: i64) -> Option<i64> {
    let code = normalise_code(code)?;
    let t = totp(seed, "x", "x").ok()?;
    let now = u64::try_from(now).ok()?;
    t.check(&code, now)
        .and_then(|step| i64::try_from(step).ok())
}

/// Checks a TOTP code for a user who has TOTP on. A code whose step was
/// accepted before is refused exactly like a wrong one.
pub async fn verify_totp(
    store: &Store,
    sealer: &Sealer,
    user_id: &str,
    code: &str,
    now: i64,
) -> Result<bool, FactorError> {
    let Some(credential) = store.totps().get(user_id).await? else {
        return Ok(false);
    };
    let seed = sealer.open(SEED_PURPOSE, &credential.secret_sealed)?;
    let Some(step) = matching_step(&seed, code, now) else {
        return Ok(false);
    };
    Ok(store.totps().accept_step(user_id, step).await?)
}

/// Ten new recovery codes: 12 characters of base32, 60 bits each, shown as
/// `xxxx-xxxx-xxxx`.
pub fn new_recovery_codes() -> Result<Vec<Secret>, FactorError> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    (0..RECOVERY_CODES)
        .map(|_| {
            let bytes = random_bytes(12)?;
            let chars: String = bytes
                .iter()
                .map(|b| ALPHABET[usize::from(b % 32)] as char)
                .collect();
            Ok(Secret::new(format!(
                "{}-{}-{}",
                &chars[0..4],
                &chars[4..8],
                &chars[8..12]
            )))
        })
        .collect()
}

fn normalise_recovery(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

pub fn recovery_hash(sealer: &Sealer, code: &str) -> Result<String, FactorError> {
    Ok(sealer.keyed_hash(RECOVERY_PURPOSE, normalise_recovery(code).as_bytes())?)
}

/// Stores a new set, replacing the old one.
pub async fn store_recovery_codes(
    store: &Store,
    sealer: &Sealer,
    user_id: &str,
    codes: &[Secret],
    now: i64,
) -> Result<(), FactorError> {
    let hashes = codes
        .iter()
        .map(|c| recovery_hash(sealer, c.expose()))
        .collect::<Result<Vec<_>, _>>()?;
    store
        .recovery_codes()
        .replace(user_id, &hashes, now)
        .await?;
    Ok(())
}

/// Spends a recovery code; false if it is wrong or already spent.
pub async fn use_recovery_code(
    store: &Store,
    sealer: &Sealer,
    user_id: &str,
    code: &str,
    now: i64,
) -> Result<bool, FactorError> {
    if normalise_recovery(code).len() != 12 {
        return Ok(false);
    }
    let hash = recovery_hash(sealer, code)?;
    Ok(store.recovery_codes().consume(user_id, &hash, now).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B, SHA-1 rows (8 digits there; the last 6 here).
    #[test]
    fn codes_follow_rfc_6238_test_vectors() {
        let seed = b"12345678901234567890";
        for (time, code) in [
            (59, "287082"),
            (1111111109, "081804"),
            (1234567890, "005924"),
            (2000000000, "279037"),
        ] {
            assert_eq!(matching_step(seed, code, time), Some(time / 30), "{time}");
        }
    }

    #[test]
    fn one_step_of_skew_and_no_more() {
        let seed = b"12345678901234567890";
        // 287082 belongs to step 1 (t = 30..59).
        assert_eq!(matching_step(seed, "287082", 59 + 30), Some(1));
        assert_eq!(matching_step(seed, "287 082", 59 - 30), Some(1));
        assert_eq!(matching_step(seed, "287082", 59 + 60), None);
        assert_eq!(matching_step(seed, "28708", 59), None);
        assert_eq!(matching_step(seed, "abcdef", 59), None);
    }

    #[test]
    fn recovery_codes_have_sixty_bits_and_normalise() {
        let codes = new_recovery_codes().unwrap();
        assert_eq!(codes.len(), 10);
        for c in &codes {
            assert_eq!(c.expose().len(), 14);
            assert_eq!(normalise_recovery(c.expose()).len(), 12);
        }
        assert_eq!(normalise_recovery("ABCD-efgh ijkl"), "abcdefghijkl");
    }

    #[test]
    fn enrolment_gives_an_otpauth_url_and_an_svg() {
        let e = enrolment(&new_seed().unwrap(), "Zapini ID", "ana@example.com").unwrap();
        assert!(e.otpauth_url.starts_with("otpauth://totp/"));
        assert!(e.otpauth_url.contains(&format!("secret={}", e.secret_text)));
        assert!(e.qr_svg.contains("<svg"));
    }
}
