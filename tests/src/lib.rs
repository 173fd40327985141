//! Test harness: starts the real `zapini-id` binary on a free loopback port
//! with a temporary database and client files, and drives it as a browser
//! would (forms and cookies, no JavaScript) so that a real relying-party
//! library can complete the protocol around it.

pub mod authenticator;
pub mod backing;
pub mod browser;
pub mod rp;
pub mod totp;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use browser::Browser;

/// The password every test user gets unless a test says otherwise.
pub const PASSWORD: &str = "correct horse battery staple";

/// A client secret long enough for the server's rules.
pub const SECRET: &str = "test-client-secret-0123456789-abcdefghij";

/// Path of the server binary: `ZAPINI_ID_BIN`, else next to this test's
/// own executable in the target folder (`cargo build` puts it there).
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("ZAPINI_ID_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(Path::parent).expect("target folder");
    let bin = dir.join("zapini-id");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p zapini-id` first",
        bin.display()
    );
    bin
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub(crate) fn temp_dir() -> PathBuf {
    let unique = format!(
        "zapini-id-test-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    );
    let dir = std::env::temp_dir().join(unique);
    std::fs::create_dir_all(dir.join("clients")).expect("temp dir");
    dir
}

/// A client file to write before the server starts.
#[derive(Debug, Clone)]
pub struct ClientSpec {
    pub id: String,
    pub auth_method: &'static str,
    pub redirect_uri: String,
    pub alg: &'static str,
    /// The operator's own app: no consent page unless `prompt=consent`.
    /// Test clients are first-party unless a test makes them third-party,
    /// so that the tests of sign-in need not pass through consent.
    pub first_party: bool,
    /// More lines for the client file.
    pub extra: String,
}

impl ClientSpec {
    /// A confidential client using `client_secret_basic` and [`SECRET`].
    pub fn confidential(id: &str) -> Self {
        Self {
            id: id.into(),
            auth_method: "client_secret_basic",
            redirect_uri: format!("https://{id}.example.com/callback"),
            alg: "RS256",
            first_party: true,
            extra: String::new(),
        }
    }

    /// A client of someone else's: its users see the consent page.
    pub fn third_party(mut self) -> Self {
        self.first_party = false;
        self
    }

    pub fn with_auth(mut self, method: &'static str) -> Self {
        self.auth_method = method;
        self
    }

    pub fn with_extra(mut self, lines: impl Into<String>) -> Self {
        self.extra = lines.into();
        self
    }

    pub fn with_alg(mut self, alg: &'static str) -> Self {
        self.alg = alg;
        self
    }

    /// The client file.
    pub fn toml(&self) -> String {
        let secret = if self.auth_method.starts_with("client_secret") {
            "client_secret_env = \"TEST_CLIENT_SECRET\"\n".to_owned()
        } else {
            String::new()
        };
        format!(
            "client_id = \"{}\"\nname = \"App {}\"\nredirect_uris = [\"{}\"]\n\
             token_endpoint_auth_method = \"{}\"\n{secret}\
             id_token_signed_response_alg = \"{}\"\nfirst_party = {}\n{}",
            self.id,
            self.id,
            self.redirect_uri,
            self.auth_method,
            self.alg,
            self.first_party,
            self.extra
        )
    }
}

/// The master secret of scaled-out instances: they must all share one.
pub const MASTER_SECRET: &str = "scaled-out-test-master-secret-0123456789";

/// What the instances of a scaled-out deployment share.
#[derive(Debug, Clone)]
pub struct Shared {
    pub database_url: String,
    pub redis_url: String,
    /// The one issuer of every instance (the public URL in front of them).
    pub issuer: String,
}

/// A running server; stopped (SIGKILL) and its files removed on drop.
pub struct Server {
    child: Child,
    /// The issuer; for a lone server also where it listens.
    pub base: String,
    /// Where this instance listens, `http://localhost:PORT`.
    pub local: String,
    pub dir: PathBuf,
    config: PathBuf,
    env: Vec<(String, String)>,
    /// PostgreSQL and Redis of its own, when the run asks for them.
    _backing: Option<backing::Backing>,
}

impl Server {
    /// Starts a server with these clients and extra config lines, with the
    /// two-factor policy relaxed so that a password alone signs in.
    pub fn start(clients: &[ClientSpec], extra_config: &str) -> Self {
        Self::launch(
            clients,
            &format!("{extra_config}\n[login]\nrequire_2fa = false\n"),
            &[],
        )
    }

    /// Starts a server with the product's default policy (2FA required),
    /// its clock starting at `clock_start` (a Unix time).
    pub fn start_strict(clients: &[ClientSpec], extra_config: &str, clock_start: i64) -> Self {
        let start = clock_start.to_string();
        Self::launch(
            clients,
            extra_config,
            &[("ZAPINI_ID_TEST_CLOCK_START", start.as_str())],
        )
    }

