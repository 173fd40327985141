//! The operator's name and logo on the hosted pages.

use zapini_id_tests::{ClientSpec, Server, http};

const LOGO: &str = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 10 10\"><rect width=\"10\" height=\"10\" fill=\"#c00\"/></svg>";

#[tokio::test]
async fn the_operators_name_and_logo_are_shown() {
    let logo = std::env::temp_dir().join(format!("zapini-logo-{}.svg", std::process::id()));
    std::fs::write(&logo, LOGO).unwrap();
    let server = Server::start(
        &[ClientSpec::confidential("app")],
        &format!(
            "product_name = \"Acme Sign-in\"\nlogo_file = {:?}\n",
            logo.display().to_string()
        ),
    );
    let page = http()
        .get(server.url("/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("<title>Sign in · Acme Sign-in</title>"),
        "{page}"
    );
    assert!(page.contains("<img class=\"logo-image\" src=\"/static/logo\""));

    let served = http().get(server.url("/static/logo")).send().await.unwrap();
    assert_eq!(served.status(), 200);
    assert_eq!(served.headers()["content-type"], "image/svg+xml");
    assert_eq!(served.text().await.unwrap(), LOGO);
    let _ = std::fs::remove_file(&logo);
}

#[tokio::test]
async fn without_a_logo_the_header_shows_the_names_initial_and_no_logo_is_served() {
    let server = Server::start(
        &[ClientSpec::confidential("app")],
        "product_name = \"Acme\"\n",
    );
    let page = http()
        .get(server.url("/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("<span class=\"logo\" aria-hidden=\"true\">A</span>"),
        "{page}"
    );
    let served = http().get(server.url("/static/logo")).send().await.unwrap();
    assert_eq!(served.status(), 404);
}

#[tokio::test]
async fn a_template_in_the_override_folder_replaces_the_embedded_one_and_only_that_one() {
    let dir = std::env::temp_dir().join(format!("zapini-templates-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("error.html"),
        "{% extends \"base.html\" %}{% block content %}<h1>Acme help desk</h1><p>{{ t(message_key) }}</p>{% endblock %}",
    )
    .unwrap();
    let server = Server::start(
        &[ClientSpec::confidential("app")],
        &format!("templates_dir = {:?}\n", dir.display().to_string()),
    );
    let missing = http().get(server.url("/nope")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    let page = missing.text().await.unwrap();
    assert!(page.contains("<h1>Acme help desk</h1>"), "{page}");
    assert!(
        page.contains("This page does not exist."),
        "messages still come from the locale files"
    );
    let signin = http()
        .get(server.url("/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        signin.contains("name=\"password\""),
        "the embedded sign-in page is the fallback"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
