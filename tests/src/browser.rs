//! A browser without JavaScript: follows redirects by hand, keeps cookies,
//! reads and submits the hosted pages' forms.

use std::collections::BTreeMap;

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};

/// What one request returned.
#[derive(Debug)]
pub struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub body: String,
    pub headers: reqwest::header::HeaderMap,
}

/// A cookie-keeping client for one origin.
pub struct Browser {
    http: reqwest::Client,
    base: String,
    pub cookies: BTreeMap<String, String>,
    /// Sent with every request (a proxy's `X-Forwarded-For`).
    extra_headers: Vec<(String, String)>,
}

impl Browser {
    pub fn new(base: &str) -> Self {
        Self {
            http: crate::http(),
            base: base.to_owned(),
            cookies: BTreeMap::new(),
            extra_headers: Vec::new(),
        }
    }

    /// Sends `name: value` with every request from now on, replacing an
    /// earlier value of the same name.
    pub fn set_header(&mut self, name: &str, value: &str) {
        self.extra_headers.retain(|(n, _)| n != name);
        self.extra_headers.push((name.to_owned(), value.to_owned()));
    }

    fn with_extra(&self, mut request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        for (name, value) in &self.extra_headers {
            request = request.header(name, value);
        }
        request
    }

    fn absolute(&self, url: &str) -> String {
        if url.starts_with('/') {
            format!("{}{url}", self.base)
        } else {
            url.to_owned()
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn finish(&mut self, response: reqwest::Response) -> Page {
        for value in response.headers().get_all(SET_COOKIE) {
            let text = value.to_str().unwrap_or_default();
            let pair = text.split(';').next().unwrap_or_default();
            if let Some((name, value)) = pair.split_once('=') {
                let expired = text.contains("Max-Age=0");
                if value.is_empty() || expired {
                    self.cookies.remove(name);
                } else {
                    self.cookies.insert(name.to_owned(), value.to_owned());
                }
            }
        }
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let location = headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.text().await.unwrap_or_default();
        Page {
            status,
            location,
            body,
            headers,
        }
    }

    pub async fn get(&mut self, url: &str) -> Page {
        let request = self.http.get(self.absolute(url));
        let response = self
            .with_extra(request)
            .header(COOKIE, self.cookie_header())
            .send()
            .await
            .expect("GET");
        self.finish(response).await
    }

    pub async fn post_form(&mut self, url: &str, fields: &[(&str, &str)]) -> Page {
        let body = {
            let mut body = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in fields {
                body.append_pair(k, v);
            }
            body.finish()
        };
        let request = self.http.post(self.absolute(url));
        let response = self
            .with_extra(request)
            .header(COOKIE, self.cookie_header())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("POST");
        self.finish(response).await
    }

    /// Follows redirects within the server; returns the first page that is
    /// not a redirect, or the first redirect that leaves the server (the
    /// authorization response to the client).
    pub async fn follow(&mut self, url: &str) -> Page {
        let mut page = self.get(url).await;
        for _ in 0..10 {
            match page.location.clone() {
                Some(next) if next.starts_with('/') || next.starts_with(&self.base) => {
                    page = self.get(&next).await;
                }
                _ => return page,
            }
        }
        page
    }

    /// Signs in on the page at `url` (a sign-in page) with a password and
    /// follows on; returns the final page or redirect.
    pub async fn submit_password(&mut self, signin: &Page, email: &str, password: &str) -> Page {
        let tx = hidden_input(&signin.body, "tx").expect("tx field on the sign-in page");
        let csrf = hidden_input(&signin.body, "csrf").expect("csrf field on the sign-in page");
        let page = self
            .post_form(
                "/login",
                &[
                    ("tx", &tx),
                    ("csrf", &csrf),
                    ("username", email),
                    ("password", password),
                ],
            )
            .await;
        match page.location.clone() {
            Some(next) if next.starts_with('/') => self.follow(&next).await,
            _ => page,
        }
    }

    /// Starts at an authorization URL and signs in with a password; returns
    /// the redirect to the client (or whatever page the flow stopped on).
    pub async fn authorize_with_password(
        &mut self,
        auth_url: &str,
        email: &str,
        password: &str,
    ) -> Page {
        let page = self.follow(auth_url).await;
        if page.status != 200 {
            return page;
        }
        self.submit_password(&page, email, password).await
    }
}

/// The value of `<input type="hidden" name="NAME" value="...">` in a page.
pub fn hidden_input(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(
        html[start..end]
            .replace("&amp;", "&")
            .replace("&quot;", "\""),
    )
}