    /// Starts a server like [`Server::start`] whose clock starts at
    /// `clock_start` and can be moved ahead (see `totp::ServerClock`).
    pub fn start_with_clock(clients: &[ClientSpec], extra_config: &str, clock_start: i64) -> Self {
        let start = clock_start.to_string();
        Self::launch(
            clients,
            &format!("{extra_config}\n[login]\nrequire_2fa = false\n"),
            &[("ZAPINI_ID_TEST_CLOCK_START", start.as_str())],
        )
    }

    /// Starts one instance of a scaled-out deployment: PostgreSQL and Redis
    /// from `shared`, its issuer, and [`MASTER_SECRET`]; two-factor relaxed
    /// as in [`Server::start`]. `env` adds variables (a test clock).
    pub fn start_scaled(
        clients: &[ClientSpec],
        extra_config: &str,
        shared: &Shared,
        port: u16,
        env: &[(&str, &str)],
    ) -> Self {
        let mut env = env.to_vec();
        env.push(("ZAPINI_ID_SECRET", MASTER_SECRET));
        env.push(("ZAPINI_ID_REDIS_URL", &shared.redis_url));
        Self::launch_with(
            clients,
            &format!("{extra_config}\n[login]\nrequire_2fa = false\n"),
            &env,
            Some((shared, port)),
        )
    }

    /// Starts one of several instances on one database URL (a SQLite file
    /// shared by the processes, with the ephemeral state in it), all with
    /// the issuer `issuer` and [`MASTER_SECRET`]; two-factor relaxed as in
    /// [`Server::start`]. `env` adds variables (a test clock).
    pub fn start_on_database(
        clients: &[ClientSpec],
        extra_config: &str,
        database_url: &str,
        issuer: &str,
        port: u16,
        env: &[(&str, &str)],
    ) -> Self {
        let shared = Shared {
            database_url: database_url.to_owned(),
            redis_url: String::new(),
            issuer: issuer.to_owned(),
        };
        let mut env = env.to_vec();
        env.push(("ZAPINI_ID_SECRET", MASTER_SECRET));
        Self::launch_with(
            clients,
            &format!("{extra_config}\n[login]\nrequire_2fa = false\n"),
            &env,
            Some((&shared, port)),
        )
    }

    /// A lone server on SQLite, or, when `ZAPINI_TEST_BACKEND` is
    /// `postgres+redis`, on a PostgreSQL and a Redis of its own, so that the
    /// protocol tests run on both (`tests/run` does both).
    fn launch(clients: &[ClientSpec], extra_config: &str, env: &[(&str, &str)]) -> Self {
        if std::env::var("ZAPINI_TEST_BACKEND").as_deref() != Ok("postgres+redis") {
            return Self::launch_with(clients, extra_config, env, None);
        }
        let backing = backing::Backing::start()
            .expect("ZAPINI_TEST_BACKEND=postgres+redis needs PostgreSQL and redis-server");
        let port = free_port();
        let shared = backing.shared(&format!("http://localhost:{port}"));
        let mut env = env.to_vec();
        env.push(("ZAPINI_ID_SECRET", MASTER_SECRET));
        env.push(("ZAPINI_ID_REDIS_URL", &shared.redis_url));
        let mut server = Self::launch_with(clients, extra_config, &env, Some((&shared, port)));
        server._backing = Some(backing);
        server
    }

    fn launch_with(
        clients: &[ClientSpec],
        extra_config: &str,
        env: &[(&str, &str)],
        shared: Option<(&Shared, u16)>,
    ) -> Self {
        let dir = temp_dir();
        for c in clients {
            std::fs::write(dir.join("clients").join(format!("{}.toml", c.id)), c.toml())
                .expect("client file");
        }
        let port = shared.map_or_else(free_port, |(_, port)| port);
        let shared = shared.map(|(s, _)| s);
        let local = format!("http://localhost:{port}");
        let base = shared.map_or_else(|| local.clone(), |s| s.issuer.clone());
        let database = shared.map_or_else(
            || format!("sqlite://{}/db.sqlite?mode=rwc", dir.display()),
            |s| s.database_url.clone(),
        );
        let config = dir.join("zapini-id.toml");
        let text = format!(
            "issuer = \"{base}\"\nlisten = \"127.0.0.1:{port}\"\n\
             database_url = \"{database}\"\n\
             secret_file = \"{}/secret.key\"\nclients_dir = \"{}/clients\"\n{extra_config}\n",
            dir.display(),
            dir.display()
        );
        std::fs::write(&config, text).expect("config file");
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();

        let log = std::fs::File::create(dir.join("server.log")).expect("log file");
        let child = Command::new(binary())
            .args(["serve", "--config"])
            .arg(&config)
            .env("TEST_CLIENT_SECRET", SECRET)
            .env("RUST_LOG", "info,sqlx=warn")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting zapini-id");
        let server = Server {
            child,
            base,
            local,
            dir,
            config,
            env,
            _backing: None,
        };
        server.wait_ready();
        server
    }

