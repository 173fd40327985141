//! `zapini-id config check` on broken files: one line per problem, with the
//! file, the field and the reason, a "did you mean" for near misses, and a
//! non-zero exit.

use std::path::Path;
use std::process::Command;

use zapini_id_tests::binary;

struct Checked {
    ok: bool,
    out: String,
}

fn check(dir: &Path, settings: &str, clients: &[(&str, &str)]) -> Checked {
    let clients_dir = dir.join("clients");
    std::fs::create_dir_all(&clients_dir).unwrap();
    for (name, text) in clients {
        std::fs::write(clients_dir.join(name), text).unwrap();
    }
    let file = dir.join("zapini-id.toml");
    std::fs::write(
        &file,
        format!(
            "clients_dir = {:?}\n{settings}",
            clients_dir.display().to_string()
        ),
    )
    .unwrap();
    let output = Command::new(binary())
        .args(["config", "check", "--config"])
        .arg(&file)
        .env_remove("ZAPINI_ID_SECRET")
        .output()
        .expect("running zapini-id");
    Checked {
        ok: output.status.success(),
        out: String::from_utf8_lossy(&output.stdout).into_owned(),
    }
}

fn temp(name: &str) -> std::path::PathBuf {
    let dir =
        std::env::temp_dir().join(format!("zapini-config-check-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

const GOOD_CLIENT: &str = "client_id = \"good\"\nredirect_uris = [\"https://good.example.com/cb\"]\n\
                           token_endpoint_auth_method = \"none\"\n";

#[test]
fn good_files_pass() {
    let dir = temp("good");
    let checked = check(&dir, "", &[("good.toml", GOOD_CLIENT)]);
    assert!(checked.ok, "{}", checked.out);
    assert!(checked.out.contains("1 client(s) OK"), "{}", checked.out);
}

#[test]
fn a_misspelt_setting_is_named_with_the_key_it_was_meant_to_be() {
    let dir = temp("settings");
    let checked = check(
        &dir,
        "listn = \"127.0.0.1:9\"\n",
        &[("good.toml", GOOD_CLIENT)],
    );
    assert!(!checked.ok);
    assert!(
        checked
            .out
            .contains("unknown key `listn`; did you mean `listen`?"),
        "{}",
        checked.out
    );
    let checked = check(&dir, "[session]\nttl = 1\n[tokens]\ncode_ttl = 600\n", &[]);
    assert!(!checked.ok);
    assert!(
        checked
            .out
            .contains("zapini-id.toml: session.ttl: must be 300 seconds to 30 days, got 1"),
        "{}",
        checked.out
    );
    assert!(
        checked
            .out
            .contains("zapini-id.toml: tokens.code_ttl: must be 1 to 60 seconds"),
        "every problem at once: {}",
        checked.out
    );
}

#[test]
fn every_problem_of_every_client_file_gets_one_line() {
    let dir = temp("clients");
    let checked = check(
        &dir,
        "",
        &[
            (
                "a.toml",
                "client_id = \"a\"\nredirect_uri = [\"https://a.example.com/cb\"]\n",
            ),
            (
                "b.toml",
                "client_id = \"b\"\nredirect_uris = [\"http://b.example.com/cb\"]\n\
                 token_endpoint_auth_method = \"none\"\nscopes = [\"openid\", \"profil\"]\n",
            ),
            ("good.toml", GOOD_CLIENT),
        ],
    );
    assert!(!checked.ok);
    let lines: Vec<&str> = checked
        .out
        .lines()
        .filter(|l| l.contains("clients/"))
        .collect();
    assert_eq!(lines.len(), 3, "{}", checked.out);
    assert!(lines[0].ends_with("a.toml: redirect_uri: unknown key `redirect_uri`; did you mean `redirect_uris`? (line 2)"), "{}", lines[0]);
    assert!(
        lines[1].contains(
            "b.toml: redirect_uris: \"http://b.example.com/cb\": http is allowed only for localhost"
        ),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].ends_with("b.toml: scopes: unknown scope \"profil\"; did you mean \"profile\"?"),
        "{}",
        lines[2]
    );
}
