//! Reloading while the server runs. On SIGHUP, and whenever the settings
//! file or a client file changed (looked at every `reload_interval`
//! seconds), the files go through the checks of `zapini-id config check`;
//! only a configuration without problems replaces the clients in force.
//! The signing keys are read from the database on every tick, so a key
//! rotated from any instance's command line reaches every instance.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use zapini_core::Clock;
use zapini_core::crypto::Sealer;
use zapini_oidc::clients::ClientErrors;
use zapini_oidc::{ClientRegistry, LiveState};
use zapini_store::Store;

use crate::config::Config;

/// Why a configuration was refused.
pub enum CheckFailed {
    /// The settings file, or the environment, has problems; client files were
    /// not read, since the settings name their folder.
    Settings(anyhow::Error),
    /// The settings are good, some client files are not.
    Clients(ClientErrors),
}

/// The checks of `config check` and of start-up: the settings, then every
/// client file.
pub fn load_checked(path: &Path, explicit: bool) -> Result<(Config, ClientRegistry), CheckFailed> {
    let config = Config::load(path, explicit).map_err(CheckFailed::Settings)?;
    match ClientRegistry::load_dir(&config.clients_dir, &|name| std::env::var(name).ok()) {
        Ok(registry) => Ok((config, registry)),
        Err(errors) => Err(CheckFailed::Clients(errors)),
    }
}

/// Where the files are and what the store holds.
pub struct Sources {
    /// The settings file, and whether it was named (a missing default file
    /// means built-in settings).
    pub path: PathBuf,
    pub explicit: bool,
    pub store: Store,
    pub sealer: Sealer,
    pub clock: Arc<dyn Clock>,
}

/// What reloads need, and what the last reload saw.
pub struct Reloader {
    from: Sources,
    live: LiveState,
    /// The settings in force, to name changes that need a restart.
    settings: serde_json::Value,
    clients_dir: PathBuf,
    /// A digest of the files last checked, so a change is acted on (and an
    /// invalid file logged) once, not on every tick.
    seen: [u8; 32],
    hangup: Hangup,
}

impl Reloader {
    /// Starts listening for SIGHUP at once: call it before the server
    /// reports ready, so that a SIGHUP from then on reloads instead of
    /// ending the process.
    pub fn new(from: Sources, config: &Config, live: LiveState) -> Self {
        Self {
            settings: serde_json::to_value(config).unwrap_or_default(),
            clients_dir: config.clients_dir.clone(),
            seen: files_digest(&from.path, &config.clients_dir),
            hangup: hangup_signal(),
            from,
            live,
        }
    }

    /// Reloads on SIGHUP and every `interval`, until the process ends.
    pub async fn run(mut self, interval: Duration) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            let forced = tokio::select! {
                _ = tick.tick() => false,
                () = next_hangup(&mut self.hangup) => true,
            };
            if forced {
                tracing::info!("SIGHUP: reloading client files and signing keys");
            }
            self.keys().await;
            let digest = files_digest(&self.from.path, &self.clients_dir);
            if forced || digest != self.seen {
                self.seen = digest;
                self.clients();
            }
        }
    }

    /// Swaps in the stored keys when they changed; on error the keys in
    /// force stay.
    async fn keys(&self) {
        let current = self.live.snapshot().keys;
        match current
            .reload(&self.from.store, &self.from.sealer, self.from.clock.now())
            .await
        {
            Ok(Some(ring)) => {
                tracing::info!(kids = ?ring.kids(), "signing keys reloaded");
                self.live.replace_keys(ring);
            }
            Ok(None) => {}
            Err(err) => tracing::error!(
                error = %err,
                "signing keys not reloaded; the keys loaded before stay in force"
            ),
        }
    }

    /// Checks the settings and client files and swaps in the clients when
    /// there is no problem; otherwise logs every problem (file, field,
    /// reason) and keeps the clients in force.
    fn clients(&mut self) {
        let (config, registry) = match load_checked(&self.from.path, self.from.explicit) {
            Ok(checked) => checked,
            Err(CheckFailed::Settings(err)) => {
                for line in format!("{err:#}").lines() {
                    tracing::error!(problem = line, "settings not reloaded");
                }
                tracing::error!("reload refused; the last good configuration stays in force");
                return;
            }
            Err(CheckFailed::Clients(errors)) => {
                for problem in &errors.0 {
                    tracing::error!(
                        file = %problem.file.display(),
                        field = %problem.field,
                        reason = %problem.reason,
                        "client file not reloaded"
                    );
                }
                tracing::error!("reload refused; the last good configuration stays in force");
                return;
            }
        };

        let needs_restart = changed_settings(&self.settings, &config);
        if !needs_restart.is_empty() {
            tracing::warn!(
                settings = ?needs_restart,
                "these settings changed and take effect only after a restart"
            );
        }
        if config.clients_dir != self.clients_dir {
            self.clients_dir = config.clients_dir.clone();
            self.seen = files_digest(&self.from.path, &self.clients_dir);
        }
        tracing::info!(
            clients = registry.len(),
            dir = %self.clients_dir.display(),
            "client files reloaded"
        );
        self.live.replace_clients(registry);
    }
}

