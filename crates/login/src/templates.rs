//! Page templates: minijinja sources embedded in the binary, each of which an
//! operator may override with a file of the same name in a folder.
//!
//! Every text goes through `t("key")`, so adding a language touches no
//! template.

use std::path::Path;
use std::sync::Arc;

use axum::extract::{Path as UrlPath, State as Shared};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use minijinja::value::Value;
use minijinja::{Environment, Error, State};
use serde::Serialize;
use zapini_core::flow::{ErrorPages, LanguageWish};

use crate::i18n::Catalog;

/// An embedded page template, by file name under `templates/pages/`.
macro_rules! page {
    ($name:literal) => {
        (
            $name,
            include_str!(concat!("../../../templates/pages/", $name)),
        )
    };
}

const PAGES: &[(&str, &str)] = &[
    page!("base.html"),
    page!("signin.html"),
    page!("signin_totp.html"),
    page!("signin_recovery.html"),
    page!("enroll_totp.html"),
    page!("recovery_codes.html"),
    page!("security.html"),
    page!("error.html"),
    page!("passkey_signin.html"),
    page!("passkey_remove.html"),
    page!("form_post.html"),
    page!("logout_confirm.html"),
    page!("logged_out.html"),
    page!("consent.html"),
];

const STYLESHEET: &str = include_str!("../../../templates/static/app.css");
const SCRIPT: &str = include_str!("../../../templates/static/app.js");

/// The template environment and the message catalogue.
pub struct Templates {
    env: Environment<'static>,
    catalog: Arc<Catalog>,
    /// Shown in the page header and title.
    pub product_name: String,
    /// The operator's logo (bytes and media type), served at `/static/logo`.
    logo: Option<(Vec<u8>, &'static str)>,
}

/// The largest logo file accepted, in bytes.
pub const MAX_LOGO_BYTES: u64 = 256 * 1024;

/// The media type of a logo file, from its extension; `None` for a kind
/// the pages do not show.
pub fn logo_media_type(path: &Path) -> Option<&'static str> {
    match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
        "svg" => Some("image/svg+xml"),
        "png" => Some("image/png"),
        "webp" => Some("image/webp"),
        "jpg" | "jpeg" => Some("image/jpeg"),
        _ => None,
    }
}

/// Whether `bytes` start the way a file of `kind` does.
fn looks_like(kind: &str, bytes: &[u8]) -> bool {
    match kind {
        "image/png" => bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "image/jpeg" => bytes.starts_with(&[0xff, 0xd8, 0xff]),
        "image/webp" => bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP",
        "image/svg+xml" => String::from_utf8_lossy(&bytes[..bytes.len().min(1024)])
            .to_ascii_lowercase()
            .contains("<svg"),
        _ => false,
    }
}

/// Reads and checks a logo file: a regular file of a known kind whose
/// content matches its extension, at most [`MAX_LOGO_BYTES`]. Never reads
/// more than that, so a device or a pipe cannot exhaust memory or hang.
pub fn read_logo(path: &Path) -> Result<(Vec<u8>, &'static str), String> {
    use std::io::Read;
    let shown = path.display();
    let kind = logo_media_type(path)
        .ok_or_else(|| format!("{shown}: use an .svg, .png, .webp or .jpg file"))?;
    let meta = std::fs::metadata(path).map_err(|e| format!("{shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{shown}: not a regular file"));
    }
    if meta.len() > MAX_LOGO_BYTES {
        return Err(format!("{shown}: larger than 256 KiB"));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_LOGO_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| format!("{shown}: {e}"))?;
    if bytes.len() as u64 > MAX_LOGO_BYTES {
        return Err(format!("{shown}: larger than 256 KiB"));
    }
    if !looks_like(kind, &bytes) {
        return Err(format!("{shown}: the content is not a {kind} image"));
    }
    Ok((bytes, kind))
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates")
            .field("product_name", &self.product_name)
            .finish()
    }
}

/// A template that does not parse, or a locale file that does not load.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("template {name}: {source}")]
    Syntax { name: String, source: Error },
    #[error(transparent)]
    Locale(#[from] crate::i18n::LocaleError),
    #[error("template override {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("logo_file: {0}")]
    Logo(String),
}

