use super::*;

fn write(dir: &Path, name: &str, body: &str) {
    std::fs::write(dir.join(name), body).unwrap();
}

fn tempdir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("zid-clients-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn no_env(_: &str) -> Option<String> {
    None
}

const SECRET: &str = "0123456789abcdef0123456789abcdef-secret";

#[test]
fn a_client_with_a_hashed_secret_loads_and_checks_its_secret() {
    let dir = tempdir("ok");
    let hash = format_secret_hash(SECRET);
    write(
        &dir,
        "app.toml",
        &format!(
            "client_id = \"app\"\nredirect_uris = [\"https://app.example/cb\"]\n\
             client_secret_hash = \"{hash}\"\n"
        ),
    );
    let registry = ClientRegistry::load_dir(&dir, &no_env).unwrap();
    let client = registry.get("app").unwrap();
    assert!(client.secret_matches(SECRET));
    assert!(!client.secret_matches("wrong"));
    assert_eq!(client.auth_method, AuthMethod::ClientSecretBasic);
}

#[test]
fn secrets_come_from_env_or_file() {
    let dir = tempdir("env");
    write(&dir, "s.txt", &format!("{SECRET}\n"));
    write(
        &dir,
        "a.toml",
        "client_id = \"a\"\nredirect_uris = [\"https://a.example/cb\"]\nclient_secret_env = \"A_SECRET\"\n",
    );
    write(
        &dir,
        "b.toml",
        "client_id = \"b\"\nredirect_uris = [\"https://b.example/cb\"]\nclient_secret_file = \"s.txt\"\n",
    );
    let env = |k: &str| (k == "A_SECRET").then(|| SECRET.to_owned());
    let registry = ClientRegistry::load_dir(&dir, &env).unwrap();
    assert!(registry.get("a").unwrap().secret_matches(SECRET));
    assert!(registry.get("b").unwrap().secret_matches(SECRET));
}

#[test]
fn problems_name_file_field_and_reason() {
    let dir = tempdir("bad");
    write(
        &dir,
        "bad.toml",
        "client_id = \"bad\"\nredirect_uris = [\"http://evil.example/cb\", \"https://x/cb#frag\", \"https://a@b.example/cb\", \"https://*.example/cb\", \"https://x.example/cb\\n\"]\n\
         client_secret_env = \"MISSING\"\nscopes = [\"openid\", \"admin\"]\n",
    );
    write(
        &dir,
        "typo.toml",
        "client_id = \"t\"\nredirect_uri = [\"https://t/cb\"]\n",
    );
    let errors = ClientRegistry::load_dir(&dir, &no_env).unwrap_err().0;
    let fields: Vec<_> = errors.iter().map(|p| p.field.as_str()).collect();
    let bad_uris = fields.iter().filter(|f| **f == "redirect_uris").count();
    assert_eq!(bad_uris, 5, "{errors:?}");
    assert!(fields.contains(&"scopes"), "{errors:?}");
    assert!(fields.contains(&"client_secret_env"), "{errors:?}");
    let typo = errors
        .iter()
        .find(|p| p.file.ends_with("typo.toml"))
        .unwrap();
    assert_eq!(typo.field, "redirect_uri", "{typo}");
    assert!(errors.iter().all(|p| !p.reason.is_empty()));
}

#[test]
fn a_public_client_must_not_have_a_secret() {
    let dir = tempdir("public");
    write(
        &dir,
        "p.toml",
        "client_id = \"p\"\nredirect_uris = [\"https://p.example/cb\"]\n\
         token_endpoint_auth_method = \"none\"\nclient_secret_env = \"X\"\n",
    );
    let errors = ClientRegistry::load_dir(&dir, &no_env).unwrap_err().0;
    assert_eq!(errors[0].field, "token_endpoint_auth_method");
}

