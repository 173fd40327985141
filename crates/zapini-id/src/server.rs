//! Start-up and the HTTP server: load everything, check everything, then
//! listen until SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use tower::ServiceBuilder;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use zapini_core::crypto::Sealer;
use zapini_core::metrics::Counters;
use zapini_core::{ClientAddress, Clock, SystemClock};
use zapini_login::{LoginState, PasswordHasher, Templates};
use zapini_oidc::{ClientRegistry, KeyRing, LiveState, OidcState};
use zapini_store::Store;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::proxies::TrustedProxies;
use crate::reload::{Reloader, Sources};

/// Largest request body accepted; sign-in forms and token requests are tiny.
const BODY_LIMIT: usize = 64 * 1024;

/// `frame-ancestors 'none'` stops click-jacking of the sign-in page. There is
/// no `form-action`: browsers apply it to the redirect that follows a form
/// submission, which here leads to the relying party's origin.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; \
                   script-src 'self'; connect-src 'self'; base-uri 'none'; frame-ancestors 'none'";

pub fn init_tracing(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,sea_orm=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Creates the folder (0700) and file (0600) of a SQLite database if they
/// are missing: the file holds password hashes.
fn prepare_sqlite(url: &str) -> anyhow::Result<()> {
    let Some(rest) = url.strip_prefix("sqlite://") else {
        return Ok(());
    };
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path.starts_with(':') {
        return Ok(());
    }
    let path = Path::new(path);
    if let Some(dir) = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty() && !d.exists())
    {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    if !path.exists() {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        options
            .open(path)
            .with_context(|| format!("creating {}", path.display()))?;
    }
    Ok(())
}

/// Connects to the database and applies migrations, and to Redis when
/// `redis_url` is set (the command-line tools end sessions, which live there).
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    open_store_with_clock(config, Arc::new(SystemClock::default())).await
}

async fn open_store_with_clock(config: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<Store> {
    prepare_sqlite(&config.database_url)?;
    let mut store = Store::connect(&config.database_url, config.database_pool_size)
        .await
        .context("connecting to the database")?;
    store.migrate().await.context("applying migrations")?;
    if let Some(url) = &config.redis_url {
        store = store
            .with_redis(url, clock)
            .await
            .context("connecting to Redis (redis_url)")?;
    }
    Ok(store)
}

pub fn load_clients(config: &Config) -> anyhow::Result<ClientRegistry> {
    ClientRegistry::load_dir(&config.clients_dir, &|name| std::env::var(name).ok())
        .map_err(|errors| anyhow::anyhow!("invalid client configuration:\n{errors}"))
}

/// The offset of the test clock: debug builds (those the test suite runs)
/// honour `ZAPINI_ID_TEST_CLOCK_START`, a Unix time the clock starts from.
/// Release builds ignore it.
#[cfg(debug_assertions)]
fn test_clock_offset() -> Option<i64> {
    let start = std::env::var("ZAPINI_ID_TEST_CLOCK_START")
        .ok()?
        .parse::<i64>()
        .ok()?;
    Some(start - SystemClock::default().now())
}

#[cfg(not(debug_assertions))]
fn test_clock_offset() -> Option<i64> {
    None
}

/// The clock of a command-line tool: the system clock, or in debug builds
/// the test clock, so that tests can run commands at the server's time.
pub fn command_clock() -> SystemClock {
    SystemClock::with_offset(test_clock_offset().unwrap_or(0))
}

/// The system clock. A test clock (see [`test_clock_offset`]) also moves
/// ten minutes ahead on each SIGUSR1, so tests of skew, expiry and
/// re-authentication need not sleep.
fn clock() -> Arc<SystemClock> {
    #[cfg(all(debug_assertions, unix))]
    if let Some(offset) = test_clock_offset() {
        tracing::warn!(
            offset,
            "test clock in use: this build is not for production"
        );
        let clock = Arc::new(SystemClock::with_offset(offset));
        let advanced = clock.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let Ok(mut usr1) = signal(SignalKind::user_defined1()) else {
                return;
            };
            while usr1.recv().await.is_some() {
                advanced.advance(600);
                tracing::warn!("test clock moved ten minutes ahead");
            }
        });
        return clock;
    }
    Arc::new(SystemClock::default())
}

