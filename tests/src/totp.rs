//! The user's authenticator app: Debian's `oathtool`, reading the secret
//! from the `otpauth://` link on the enrolment page.

use std::process::Command;
use std::time::Instant;

/// A server clock that started at a known Unix time.
#[derive(Debug, Clone, Copy)]
pub struct ServerClock {
    start: i64,
    since: Instant,
    advanced: i64,
}

impl ServerClock {
    /// A start time 12 seconds into a 30-second step, so short tests see
    /// few step changes.
    pub fn new() -> Self {
        Self {
            start: 30 * 63_333_334 + 12,
            since: Instant::now(),
            advanced: 0,
        }
    }

    pub fn start(&self) -> i64 {
        self.start
    }

    /// The server's time now, as far as the test can tell.
    pub fn now(&self) -> i64 {
        self.start + self.advanced + self.since.elapsed().as_secs() as i64
    }

    /// Moves the server's clock ten minutes ahead (SIGUSR1, honoured by
    /// debug builds started with a test clock).
    pub fn advance_ten_minutes(&mut self, server: &crate::Server) {
        let moves = || server.log().matches("test clock moved").count();
        let before = moves();
        let status = Command::new("kill")
            .args(["-USR1", &server.pid().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        self.advanced += 600;
        // Let the server handle this signal before the next request.
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        while moves() == before {
            assert!(Instant::now() < deadline, "the server's clock did not move");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

impl ServerClock {
    /// Counts a ten-minute move the test made itself (SIGUSR1 to several
    /// servers at once).
    pub fn add_ten_minutes(&mut self) {
        self.advanced += 600;
    }
}

impl Default for ServerClock {
    fn default() -> Self {
        Self::new()
    }
}

/// The `secret` parameter of an `otpauth://` URL found in a page.
pub fn secret_from_page(html: &str) -> String {
    let html = html.replace("&#x2f;", "/").replace("&#x3d;", "=");
    let start = html
        .find("otpauth://totp/")
        .expect("an otpauth link on the page");
    let rest = &html[start..];
    let url = &rest[..rest.find('"').expect("end of the link")];
    let url = url.replace("&amp;", "&");
    url::Url::parse(&url)
        .expect("otpauth URL")
        .query_pairs()
        .find(|(k, _)| k == "secret")
        .map(|(_, v)| v.into_owned())
        .expect("secret parameter")
}

/// The 6-digit code for `secret` (base32) at Unix time `at`, from oathtool.
pub fn code_at(secret: &str, at: i64) -> String {
    let out = Command::new("oathtool")
        .args(["--totp", "-b", "-N", &format!("@{at}"), secret])
        .output()
        .expect("oathtool is installed (tests/run installs it)");
    assert!(
        out.status.success(),
        "oathtool: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