impl Templates {
    /// Loads the embedded templates, replacing each by the file of the same
    /// name in `override_dir` where one exists.
    pub fn new(override_dir: Option<&Path>, product_name: &str) -> Result<Self, TemplateError> {
        let catalog = Arc::new(Catalog::embedded()?);
        let mut env = Environment::new();
        for (name, source) in PAGES {
            let source = match override_dir.map(|d| d.join(name)).filter(|p| p.is_file()) {
                Some(path) => {
                    std::fs::read_to_string(&path).map_err(|source| TemplateError::Io {
                        path: path.display().to_string(),
                        source,
                    })?
                }
                None => source.to_string(),
            };
            env.add_template_owned(name.to_string(), source)
                .map_err(|source| TemplateError::Syntax {
                    name: name.to_string(),
                    source,
                })?;
        }

        // The language switcher's choices: each language named in itself.
        let languages: Vec<(String, String)> = catalog
            .languages()
            .map(|code| {
                (
                    code.to_owned(),
                    catalog.text(code, "language.name").to_owned(),
                )
            })
            .collect();
        env.add_global(
            "languages",
            Value::from(minijinja::value::Serde(&languages)),
        );

        let for_t = catalog.clone();
        env.add_function(
            "t",
            move |state: &State, key: &str, vars: Option<Value>| -> Result<String, Error> {
                let lang = state
                    .lookup("lang")
                    .map(|v| v.to_string())
                    .unwrap_or_default();
                let mut text = for_t.text(&lang, key).to_owned();
                if let Some(vars) = vars {
                    for name in vars.try_iter()? {
                        let value = vars.get_item(&name)?;
                        text = text.replace(&format!("{{{name}}}"), &value.to_string());
                    }
                }
                Ok(text)
            },
        );
        Ok(Self {
            env,
            catalog,
            product_name: product_name.to_owned(),
            logo: None,
        })
    }

    /// Shows the logo in `path` in the page header instead of the initial.
    pub fn with_logo(mut self, path: &Path) -> Result<Self, TemplateError> {
        self.logo = Some(read_logo(path).map_err(TemplateError::Logo)?);
        Ok(self)
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Renders `name` in `lang` with `context`; `lang` and the product name
    /// are added to the context.
    pub fn render<S: Serialize>(
        &self,
        name: &str,
        lang: &str,
        context: S,
    ) -> Result<String, Error> {
        let template = self.env.get_template(name)?;
        let ctx = minijinja::context! {
            lang => lang,
            product_name => self.product_name.clone(),
            logo => self.logo.is_some(),
            ..Value::from(minijinja::value::Serde(&context))
        };
        template.render(ctx)
    }

    /// Renders a page, or on failure a bare page that still tells the user
    /// something went wrong (and logs the template error once).
    pub fn page<S: Serialize>(&self, name: &str, lang: &str, context: S) -> String {
        self.render(name, lang, context).unwrap_or_else(|err| {
            tracing::error!(template = name, error = %err, "template failed to render");
            "<!doctype html><title>Error</title><p>Something went wrong. Please try again.</p>"
                .into()
        })
    }
}

impl ErrorPages for Templates {
    fn error_page(&self, wish: &LanguageWish, message_key: &str, request_id: &str) -> String {
        let preferred: Vec<&str> = wish.chosen.as_deref().into_iter().collect();
        let lang = self
            .catalog
            .negotiate(&preferred, wish.accept_language.as_deref());
        self.page(
            "error.html",
            &lang,
            minijinja::context! { message_key => message_key, request_id => request_id },
        )
    }

    fn page(
        &self,
        locales: &[String],
        wish: &LanguageWish,
        name: &str,
        context: serde_json::Value,
    ) -> String {
        let preferred: Vec<&str> = locales
            .iter()
            .map(String::as_str)
            .chain(wish.chosen.as_deref())
            .collect();
        let lang = self
            .catalog
            .negotiate(&preferred, wish.accept_language.as_deref());
        Templates::page(self, name, &lang, context)
    }
}

/// `/static/{file}`: the embedded stylesheet and script, and the
/// operator's logo.
pub async fn asset(
    Shared(state): Shared<crate::LoginState>,
    UrlPath(file): UrlPath<String>,
) -> Response {
    let (body, kind): (Vec<u8>, &'static str) = match file.as_str() {
        "app.css" => (STYLESHEET.into(), "text/css; charset=utf-8"),
        "app.js" => (SCRIPT.into(), "text/javascript; charset=utf-8"),
        "logo" => match &state.templates.logo {
            Some((bytes, kind)) => (bytes.clone(), kind),
            None => return StatusCode::NOT_FOUND.into_response(),
        },
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_page_renders() {
        let t = Templates::new(None, "Zapini ID").unwrap();
        for (name, _) in PAGES {
            let html = t.render(name, "en", minijinja::context! {}).unwrap();
            assert!(!html.contains("signin."), "{name} shows a raw key");
            let raw_key = html
                .match_indices("passkey.")
                .any(|(i, _)| html[i + 8..].starts_with(|c: char| c.is_ascii_lowercase()));
            assert!(!raw_key, "{name} shows a raw key");
        }
    }

    #[test]
    fn error_page_shows_message_and_request_id() {
        let t = Templates::new(None, "Zapini ID").unwrap();
        let html = t.error_page(&LanguageWish::default(), "error.client_unknown", "req-123");
        assert!(html.contains("req-123"));
        assert!(html.contains("lang=\"en\""));
        assert!(!html.contains("error.client_unknown"));
    }
}