fn client_with(uris: &[&str]) -> Client {
    Client {
        client_id: "c".into(),
        name: "c".into(),
        redirect_uris: uris.iter().map(|s| s.to_string()).collect(),
        auth_method: AuthMethod::None,
        secret_hash: None,
        keys: Vec::new(),
        jwks_uri: None,
        grant_types: vec![GrantType::AuthorizationCode],
        scopes: default_scopes(),
        id_token_alg: "RS256".into(),
        access_token_alg: "RS256".into(),
        require_2fa: false,
        first_party: false,
        min_acr: zapini_core::Acr::Pwd,
        post_logout_redirect_uris: vec!["https://app.example/bye".into()],
        backchannel_logout_uri: None,
        source: PathBuf::new(),
    }
}

#[test]
fn redirect_uris_match_exactly() {
    let c = client_with(&["https://app.example/cb"]);
    assert!(c.redirect_uri_allowed("https://app.example/cb"));
    for bad in [
        "https://APP.example/cb",
        "https://app.example/CB",
        "https://app.example/cb/",
        "https://app.example/cb?x=1",
        "https://app.example/cb#f",
        "https://evil@app.example/cb",
        "https://app.example/x/%2e%2e/cb",
        "https://app.example/x/../cb",
        "https://app.example:443/cb",
    ] {
        assert!(!c.redirect_uri_allowed(bad), "{bad}");
    }
}

#[test]
fn loopback_ip_redirects_may_change_only_the_port() {
    let c = client_with(&["http://127.0.0.1/cb", "http://localhost:8000/cb"]);
    assert!(c.redirect_uri_allowed("http://127.0.0.1:51234/cb"));
    assert!(!c.redirect_uri_allowed("http://127.0.0.1:51234/other"));
    assert!(!c.redirect_uri_allowed("http://127.0.0.2:51234/cb"));
    assert!(!c.redirect_uri_allowed("http://127.0.0.1:5555\\@evil.example/cb"));
    assert!(!c.redirect_uri_allowed("http://127.0.0.1:80@127.0.0.1/cb"));
    assert!(!c.redirect_uri_allowed("http://x@127.0.0.1:80/cb"));
    // `localhost` is not an IP literal; RFC 8252 8.3 advises against it, so
    // it gets no port exception.
    assert!(!c.redirect_uri_allowed("http://localhost:9000/cb"));
}

fn ec_public_jwk() -> String {
    use josekit::jws::ES256;
    let pair = ES256.generate_key_pair().unwrap();
    let mut jwk = pair.to_jwk_public_key();
    jwk.set_key_id("k1");
    jwk.to_string()
}

#[test]
fn a_private_key_jwt_client_takes_its_keys_inline_as_a_table_or_json() {
    let dir = tempdir("pkjwt");
    let jwk = ec_public_jwk();
    write(
        &dir,
        "json.toml",
        &format!(
            "client_id = \"json\"\nredirect_uris = [\"https://j.example/cb\"]\n\
             token_endpoint_auth_method = \"private_key_jwt\"\njwks = '{{\"keys\":[{jwk}]}}'\n"
        ),
    );
    let value: serde_json::Value = serde_json::from_str(&jwk).unwrap();
    let table: Vec<String> = value
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| format!("{k} = {v}"))
        .collect();
    write(
        &dir,
        "table.toml",
        &format!(
            "client_id = \"table\"\nredirect_uris = [\"https://t.example/cb\"]\n\
             token_endpoint_auth_method = \"private_key_jwt\"\n[[jwks.keys]]\n{}\n",
            table.join("\n")
        ),
    );
    let registry = ClientRegistry::load_dir(&dir, &no_env).unwrap();
    for id in ["json", "table"] {
        let client = registry.get(id).unwrap();
        assert_eq!(client.auth_method, AuthMethod::PrivateKeyJwt);
        assert_eq!(client.keys.len(), 1, "{id}");
        assert_eq!(client.keys[0].alg, "ES256");
        assert_eq!(client.keys[0].kid.as_deref(), Some("k1"));
        assert!(!client.secret_matches(""));
    }
}

