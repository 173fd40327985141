//! A software WebAuthn authenticator, for the failure paths a real browser
//! will not produce: a wrong origin, a wrong rp id, user verification not
//! done, a replayed challenge, a signature counter going backwards.
//!
//! It speaks the wire format of WebAuthn L2 and nothing more: the client
//! data JSON (5.8.1), authenticator data (6.1), "none" attestation (8.7) in
//! CBOR (RFC 8949) with an ES256 COSE key (RFC 9053), and ECDSA P-256
//! signatures in DER. The happy paths are tested with Chromium's own
//! virtual authenticator; this one exists to be told to misbehave.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openssl::bn::{BigNum, BigNumContext};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::{MessageDigest, hash};
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::sign::Signer;
use serde_json::{Value, json};

const UP: u8 = 0x01;
const UV: u8 = 0x04;
const BE: u8 = 0x08;
const BS: u8 = 0x10;
const AT: u8 = 0x40;

fn b64(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

fn sha256(data: &[u8]) -> Vec<u8> {
    hash(MessageDigest::sha256(), data)
        .expect("sha256")
        .to_vec()
}

/// The few CBOR items attestation objects and COSE keys need.
enum Cbor {
    Int(i64),
    Bytes(Vec<u8>),
    Text(&'static str),
    Map(Vec<(Cbor, Cbor)>),
}

impl Cbor {
    fn head(out: &mut Vec<u8>, major: u8, n: u64) {
        let m = major << 5;
        match n {
            0..=23 => out.push(m | n as u8),
            24..=0xff => out.extend([m | 24, n as u8]),
            0x100..=0xffff => {
                out.push(m | 25);
                out.extend((n as u16).to_be_bytes());
            }
            _ => {
                out.push(m | 26);
                out.extend((n as u32).to_be_bytes());
            }
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Cbor::Int(i) if *i >= 0 => Self::head(out, 0, *i as u64),
            Cbor::Int(i) => Self::head(out, 1, (-1 - *i) as u64),
            Cbor::Bytes(b) => {
                Self::head(out, 2, b.len() as u64);
                out.extend(b);
            }
            Cbor::Text(t) => {
                Self::head(out, 3, t.len() as u64);
                out.extend(t.as_bytes());
            }
            Cbor::Map(entries) => {
                Self::head(out, 5, entries.len() as u64);
                for (k, v) in entries {
                    k.encode(out);
                    v.encode(out);
                }
            }
        }
    }

    fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

/// How the next ceremony should (mis)behave.
#[derive(Debug, Clone)]
pub struct Ceremony {
    /// The origin the "browser" puts in the client data.
    pub origin: String,
    /// The rp id whose hash goes into the authenticator data.
    pub rp_id: String,
    /// Whether the user-verified flag is set.
    pub user_verified: bool,
    /// A challenge to answer instead of the one in the options.
    pub challenge: Option<String>,
}

impl Ceremony {
    /// A well-behaved ceremony for a server at `base` (`http://localhost:PORT`).
    pub fn honest(base: &str) -> Self {
        Self {
            origin: base.to_owned(),
            rp_id: "localhost".to_owned(),
            user_verified: true,
            challenge: None,
        }
    }
}

/// One discoverable ES256 credential.
pub struct SoftPasskey {
    key: PKey<Private>,
    pub credential_id: Vec<u8>,
    /// The user handle the server gave at registration.
    pub user_handle: Vec<u8>,
    /// The signature counter reported on the next assertion.
    pub counter: u32,
    /// Backup eligible and backed up (a synced passkey).
    pub synced: bool,
}

impl SoftPasskey {
    pub fn new(synced: bool) -> Self {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).expect("P-256");
        let key = PKey::from_ec_key(EcKey::generate(&group).expect("key")).expect("pkey");
        let mut credential_id = vec![0u8; 32];
        openssl::rand::rand_bytes(&mut credential_id).expect("random");
        Self {
            key,
            credential_id,
            user_handle: Vec::new(),
            counter: 0,
            synced,
        }
    }

    fn flags(&self, ceremony: &Ceremony, extra: u8) -> u8 {
        let mut flags = UP | extra;
        if ceremony.user_verified {
            flags |= UV;
        }
        if self.synced {
            flags |= BE | BS;
        }
        flags
    }

    fn cose_key(&self) -> Vec<u8> {
        let ec = self.key.ec_key().expect("ec key");
        let mut ctx = BigNumContext::new().expect("bn ctx");
        let (mut x, mut y) = (BigNum::new().expect("bn"), BigNum::new().expect("bn"));
        ec.public_key()
            .affine_coordinates(ec.group(), &mut x, &mut y, &mut ctx)
            .expect("coordinates");
        Cbor::Map(vec![
            (Cbor::Int(1), Cbor::Int(2)),  // kty: EC2
            (Cbor::Int(3), Cbor::Int(-7)), // alg: ES256
            (Cbor::Int(-1), Cbor::Int(1)), // crv: P-256
            (Cbor::Int(-2), Cbor::Bytes(x.to_vec_padded(32).expect("x"))),
            (Cbor::Int(-3), Cbor::Bytes(y.to_vec_padded(32).expect("y"))),
        ])
        .to_vec()
    }

    fn client_data(kind: &str, options: &Value, ceremony: &Ceremony) -> Vec<u8> {
        let challenge = ceremony.challenge.clone().unwrap_or_else(|| {
            options["publicKey"]["challenge"]
                .as_str()
                .expect("challenge in the options")
                .to_owned()
        });
        serde_json::to_vec(&json!({
            "type": kind,
            "challenge": challenge,
            "origin": ceremony.origin,
            "crossOrigin": false,
        }))
        .expect("client data")
    }

    /// Answers `navigator.credentials.create()` options (the server's JSON,
    /// with `publicKey`); returns the credential as the page posts it.
    pub fn register(&mut self, options: &Value, ceremony: &Ceremony) -> String {
        let user_id = options["publicKey"]["user"]["id"]
            .as_str()
            .expect("user id in the options");
        self.user_handle = URL_SAFE_NO_PAD.decode(user_id).expect("base64url user id");
        let client_data = Self::client_data("webauthn.create", options, ceremony);
        let mut auth_data = sha256(ceremony.rp_id.as_bytes());
        auth_data.push(self.flags(ceremony, AT));
        auth_data.extend(self.counter.to_be_bytes());
        auth_data.extend([0u8; 16]); // AAGUID: none given
        auth_data.extend((self.credential_id.len() as u16).to_be_bytes());
        auth_data.extend(&self.credential_id);
        auth_data.extend(self.cose_key());
        let attestation = Cbor::Map(vec![
            (Cbor::Text("fmt"), Cbor::Text("none")),
            (Cbor::Text("attStmt"), Cbor::Map(vec![])),
            (Cbor::Text("authData"), Cbor::Bytes(auth_data)),
        ])
        .to_vec();
        json!({
            "id": b64(&self.credential_id),
            "rawId": b64(&self.credential_id),
            "type": "public-key",
            "response": {
                "attestationObject": b64(&attestation),
                "clientDataJSON": b64(&client_data),
            },
            "extensions": {},
        })
        .to_string()
    }

    /// Answers `navigator.credentials.get()` options; returns the assertion
    /// as the page posts it.
    pub fn assert(&mut self, options: &Value, ceremony: &Ceremony) -> String {
        let client_data = Self::client_data("webauthn.get", options, ceremony);
        let mut auth_data = sha256(ceremony.rp_id.as_bytes());
        auth_data.push(self.flags(ceremony, 0));
        auth_data.extend(self.counter.to_be_bytes());
        let mut signed = auth_data.clone();
        signed.extend(sha256(&client_data));
        let mut signer = Signer::new(MessageDigest::sha256(), &self.key).expect("signer");
        let signature = signer.sign_oneshot_to_vec(&signed).expect("signature");
        json!({
            "id": b64(&self.credential_id),
            "rawId": b64(&self.credential_id),
            "type": "public-key",
            "response": {
                "authenticatorData": b64(&auth_data),
                "clientDataJSON": b64(&client_data),
                "signature": b64(&signature),
                "userHandle": b64(&self.user_handle),
            },
            "extensions": {},
        })
        .to_string()
    }
}