pub async fn serve(config_path: &Path, explicit: bool) -> anyhow::Result<()> {
    let started = Instant::now();
    let config = Config::load(config_path, explicit)?;
    init_tracing(&config.log_format);

    let clients = load_clients(&config)?;
    let master = crate::secret::load(&config)?;
    let clock: Arc<dyn Clock> = clock();
    let store = open_store_with_clock(&config, clock.clone()).await?;
    let sealer = Sealer::from_master_secret(&master);
    let tokens = config.token_settings();
    let tokens_ttl = tokens.access_token_ttl;
    let keys =
        KeyRing::load_or_create(&store, &sealer, clock.now(), tokens.key_retention()).await?;

    let mut templates = Templates::new(config.templates_dir.as_deref(), &config.product_name)?;
    if let Some(logo) = &config.logo_file {
        templates = templates.with_logo(logo)?;
    }
    let templates = Arc::new(templates);
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let hasher = PasswordHasher::new(config.password_policy(), cores)?;
    let secure_cookies = config.issuer.starts_with("https://");
    let http = zapini_oidc::remote_jwks::http_client()?;
    let counters = Arc::new(Counters::default());

    let oidc = OidcState {
        issuer: config.issuer.clone(),
        store: store.clone(),
        clients: Arc::new(clients),
        keys: Arc::new(keys),
        clock: clock.clone(),
        pages: templates.clone(),
        tokens,
        secure_cookies,
        require_2fa: config.login.require_2fa,
        ui_locales: templates.catalog().languages().map(str::to_owned).collect(),
        remote_keys: Arc::new(zapini_oidc::remote_jwks::RemoteKeySets::new(http.clone())),
        http,
        counters: counters.clone(),
        documents: Arc::default(),
    };
    let client_count = oidc.clients.len();
    let live = LiveState::new(oidc);
    let login = LoginState {
        store: store.clone(),
        clock: clock.clone(),
        templates: templates.clone(),
        hasher,
        secure_cookies,
        session_ttl: config.session.ttl,
        sealer: sealer.clone(),
        require_2fa: config.login.require_2fa,
        webauthn: Arc::new(
            config
                .passkeys()
                .relying_party()
                .map_err(anyhow::Error::msg)?,
        ),
        session_ended: Arc::new(zapini_oidc::backchannel::Notifier::new(live.clone())),
        counters: counters.clone(),
    };
    let proxies = config.trusted_proxies()?;
    let metrics = Metrics::new(counters);
    let reloader = Reloader::new(
        Sources {
            path: config_path.to_owned(),
            explicit,
            store: store.clone(),
            sealer,
            clock: clock.clone(),
        },
        &config,
        live.clone(),
    );
    let app = app(live, login, store.clone(), templates, metrics, proxies);

    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(
        %addr,
        issuer = %config.issuer,
        clients = client_count,
        ephemeral = store.ephemeral().backend_name(),
        ready_ms = started.elapsed().as_millis() as u64,
        "Zapini ID is ready"
    );
    if store.users().count().await? == 0 {
        tracing::warn!(
            "there are no users yet; create one with: \
             zapini-id users add --email you@example.com --password-stdin \
             (from a checkout: cargo run -- users add ...)"
        );
    }

    tokio::spawn(purge_expired(store.clone(), clock, tokens_ttl));
    tokio::spawn(reloader.run(Duration::from_secs(
        config.reload_interval.clamp(1, 3600) as u64
    )));
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await?;
    tracing::info!("stopped");
    store.close().await;
    Ok(())
}

