//! The `claims` request parameter (OIDC Core 5.5) and what a request asks of
//! the sign-in's level: `acr_values` (3.1.2.1), an `acr` claim request
//! (5.5.1.1) and the client's configured minimum.

use serde_json::{Map, Value};
use zapini_core::Acr;
use zapini_core::user::User;

use crate::error::OAuthError;

/// Longest `claims` parameter read; a real request is a few hundred bytes.
const MAX_CLAIMS_LEN: usize = 4096;

/// Most claims one member may name.
const MAX_CLAIMS_PER_MEMBER: usize = 32;

/// The user claims this server can return one by one.
pub const USER_CLAIMS: [&str; 3] = ["name", "email", "email_verified"];

/// What the `claims` parameter asks for.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ClaimsRequest {
    /// User claims for the ID token (OIDC Core 5.5 `id_token` member).
    pub id_token: Vec<String>,
    /// User claims for UserInfo (the `userinfo` member).
    pub userinfo: Vec<String>,
    /// The `acr` claim request, from either member.
    pub acr: Option<AcrClaim>,
}

/// An `acr` claim request (OIDC Core 5.5.1.1).
#[derive(Debug, PartialEq, Eq)]
pub struct AcrClaim {
    pub essential: bool,
    pub values: Vec<String>,
}

/// Parses the `claims` parameter. OIDC Core 5.5: a JSON object whose
/// `userinfo` and `id_token` members are objects mapping claim names to
/// `null` or to an object with `essential`, `value` or `values`. Claims the
/// server does not know are ignored; a malformed parameter is an error.
pub fn parse(text: &str) -> Result<ClaimsRequest, OAuthError> {
    let bad = |why: &str| OAuthError::invalid_request(format!("claims parameter: {why}"));
    if text.len() > MAX_CLAIMS_LEN {
        return Err(bad("longer than 4096 bytes"));
    }
    let Ok(Value::Object(top)) = serde_json::from_str::<Value>(text) else {
        return Err(bad("not a JSON object"));
    };

    let mut request = ClaimsRequest::default();
    for (member, target) in [("id_token", true), ("userinfo", false)] {
        let Some(value) = top.get(member) else {
            continue;
        };
        let Value::Object(claims) = value else {
            return Err(bad("members must be JSON objects"));
        };
        if claims.len() > MAX_CLAIMS_PER_MEMBER {
            return Err(bad("too many claims"));
        }
        for (name, spec) in claims {
            let acr = check_claim(spec).map_err(bad)?;
            if name == "acr" {
                request.acr = request.acr.or(acr);
            } else if USER_CLAIMS.contains(&name.as_str()) {
                let list = if target {
                    &mut request.id_token
                } else {
                    &mut request.userinfo
                };
                list.push(name.clone());
            }
        }
    }
    Ok(request)
}

/// Checks one claim's request object and returns it as an `acr` request.
fn check_claim(spec: &Value) -> Result<Option<AcrClaim>, &'static str> {
    let obj = match spec {
        Value::Null => return Ok(None),
        Value::Object(obj) => obj,
        _ => return Err("a claim's request must be null or an object"),
    };
    let essential = match obj.get("essential") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err("essential must be true or false"),
    };
    let mut values = Vec::new();
    match obj.get("value") {
        None => {}
        Some(Value::String(v)) => values.push(v.clone()),
        Some(_) => return Err("value must be a string"),
    }
    match obj.get("values") {
        None => {}
        Some(Value::Array(list)) => {
            for v in list.iter().take(MAX_CLAIMS_PER_MEMBER) {
                let Value::String(v) = v else {
                    return Err("values must be strings");
                };
                values.push(v.clone());
            }
        }
        Some(_) => return Err("values must be an array"),
    }
    Ok(Some(AcrClaim { essential, values }))
}

/// The least level a request demands, from `acr_values` and an `acr` claim
/// request, before the client's minimum is applied.
///
/// The levels are ordered (`pwd < mfa < phr`), so a list is met by its
/// lowest known value. Unknown values are ignored (OIDC Core 3.1.2.1 makes
/// `acr_values` voluntary). An essential `acr` claim that names no level we
/// know cannot be met (OIDC Core 5.5.1.1, RFC 9470 3).
pub fn requested_level(
    acr_values: &[String],
    claim: Option<&AcrClaim>,
) -> Result<Option<Acr>, OAuthError> {
    let lowest = |values: &[String]| values.iter().filter_map(|v| Acr::parse(v)).min();
    let from_claim = claim.and_then(|c| lowest(&c.values));
    if claim.is_some_and(|c| c.essential && !c.values.is_empty()) && from_claim.is_none() {
        return Err(OAuthError::new(
            "unmet_authentication_requirements",
            "none of the essential acr values is offered: pwd, mfa, phr",
        ));
    }
    Ok(from_claim.max(lowest(acr_values)))
}

/// The user claims named in `names` (OIDC Core 5.1), for the ID token or
/// UserInfo; `sub` is not among them.
pub fn user_claims(user: &User, names: &[String], into: &mut Map<String, Value>) {
    for name in names {
        match name.as_str() {
            "name" => {
                if let Some(n) = &user.name {
                    into.insert("name".into(), Value::from(n.clone()));
                }
            }
            "email" => {
                into.insert("email".into(), Value::from(user.email.clone()));
            }
            "email_verified" => {
                into.insert("email_verified".into(), Value::from(user.email_verified));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_name_user_claims_and_acr() {
        let r = parse(
            r#"{"id_token":{"email":null,"acr":{"essential":true,"values":["mfa","phr"]}},
                "userinfo":{"name":{"essential":true},"shoe_size":null}}"#,
        )
        .unwrap();
        assert_eq!(r.id_token, ["email"]);
        assert_eq!(r.userinfo, ["name"]);
        let acr = r.acr.unwrap();
        assert!(acr.essential);
        assert_eq!(acr.values, ["mfa", "phr"]);
    }

    #[test]
    fn malformed_claims_are_invalid_requests() {
        for text in [
            "",
            "[]",
            "{",
            r#"{"id_token":[]}"#,
            r#"{"id_token":{"email":1}}"#,
            r#"{"id_token":{"acr":{"essential":"yes"}}}"#,
            r#"{"id_token":{"acr":{"values":"mfa"}}}"#,
            r#"{"id_token":{"acr":{"values":[1]}}}"#,
        ] {
            assert_eq!(parse(text).unwrap_err().code, "invalid_request", "{text}");
        }
        let long = format!(r#"{{"x":"{}"}}"#, "a".repeat(5000));
        assert!(parse(&long).is_err());
    }

    #[test]
    fn the_lowest_known_level_is_required() {
        let values = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            requested_level(&values(&["phr", "mfa"]), None).unwrap(),
            Some(Acr::Mfa)
        );
        assert_eq!(requested_level(&values(&["urn:x"]), None).unwrap(), None);
        let essential = AcrClaim {
            essential: true,
            values: values(&["phr"]),
        };
        assert_eq!(
            requested_level(&[], Some(&essential)).unwrap(),
            Some(Acr::Phr)
        );
        let unknown = AcrClaim {
            essential: true,
            values: values(&["urn:gold"]),
        };
        assert_eq!(
            requested_level(&[], Some(&unknown)).unwrap_err().code,
            "unmet_authentication_requirements"
        );
    }
}
