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
        scopes: default_scopes(),
        id_token_alg: "RS256".into(),
        access_token_alg: "RS256".into(),
        require_2fa: false,
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
