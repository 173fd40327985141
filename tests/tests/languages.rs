//! The hosted pages' languages: the relying party's `ui_locales`, the
//! language switcher's cookie, `Accept-Language`, the default; the switcher
//! itself; dates written the way each language writes them.

use reqwest::header::{ACCEPT_LANGUAGE, COOKIE, HOST, LOCATION, REFERER, SET_COOKIE};
use zapini_id_tests::browser::hidden_input;
use zapini_id_tests::{Browser, ClientSpec, Server, http};

fn server() -> Server {
    let server = Server::start(&[ClientSpec::confidential("app")], "");
    server.add_user("lu@example.com", "Lu");
    server
}

fn lang_of(html: &str) -> &str {
    let start = html.find("<html lang=\"").expect("html lang") + 12;
    let end = html[start..].find('"').expect("closing quote") + start;
    &html[start..end]
}

async fn signin_page(server: &Server, cookie: &str, accept: &str) -> String {
    http()
        .get(server.url("/login"))
        .header(COOKIE, cookie)
        .header(ACCEPT_LANGUAGE, accept)
        .send()
        .await
        .expect("GET /login")
        .text()
        .await
        .expect("body")
}

#[tokio::test]
async fn the_switchers_cookie_comes_after_ui_locales_and_before_accept_language() {
    let server = server();
    let page = signin_page(&server, "", "pt-BR,pt;q=0.9").await;
    assert_eq!(lang_of(&page), "pt-BR");
    assert!(page.contains("Entrar"), "Portuguese sign-in page");

    let page = signin_page(&server, "zid_lang=es", "pt-BR,pt;q=0.9").await;
    assert_eq!(lang_of(&page), "es", "the cookie beats Accept-Language");
    assert!(page.contains("Iniciar sesión"));

    let page = signin_page(&server, "zid_lang=xx-unknown", "en").await;
    assert_eq!(lang_of(&page), "en", "an unknown cookie value is ignored");

    // ui_locales from the relying party comes first.
    let auth = "/authorize?client_id=app&response_type=code&scope=openid&state=s\
                &redirect_uri=https://app.example.com/callback&ui_locales=pt-BR";
    let mut browser = Browser::new(&server.base);
    browser.cookies.insert("zid_lang".into(), "es".into());
    let page = browser.follow(auth).await;
    assert_eq!(lang_of(&page.body), "pt-BR");
}

#[tokio::test]
async fn switching_language_on_a_sign_in_page_remembers_it_and_goes_back_there() {
    let server = server();
    let auth = "/authorize?client_id=app&response_type=code&scope=openid&state=s\
                &redirect_uri=https://app.example.com/callback&ui_locales=en";
    let mut browser = Browser::new(&server.base);
    let page = browser.follow(auth).await;
    assert_eq!(lang_of(&page.body), "en");
    assert!(
        page.body.contains("name=\"lang\""),
        "the page has a language switcher"
    );
    let tx = hidden_input(&page.body, "tx").expect("tx");
    let here = format!("{}/login?tx={tx}", server.base);
    let cookies: String = browser
        .cookies
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ");

    let answer = http()
        .post(server.url("/language"))
        .header(COOKIE, &cookies)
        .header(REFERER, &here)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("lang=es&tx={tx}"))
        .send()
        .await
        .expect("POST /language");
    assert_eq!(answer.status(), 303);
    assert_eq!(answer.headers()[LOCATION], format!("/login?tx={tx}"));
    let set = answer.headers()[SET_COOKIE].to_str().unwrap();
    assert!(set.starts_with("zid_lang=es;"), "{set}");

    // The same sign-in, now in Spanish although the app asked for English.
    let page = browser.get(&format!("/login?tx={tx}")).await;
    assert_eq!(lang_of(&page.body), "es");

    // Another site's page is never gone back to.
    let answer = http()
        .post(server.url("/language"))
        .header(REFERER, "https://evil.example/login")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("lang=pt-BR")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.headers()[LOCATION], "/account/security");

    // A Host header naming the other site does not make it ours.
    let answer = http()
        .post(server.url("/language"))
        .header(HOST, "evil.example")
        .header(REFERER, "https://evil.example/x")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("lang=pt-BR")
        .send()
        .await
        .unwrap();
    let location = answer.headers()[LOCATION].to_str().unwrap().to_owned();
    assert!(
        location.starts_with('/') && !location.starts_with("//"),
        "{location}"
    );
}

#[tokio::test]
async fn an_unknown_or_duplicated_language_gets_a_plain_error_page() {
    let server = server();
    for body in [
        "lang=klingon",
        "",
        "lang=es&lang=en",
        &format!("lang={}", "x".repeat(5000)),
    ] {
        let answer = http()
            .post(server.url("/language"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 400, "{body:.30}");
        assert!(answer.headers().get(SET_COOKIE).is_none());
    }
}

#[tokio::test]
async fn dates_in_the_security_area_are_written_in_the_users_language() {
    let server = server();
    let mut browser = Browser::new(&server.base);
    browser.cookies.insert("zid_lang".into(), "pt-BR".into());
    let signin = browser.follow("/login?return_to=/account/security").await;
    let page = browser
        .submit_password(&signin, "lu@example.com", zapini_id_tests::PASSWORD)
        .await;
    assert_eq!(lang_of(&page.body), "pt-BR");
    let months = [
        "janeiro",
        "fevereiro",
        "março",
        "abril",
        "maio",
        "junho",
        "julho",
        "agosto",
        "setembro",
        "outubro",
        "novembro",
        "dezembro",
    ];
    assert!(
        months
            .iter()
            .any(|m| page.body.contains(&format!(" de {m} de "))),
        "a date like \"4 de dezembro de 2026\" on the page"
    );
}

#[tokio::test]
async fn another_site_cannot_switch_someones_language() {
    let server = server();
    let answer = http()
        .post(server.url("/language"))
        .header("sec-fetch-site", "cross-site")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("lang=es")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 403);
    assert!(answer.headers().get(SET_COOKIE).is_none());
}