    /// Waits until `/healthz` answers. A bare TCP connect is not enough: on
    /// Linux a connect to a free ephemeral port can, rarely, connect to
    /// itself, so the answer itself is checked.
    fn wait_ready(&self) {
        use std::io::{Read, Write};
        let deadline = Instant::now() + Duration::from_secs(30);
        let port = self.local.trim_start_matches("http://localhost:");
        while Instant::now() < deadline {
            if let Ok(mut stream) = std::net::TcpStream::connect(format!("127.0.0.1:{port}")) {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                let mut answer = String::new();
                let asked = stream.write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n");
                if asked.is_ok()
                    && stream.read_to_string(&mut answer).is_ok()
                    && answer.starts_with("HTTP/1.")
                    && answer.contains(" 200 ")
                {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("server did not start; log:\n{}", self.log());
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGHUP to this server (the child process this harness started).
    pub fn hangup(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.pid().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// The path of this server's client folder.
    pub fn clients_dir(&self) -> PathBuf {
        self.dir.join("clients")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A URL on this instance itself (for a lone server, the same as
    /// [`Server::url`]).
    pub fn local_url(&self, path: &str) -> String {
        format!("{}{}", self.local, path)
    }

    /// Runs a `zapini-id` subcommand against this server's configuration.
    pub fn cli(&self, args: &[&str], stdin: &str) -> std::process::Output {
        self.cli_with_env(args, stdin, &[])
    }

    /// Like [`Server::cli`], with more variables (they win over the
    /// server's own, e.g. a test clock moved ahead).
    pub fn cli_with_env(
        &self,
        args: &[&str],
        stdin: &str,
        env: &[(&str, &str)],
    ) -> std::process::Output {
        use std::io::Write;
        let mut child = Command::new(binary())
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .env("TEST_CLIENT_SECRET", SECRET)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running zapini-id");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.as_bytes())
            .expect("writing stdin");
        child.wait_with_output().expect("zapini-id output")
    }

    /// Creates a user with [`PASSWORD`]; returns its id (`sub`).
    pub fn add_user(&self, email: &str, name: &str) -> String {
        let out = self.cli(
            &[
                "users",
                "add",
                "--email",
                email,
                "--name",
                name,
                "--password-stdin",
                "--email-verified",
            ],
            &format!("{PASSWORD}\n"),
        );
        assert!(
            out.status.success(),
            "users add: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        text.trim()
            .rsplit('(')
            .next()
            .and_then(|s| s.strip_suffix(')'))
            .expect("user id in output")
            .to_owned()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A `reqwest` client that does not follow redirects, for the relying party
/// library and for raw protocol requests.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http client")
}

/// The UserInfo answer for `access_token` (sent in the header), as JSON.
pub async fn userinfo(server: &Server, access_token: &str) -> serde_json::Value {
    http()
        .get(server.url("/userinfo"))
        .bearer_auth(access_token)
        .send()
        .await
        .expect("UserInfo answers")
        .json()
        .await
        .expect("UserInfo answers JSON")
}

/// The query parameters of a URL as pairs.
pub fn query_pairs(url: &str) -> Vec<(String, String)> {
    url::Url::parse(url)
        .map(|u| u.query_pairs().into_owned().collect())
        .unwrap_or_default()
}

/// The value of one query parameter.
pub fn query_param(url: &str, name: &str) -> Option<String> {
    query_pairs(url)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// Decodes a JWT's payload without checking it (for claims a library's typed
/// view does not expose, after the library has verified the token).
pub fn jwt_payload(token: &str) -> serde_json::Value {
    use base64::Engine;
    let part = token.split('.').nth(1).expect("JWT payload");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .expect("base64url payload");
    serde_json::from_slice(&raw).expect("JSON payload")
}

/// Redeems an authorization code for a `client_secret_basic` client with
/// [`SECRET`] and returns the token response as JSON.
pub async fn redeem_code(
    server: &Server,
    client_id: &str,
    code: &str,
    redirect_uri: &str,
) -> serde_json::Value {
    http()
        .post(server.url("/token"))
        .basic_auth(client_id, Some(SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
        ])
        .send()
        .await
        .expect("token request")
        .json()
        .await
        .expect("JSON token response")
}