/// Top-level settings that differ from those in force, except the client
/// folder, which a reload follows.
fn changed_settings(before: &serde_json::Value, config: &Config) -> Vec<String> {
    let Ok(serde_json::Value::Object(now)) = serde_json::to_value(config) else {
        return Vec::new();
    };
    now.iter()
        .filter(|(key, value)| key.as_str() != "clients_dir" && before.get(key) != Some(value))
        .map(|(key, _)| key.clone())
        .collect()
}

/// A digest of the settings file, of every `*.toml` file in the client
/// folder, and of the secret file each of those names
/// (`client_secret_file`), names and contents: a secret replaced in its
/// file is picked up by polling like any other change. The digest stays in
/// memory and is compared, never logged.
pub fn files_digest(settings: &Path, clients_dir: &Path) -> [u8; 32] {
    let mut files: Vec<PathBuf> = std::fs::read_dir(clients_dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files.insert(0, settings.to_owned());

    let secrets: Vec<PathBuf> = files[1..]
        .iter()
        .filter_map(|f| secret_file_of(f))
        .collect();
    files.extend(secrets);

    let mut all = Vec::new();
    for file in files {
        let name = file.to_string_lossy().into_owned();
        let content = std::fs::read(&file).unwrap_or_default();
        for part in [name.as_bytes(), &content] {
            all.extend_from_slice(&(part.len() as u64).to_be_bytes());
            all.extend_from_slice(part);
        }
    }
    zapini_core::crypto::sha256(&all)
}

/// The `client_secret_file` a client file names, resolved as the client
/// loader resolves it (relative to the client file's folder). A file that
/// does not parse names none; the reload reports it anyway.
fn secret_file_of(client_file: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(client_file).ok()?;
    let table: toml::Table = text.parse().ok()?;
    let path = Path::new(table.get("client_secret_file")?.as_str()?);
    Some(if path.is_relative() {
        client_file.parent().unwrap_or(Path::new(".")).join(path)
    } else {
        path.to_owned()
    })
}

#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = ();

#[cfg(unix)]
fn hangup_signal() -> Hangup {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::hangup()) {
        Ok(sig) => Some(sig),
        Err(err) => {
            tracing::warn!(error = %err, "SIGHUP cannot be caught; reloads only by polling");
            None
        }
    }
}

#[cfg(not(unix))]
fn hangup_signal() -> Hangup {}

#[cfg(unix)]
async fn next_hangup(hangup: &mut Hangup) {
    if let Some(sig) = hangup
        && sig.recv().await.is_some()
    {
        return;
    }
    std::future::pending().await
}

#[cfg(not(unix))]
async fn next_hangup(_: &mut Hangup) {
    std::future::pending().await
}
