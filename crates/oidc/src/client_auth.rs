//! Client authentication at the token, revocation and introspection
//! endpoints (RFC 6749 2.3, OIDC Core 9), and the form body they share.

use axum::http::{HeaderMap, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use zapini_core::form::Params;

use crate::OidcState;
use crate::assertion::{self, JWT_BEARER};
use crate::clients::{AuthMethod, Client};
use crate::error::OAuthError;

/// The form body of a back-channel request: RFC 6749 3.2 (and RFC 7009 2.1,
/// RFC 7662 2.1) require `application/x-www-form-urlencoded`, and 3.2 that
/// no parameter is sent twice.
pub fn read_form(headers: &HeaderMap, body: &[u8]) -> Result<Params, OAuthError> {
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !form {
        return Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let params = Params::parse(body);
    if let Some(name) = params.first_duplicate() {
        return Err(OAuthError::invalid_request(format!(
            "parameter {name} was sent more than once"
        )));
    }
    Ok(params)
}

/// Client credentials from the `Authorization: Basic` header: each part is
/// form-urlencoded before base64 (RFC 6749 2.3.1).
pub(crate) fn basic_credentials(
    headers: &HeaderMap,
) -> Result<Option<(String, String)>, OAuthError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(OAuthError::invalid_request(
            "more than one Authorization header",
        ));
    }
    let value = value.to_str().map_err(|_| OAuthError::invalid_client())?;
    let Some((scheme, encoded)) = value.split_once(' ') else {
        return Err(OAuthError::invalid_client());
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(OAuthError::invalid_client());
    }
    let decoded = STANDARD
        .decode(encoded.trim())
        .map_err(|_| OAuthError::invalid_client())?;
    let decoded = String::from_utf8(decoded).map_err(|_| OAuthError::invalid_client())?;
    let (id, secret) = decoded
        .split_once(':')
        .ok_or_else(OAuthError::invalid_client)?;
    // A raw `&` or `=` cannot appear in a form-urlencoded value; refusing
    // them keeps the decoding exact.
    if decoded.contains(['&', '=']) {
        return Err(OAuthError::invalid_client());
    }
    let unescape = |s: &str| -> String {
        form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Ok(Some((unescape(id), unescape(secret))))
}

/// What the request presented to identify the client.
enum Presented<'p> {
    Secret(String, String, AuthMethod),
    Assertion(&'p str),
    PublicId(&'p str),
}

/// RFC 6749 2.3: exactly one authentication method, the one registered.
/// `endpoint` is the URL the request was sent to, an accepted audience of a
/// client assertion.
pub async fn authenticate<'a>(
    state: &'a OidcState,
    headers: &HeaderMap,
    params: &Params,
    endpoint: &str,
) -> Result<&'a Client, OAuthError> {
    let presented = presented(headers, params)?;
    let client_id = match &presented {
        Presented::Secret(id, _, _) => id.clone(),
        Presented::Assertion(jwt) => match params.get("client_id") {
            Some(id) => id.to_owned(),
            None => assertion::claimed_client(jwt).ok_or_else(OAuthError::invalid_client)?,
        },
        Presented::PublicId(id) => (*id).to_owned(),
    };
    let client = state
        .clients
        .get(&client_id)
        .ok_or_else(OAuthError::invalid_client)?;

    match presented {
        Presented::Secret(_, secret, used) => {
            if client.auth_method != used || !client.secret_matches(&secret) {
                return Err(OAuthError::invalid_client());
            }
        }
        Presented::Assertion(jwt) => {
            if client.auth_method != AuthMethod::PrivateKeyJwt {
                return Err(OAuthError::invalid_client());
            }
            let now = state.clock.now();
            assertion::verify(state, client, jwt, endpoint, now).await?;
        }
        Presented::PublicId(_) => {
            if client.auth_method != AuthMethod::None {
                return Err(OAuthError::invalid_client());
            }
        }
    }
    Ok(client)
}

fn presented<'p>(headers: &HeaderMap, params: &'p Params) -> Result<Presented<'p>, OAuthError> {
    let basic = basic_credentials(headers)?;
    let body_id = params.get("client_id");
    let body_secret = params.get("client_secret");
    let assertion = match (
        params.get("client_assertion_type"),
        params.get("client_assertion"),
    ) {
        (None, None) => None,
        (Some(JWT_BEARER), Some(jwt)) => Some(jwt),
        // RFC 7521 4.2: the type must be one we support, and the pair
        // comes together.
        (Some(_), Some(_)) => return Err(OAuthError::invalid_client()),
        _ => {
            return Err(OAuthError::invalid_request(
                "client_assertion and client_assertion_type go together",
            ));
        }
    };
    let methods = usize::from(basic.is_some())
        + usize::from(body_secret.is_some())
        + usize::from(assertion.is_some());
    if methods > 1 {
        return Err(OAuthError::invalid_request(
            "use one client authentication method, not two",
        ));
    }

    if let Some((id, secret)) = basic {
        if body_id.is_some_and(|b| b != id) {
            return Err(OAuthError::invalid_request(
                "client_id differs from the authenticated client",
            ));
        }
        return Ok(Presented::Secret(id, secret, AuthMethod::ClientSecretBasic));
    }
    if let Some(secret) = body_secret {
        let id = body_id.ok_or_else(OAuthError::invalid_client)?;
        return Ok(Presented::Secret(
            id.to_owned(),
            secret.to_owned(),
            AuthMethod::ClientSecretPost,
        ));
    }
    if let Some(jwt) = assertion {
        // RFC 7521 4.2: a client_id sent along must name the same client;
        // the assertion's own check (iss = sub = client_id) enforces it.
        return Ok(Presented::Assertion(jwt));
    }
    let id = body_id.ok_or_else(OAuthError::invalid_client)?;
    Ok(Presented::PublicId(id))
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn basic_credentials_are_form_decoded() {
        let mut headers = HeaderMap::new();
        let encoded = STANDARD.encode("my%3Aclient:s%2Bcr+t");
        headers.insert(
            header::AUTHORIZATION,
            format!("Basic {encoded}").parse().unwrap(),
        );
        let (id, secret) = basic_credentials(&headers).unwrap().unwrap();
        assert_eq!(id, "my:client");
        assert_eq!(secret, "s+cr t");

        for raw in ["demo:secret&junk", "demo&x=1:secret"] {
            let encoded = STANDARD.encode(raw);
            headers.insert(
                header::AUTHORIZATION,
                format!("Basic {encoded}").parse().unwrap(),
            );
            assert!(basic_credentials(&headers).is_err(), "{raw}");
        }
    }

    #[test]
    fn two_methods_or_half_an_assertion_are_refused() {
        let mut headers = HeaderMap::new();
        let encoded = STANDARD.encode("app:secret");
        let basic = HeaderValue::from_str(&format!("Basic {encoded}")).unwrap();
        headers.insert(header::AUTHORIZATION, basic);
        let both = Params::parse(
            format!("client_assertion_type={JWT_BEARER}&client_assertion=a.b.c").as_bytes(),
        );
        let err = presented(&headers, &both).err().unwrap();
        assert_eq!(err.code, "invalid_request");

        let half = Params::parse(b"client_assertion=a.b.c&client_id=app");
        let err = presented(&HeaderMap::new(), &half).err().unwrap();
        assert_eq!(err.code, "invalid_request");

        let other = Params::parse(b"client_assertion_type=urn:x&client_assertion=a.b.c");
        let err = presented(&HeaderMap::new(), &other).err().unwrap();
        assert_eq!(err.code, "invalid_client");
    }
}
