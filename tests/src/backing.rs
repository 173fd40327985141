//! Throwaway PostgreSQL and Redis servers for the scale-out tests, each on a
//! free loopback port with its files in a temporary folder, stoppable and
//! restartable mid-test and removed on drop.
//!
//! PostgreSQL refuses to run as root, so as root its commands run as the
//! `postgres` user (Debian's package creates it).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn wait_for_port(port: u16, up: bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() != up {
        assert!(Instant::now() < deadline, "port {port} did not go {up}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// The folder of PostgreSQL's server programs: on `PATH`, or Debian's.
fn pg_bin() -> Option<PathBuf> {
    let on_path = Command::new("sh")
        .args(["-c", "command -v initdb"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if let Some(initdb) = on_path {
        return initdb.parent().map(Path::to_path_buf);
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop()
}

/// A PostgreSQL server of our own.
pub struct Postgres {
    bin: PathBuf,
    dir: PathBuf,
    pub port: u16,
    as_postgres: bool,
}

impl Postgres {
    /// Initialises and starts a server, or `None` with a message when
    /// PostgreSQL is not installed (`tests/run` installs it).
    pub fn start() -> Option<Self> {
        let Some(bin) = pg_bin() else {
            eprintln!("SKIPPED: PostgreSQL (initdb) is not installed; tests/run installs it");
            return None;
        };
        let dir = crate::temp_dir().join("pg");
        std::fs::create_dir_all(&dir).expect("pg dir");
        let as_postgres = is_root();
        if as_postgres {
            let parent = dir.parent().expect("parent");
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(parent)
                .status()
                .expect("chown");
            assert!(status.success(), "chown of the PostgreSQL folder");
        }
        let pg = Self {
            bin,
            dir,
            port: crate::free_port(),
            as_postgres,
        };
        let data = pg.dir.join("data");
        pg.run(
            "initdb",
            &[
                "-D",
                path(&data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
            ],
        );
        pg.resume();
        Some(pg)
    }

    fn run(&self, program: &str, args: &[&str]) {
        let exe = self.bin.join(program);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let out = cmd
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e}"));
        assert!(
            out.status.success(),
            "{program} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `postgres://` URL of the `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server (fast shutdown: connections are cut).
    pub fn stop(&self) {
        let data = self.dir.join("data");
        self.run("pg_ctl", &["-D", path(&data), "-m", "fast", "-w", "stop"]);
        wait_for_port(self.port, false);
    }

    /// Starts the server again on the same port with the same data.
    pub fn resume(&self) {
        let data = self.dir.join("data");
        let log = self.dir.join("log");
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.display()
        );
        self.run(
            "pg_ctl",
            &[
                "-D",
                path(&data),
                "-l",
                path(&log),
                "-o",
                &options,
                "-w",
                "start",
            ],
        );
        wait_for_port(self.port, true);
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let exe = self.bin.join("pg_ctl");
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let _ = cmd
            .args(["-D", path(&data), "-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if let Some(parent) = self.dir.parent() {
            let _ = std::fs::remove_dir_all(parent);
        }
    }
}

/// A Redis server of our own, without persistence.
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
}

impl Redis {
    /// Starts a server, or `None` with a message when `redis-server` is not
    /// installed (`tests/run` installs it).
    pub fn start() -> Option<Self> {
        let mut redis = Self {
            child: None,
            port: crate::free_port(),
        };
        match redis.spawn() {
            Ok(()) => Some(redis),
            Err(e) => {
                eprintln!("SKIPPED: redis-server cannot start ({e}); tests/run installs it");
                None
            }
        }
    }

    fn spawn(&mut self) -> std::io::Result<()> {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        self.child = Some(child);
        wait_for_port(self.port, true);
        Ok(())
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Stops the server; everything in it is lost, as in a crash.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        wait_for_port(self.port, false);
    }

    /// Starts an empty server again on the same port.
    pub fn resume(&mut self) {
        self.spawn().expect("restarting redis-server");
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// PostgreSQL and Redis together: what several instances share.
pub struct Backing {
    pub postgres: Postgres,
    pub redis: Redis,
}

impl Backing {
    /// Both servers, or `None` (with a message) if either is not installed.
    pub fn start() -> Option<Self> {
        let redis = Redis::start()?;
        let postgres = Postgres::start()?;
        Some(Self { postgres, redis })
    }

    /// What an instance needs to use them, with `secret` as master secret.
    pub fn shared(&self, issuer: &str) -> crate::Shared {
        crate::Shared {
            database_url: self.postgres.url(),
            redis_url: self.redis.url(),
            issuer: issuer.to_owned(),
        }
    }
}