#[test]
fn a_jwks_uri_over_https_or_loopback_http_is_accepted() {
    let dir = tempdir("pkjwt-uri");
    let head = "redirect_uris = [\"https://x.example/cb\"]\n";
    for (i, uri) in [
        "https://keys.example/jwks.json",
        "http://127.0.0.1:8080/jwks",
        "http://localhost/jwks",
        "http://[::1]:9/jwks",
    ]
    .iter()
    .enumerate()
    {
        write(
            &dir,
            &format!("c{i}.toml"),
            &format!(
                "client_id = \"c{i}\"\n{head}token_endpoint_auth_method = \"private_key_jwt\"\n\
                 jwks_uri = \"{uri}\"\n"
            ),
        );
    }
    let registry = ClientRegistry::load_dir(&dir, &no_env).unwrap();
    let client = registry.get("c0").unwrap();
    assert_eq!(
        client.jwks_uri.as_deref(),
        Some("https://keys.example/jwks.json")
    );
    assert!(client.keys.is_empty());
    assert_eq!(registry.len(), 4);
}

#[test]
fn keys_secrets_and_jwks_uri_are_checked_for_private_key_jwt() {
    let dir = tempdir("pkjwt-bad");
    let head = "redirect_uris = [\"https://x.example/cb\"]\n";
    write(
        &dir,
        "nokeys.toml",
        &format!("client_id = \"a\"\n{head}token_endpoint_auth_method = \"private_key_jwt\"\n"),
    );
    // An http jwks_uri off loopback, one with a fragment, and both forms.
    for (file, uri) in [
        ("plain.toml", "http://b.example/jwks"),
        ("fragment.toml", "https://b.example/jwks#k"),
        ("relative.toml", "/jwks"),
    ] {
        write(
            &dir,
            file,
            &format!(
                "client_id = \"{file}\"\n{head}token_endpoint_auth_method = \"private_key_jwt\"\n\
                 jwks_uri = \"{uri}\"\n"
            ),
        );
    }
    write(
        &dir,
        "both.toml",
        &format!(
            "client_id = \"d\"\n{head}token_endpoint_auth_method = \"private_key_jwt\"\n\
             jwks_uri = \"https://b.example/jwks\"\njwks = '{{\"keys\":[{}]}}'\n",
            ec_public_jwk()
        ),
    );
    write(
        &dir,
        "secret.toml",
        &format!(
            "client_id = \"c\"\n{head}token_endpoint_auth_method = \"private_key_jwt\"\n\
             jwks = '{{\"keys\":[{}]}}'\nclient_secret_env = \"X\"\n",
            ec_public_jwk()
        ),
    );
    let errors = ClientRegistry::load_dir(&dir, &no_env).unwrap_err().0;
    let field_of = |file: &str| {
        errors
            .iter()
            .filter(|p| p.file.ends_with(file))
            .map(|p| p.field.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(field_of("nokeys.toml"), ["jwks"], "{errors:?}");
    for file in ["plain.toml", "fragment.toml", "relative.toml", "both.toml"] {
        assert_eq!(field_of(file), ["jwks_uri"], "{file}: {errors:?}");
    }
    assert_eq!(
        field_of("secret.toml"),
        ["token_endpoint_auth_method"],
        "{errors:?}"
    );
}

#[test]
fn grant_types_are_checked_against_the_client_kind_and_scopes() {
    let dir = tempdir("grants");
    let hash = format_secret_hash(SECRET);
    let confidential =
        format!("redirect_uris = [\"https://x.example/cb\"]\nclient_secret_hash = \"{hash}\"\n");
    write(
        &dir,
        "ok.toml",
        &format!(
            "client_id = \"ok\"\n{confidential}\
             grant_types = [\"authorization_code\", \"refresh_token\", \"client_credentials\"]\n\
             scopes = [\"openid\", \"offline_access\"]\n"
        ),
    );
    write(
        &dir,
        "machine.toml",
        &format!(
            "client_id = \"machine\"\nclient_secret_hash = \"{hash}\"\ngrant_types = [\"client_credentials\"]\nscopes = [\"profile\"]\n"
        ),
    );
    let registry = ClientRegistry::load_dir(&dir, &no_env).unwrap();
    assert!(registry.get("ok").unwrap().allows(GrantType::RefreshToken));
    let machine = registry.get("machine").unwrap();
    assert!(machine.allows(GrantType::ClientCredentials));
    assert!(!machine.allows(GrantType::AuthorizationCode));

    let bad = tempdir("grants-bad");
    let public =
        "redirect_uris = [\"https://x.example/cb\"]\ntoken_endpoint_auth_method = \"none\"\n";
    for (name, body) in [
        (
            "public-cc",
            format!("{public}grant_types = [\"authorization_code\", \"client_credentials\"]\n"),
        ),
        (
            "unknown",
            format!("{confidential}grant_types = [\"password\"]\n"),
        ),
        (
            "no-offline",
            format!("{confidential}grant_types = [\"authorization_code\", \"refresh_token\"]\n"),
        ),
        (
            "offline-only",
            format!("{confidential}scopes = [\"openid\", \"offline_access\"]\n"),
        ),
        (
            "refresh-alone",
            format!(
                "{confidential}grant_types = [\"refresh_token\"]\nscopes = [\"offline_access\"]\n"
            ),
        ),
    ] {
        write(
            &bad,
            &format!("{name}.toml"),
            &format!("client_id = \"{name}\"\n{body}"),
        );
    }
    let errors = ClientRegistry::load_dir(&bad, &no_env).unwrap_err().0;
    for name in [
        "public-cc",
        "unknown",
        "no-offline",
        "offline-only",
        "refresh-alone",
    ] {
        assert!(
            errors
                .iter()
                .any(|p| p.file.ends_with(format!("{name}.toml"))),
            "{name}: {errors:?}"
        );
    }
}

#[test]
fn post_logout_uris_match_exactly() {
    let c = client_with(&["https://app.example/cb"]);
    assert!(c.post_logout_uri_allowed("https://app.example/bye"));
    assert!(!c.post_logout_uri_allowed("https://app.example/bye/"));
    assert!(!c.post_logout_uri_allowed("https://app.example/cb"));
}

#[test]
fn min_acr_is_a_known_level_and_require_2fa_raises_it_to_mfa() {
    let dir = tempdir("acr");
    let hash = format_secret_hash(SECRET);
    let base =
        format!("redirect_uris = [\"https://app.example/cb\"]\nclient_secret_hash = \"{hash}\"\n");
    write(
        &dir,
        "a.toml",
        &format!("client_id = \"a\"\n{base}min_acr = \"phr\"\n"),
    );
    write(
        &dir,
        "b.toml",
        &format!("client_id = \"b\"\n{base}require_2fa = true\n"),
    );
    write(
        &dir,
        "c.toml",
        &format!("client_id = \"c\"\n{base}require_auth_time = true\n"),
    );
    let registry = ClientRegistry::load_dir(&dir, &no_env).unwrap();
    assert_eq!(registry.get("a").unwrap().min_acr, zapini_core::Acr::Phr);
    assert_eq!(registry.get("b").unwrap().min_acr, zapini_core::Acr::Mfa);
    assert_eq!(registry.get("c").unwrap().min_acr, zapini_core::Acr::Pwd);

    let bad = tempdir("acr-bad");
    write(
        &bad,
        "a.toml",
        &format!("client_id = \"a\"\n{base}min_acr = \"gold\"\n"),
    );
    let errors = ClientRegistry::load_dir(&bad, &no_env).unwrap_err().0;
    assert_eq!(errors[0].field, "min_acr");
}

#[test]
fn clients_are_third_party_unless_the_file_says_first_party() {
    let dir = tempdir("first-party");
    let base =
        "redirect_uris = [\"https://a.example/cb\"]\ntoken_endpoint_auth_method = \"none\"\n";
    write(&dir, "a.toml", &format!("client_id = \"a\"\n{base}"));
    write(
        &dir,
        "b.toml",
        &format!("client_id = \"b\"\n{base}first_party = true\n"),
    );
    let registry = ClientRegistry::load_dir(&dir, &no_env).unwrap();
    assert!(!registry.get("a").unwrap().first_party);
    assert!(registry.get("b").unwrap().first_party);
}