/// The whole application: protocol and login routes, health, and the
/// middleware every response goes through.
fn app(
    oidc: LiveState,
    login: LoginState,
    store: Store,
    templates: Arc<Templates>,
    metrics: Metrics,
    proxies: TrustedProxies,
) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    let trace = TraceLayer::new_for_http().make_span_with(|req: &Request| {
        // The route pattern, never the raw query: it holds codes and state.
        let route = req
            .extensions()
            .get::<MatchedPath>()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "-".into());
        let id = req
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-");
        let client = req
            .extensions()
            .get::<ClientAddress>()
            .map(|ClientAddress(ip)| ip.to_string())
            .unwrap_or_else(|| "-".into());
        tracing::info_span!("request", method = %req.method(), route, request_id = id, client)
    });

    let security = ServiceBuilder::new()
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ));

    let pages = templates.clone();
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz).with_state(store.clone()))
        .route(
            "/metrics",
            get(crate::metrics::scrape).with_state((metrics.clone(), store)),
        )
        .merge(zapini_oidc::router(oidc))
        .merge(zapini_login::router(login))
        .route_layer(axum::middleware::from_fn_with_state(
            metrics,
            crate::metrics::track,
        ))
        .fallback(move |headers: axum::http::HeaderMap| not_found(templates.clone(), headers))
        .layer(security)
        .layer(RequestBodyLimitLayer::new(BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(pages, browser_errors))
        .layer(
            ServiceBuilder::new()
                .layer(axum::middleware::map_request(drop_client_request_id))
                .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
                .layer(axum::middleware::from_fn_with_state(
                    proxies,
                    crate::proxies::client_address,
                ))
                .layer(trace)
                .layer(PropagateRequestIdLayer::new(request_id)),
        )
}

/// Request ids are made here, not taken from the client, so a client cannot
/// choose the id its requests are logged under.
async fn drop_client_request_id(mut request: Request) -> Request {
    request.headers_mut().remove("x-request-id");
    request
}

/// Ready when the database and the ephemeral store (Redis, when used) both
/// answer; the body names what does not.
async fn readyz(State(store): State<Store>) -> Response {
    let (db, ephemeral) = tokio::join!(store.ping(), store.ping_ephemeral());
    match (db, ephemeral) {
        (true, true) => "ready".into_response(),
        (false, true) => (StatusCode::SERVICE_UNAVAILABLE, "database unreachable").into_response(),
        (true, false) => (StatusCode::SERVICE_UNAVAILABLE, "redis unreachable").into_response(),
        (false, false) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "database and redis unreachable",
        )
            .into_response(),
    }
}

/// A browser that sends a body over the limit or uses the wrong method
/// gets the product's page in its language, not the framework's plain text;
/// other clients keep the bare status.
async fn browser_errors(
    State(templates): State<Arc<Templates>>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    use zapini_core::flow::ErrorPages;
    let headers = request.headers().clone();
    let response = next.run(request).await;
    let key = match response.status() {
        StatusCode::PAYLOAD_TOO_LARGE => "error.too_large",
        StatusCode::METHOD_NOT_ALLOWED => "error.request_invalid",
        _ => return response,
    };
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    let is_page = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html") || v.starts_with("application/json"));
    if !wants_html || is_page {
        return response;
    }
    let id = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    let wish = zapini_oidc::error::language_wish(&headers);
    let html = templates.error_page(&wish, key, id);
    let mut page = (response.status(), Html(html)).into_response();
    if let Some(allow) = response.headers().get(header::ALLOW) {
        page.headers_mut().insert(header::ALLOW, allow.clone());
    }
    page
}

async fn not_found(templates: Arc<Templates>, headers: axum::http::HeaderMap) -> Response {
    use zapini_core::flow::ErrorPages;
    let id = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    let wish = zapini_oidc::error::language_wish(&headers);
    let html = templates.error_page(&wish, "error.not_found", id);
    (StatusCode::NOT_FOUND, Html(html)).into_response()
}

/// Removes expired ephemeral state and refresh tokens once a minute. A
/// refresh-token family is kept one access-token lifetime past its end:
/// access tokens issued by its last refreshes are checked against it, and
/// a family revoked just before it expired must still say so.
async fn purge_expired(store: Store, clock: Arc<dyn Clock>, access_token_ttl: i64) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        if let Err(err) = store.ephemeral().purge_expired(clock.now()).await {
            tracing::warn!(error = %err, "purging expired state failed");
        }
        let ended = clock.now() - access_token_ttl;
        if let Err(err) = store.refresh_tokens().purge_expired(ended).await {
            tracing::warn!(error = %err, "purging expired refresh tokens failed");
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
