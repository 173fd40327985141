//! The operator's commands: migrations, users, clients, signing keys.

use std::io::{Read, Write};
use std::path::Path;

use anyhow::{Context, bail};
use clap::Subcommand;
use zapini_core::user::is_plausible_email;
use zapini_core::{Clock, Secret, SystemClock};
use zapini_login::PasswordHasher;
use zapini_login::password::{MAX_PASSWORD_BYTES, MIN_PASSWORD_CHARS};
use zapini_store::NewUser;

use crate::config::Config;
use crate::reload::{CheckFailed, load_checked};
use crate::server::{command_clock, load_clients, open_store};

#[derive(Subcommand)]
pub enum UsersCommand {
    /// Create a user; the password is read from standard input.
    Add {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: Option<String>,
        /// Read the password from standard input (one line).
        #[arg(long, required = true)]
        password_stdin: bool,
        /// The address is known to belong to the user (`email_verified`).
        #[arg(long)]
        email_verified: bool,
    },
    /// List users.
    List,
    /// Stop a user from signing in.
    Disable {
        #[arg(long)]
        email: String,
    },
    /// Let a disabled user sign in again.
    Enable {
        #[arg(long)]
        email: String,
    },
    /// Turn off a user's two-factor authentication and sign them out
    /// everywhere, for a user who lost both phone and recovery codes.
    #[command(name = "reset-2fa")]
    Reset2fa {
        #[arg(long)]
        email: String,
    },
    /// Remove all of a user's passkeys (a lost device); signs out their sessions.
    #[command(name = "remove-passkeys")]
    RemovePasskeys {
        #[arg(long)]
        email: String,
    },
}

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create the next signing key of every algorithm: published at once,
    /// signing after `key_activation_delay`; the current keys retire then.
    Rotate,
    /// List the signing keys: kid, algorithm, state and times (UTC).
    List,
}

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Print every problem of the settings and client files, one a line
    /// (file: field: reason); exits non-zero if there is any.
    Check,
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Write the security log as JSON lines to standard output.
    Export {
        /// Only this user's events.
        #[arg(long)]
        email: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum ClientsCommand {
    /// Check the client files; exits non-zero on any problem.
    Check,
    /// List the loaded clients.
    List,
    /// Generate a client secret and print it with its hash.
    NewSecret,
    /// Print the `client_secret_hash` of a secret read from standard input.
    HashSecret,
}

pub async fn migrate(path: &Path, explicit: bool) -> anyhow::Result<()> {
    let config = Config::load(path, explicit)?;
    let store = open_store(&config).await?;
    store.close().await;
    println!("migrations applied");
    Ok(())
}

pub(crate) fn read_password() -> anyhow::Result<Secret> {
    let mut input = String::new();
    std::io::stdin()
        .take(MAX_PASSWORD_BYTES as u64 + 2)
        .read_to_string(&mut input)
        .context("reading the password from standard input")?;
    let password = input.lines().next().unwrap_or_default().to_owned();
    if password.trim().is_empty() {
        bail!("the password must not be only spaces");
    }
    if password.chars().count() < MIN_PASSWORD_CHARS {
        bail!("the password must be at least {MIN_PASSWORD_CHARS} characters");
    }
    if password.len() > MAX_PASSWORD_BYTES {
        bail!("the password must be at most {MAX_PASSWORD_BYTES} bytes");
    }
    Ok(Secret::new(password))
}

pub async fn users(path: &Path, explicit: bool, cmd: UsersCommand) -> anyhow::Result<()> {
    let config = Config::load(path, explicit)?;
    let now = SystemClock::default().now();
    match cmd {
        UsersCommand::Add {
            email,
            name,
            password_stdin: _,
            email_verified,
        } => {
            if !is_plausible_email(email.trim()) {
                bail!("{email:?} is not an email address");
            }
            let name = name.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
            if let Some(n) = &name
                && (n.chars().count() > 200 || n.chars().any(char::is_control))
            {
                bail!("--name must be at most 200 characters, without control characters");
            }
            let password = read_password()?;
            let hasher = PasswordHasher::new(config.password_policy(), 1)?;
            let hash = hasher.hash(&password).await?;
            let store = open_store(&config).await?;
            let id = zapini_core::crypto::random_token(16)?.expose().to_owned();
            let new = NewUser {
                id,
                email,
                email_verified,
                name,
                password_hash: Some(hash),
            };
            let user = match store.users().create(new, now).await {
                Err(zapini_store::StoreError::Conflict) => {
                    bail!("a user with this email already exists")
                }
                other => other?,
            };
            println!("created user {} ({})", user.email, user.id);
            store.close().await;
        }
        UsersCommand::List => {
            let store = open_store(&config).await?;
            for user in store.users().list().await? {
                let status = if user.disabled { "disabled" } else { "active" };
                let name = user.name.as_deref().unwrap_or("");
                println!("{}\t{}\t{}\t{}", user.id, user.email, status, name);
            }
            store.close().await;
        }
        UsersCommand::Disable { email } | UsersCommand::Enable { email } if email.is_empty() => {
            bail!("--email is empty")
        }
        UsersCommand::Disable { email } => set_disabled(&config, &email, true, now).await?,
        UsersCommand::Enable { email } => set_disabled(&config, &email, false, now).await?,
        UsersCommand::Reset2fa { email } => reset_2fa(&config, &email, now).await?,
        UsersCommand::RemovePasskeys { email } => remove_passkeys(&config, &email, now).await?,
    }
    Ok(())
}

async fn reset_2fa(config: &Config, email: &str, now: i64) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    let Some(found) = store.users().find_by_email(email).await? else {
        bail!("no user with email {email:?}");
    };
    let user_id = found.user.id;
    let had = store.totps().disable(&user_id).await?;
    store.refresh_tokens().revoke_user(&user_id, now).await?;
    let ended = store.sessions().end_all(&user_id, None, now).await?;
    let event = zapini_core::audit::Event {
        user_id: Some(user_id),
        kind: zapini_core::audit::EventKind::TwoFactorReset,
        detail: serde_json::json!({ "by": "operator", "had_totp": had, "sessions_ended": ended }),
        ip: None,
        user_agent: None,
        at: now,
    };
    store.audit().record(&event).await?;
    println!("two-factor authentication reset for {email}; {ended} session(s) signed out");
    store.close().await;
    Ok(())
}

async fn remove_passkeys(config: &Config, email: &str, now: i64) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    let Some(found) = store.users().find_by_email(email).await? else {
        bail!("no user with email {email:?}");
    };
    let user_id = found.user.id;
    let removed = store.passkeys().remove_all(&user_id).await?;
    store.refresh_tokens().revoke_user(&user_id, now).await?;
    let ended = store.sessions().end_all(&user_id, None, now).await?;
    let event = zapini_core::audit::Event {
        user_id: Some(user_id),
        kind: zapini_core::audit::EventKind::PasskeyRemoved,
        detail: serde_json::json!({ "by": "operator", "removed": removed, "sessions_ended": ended }),
        ip: None,
        user_agent: None,
        at: now,
    };
    store.audit().record(&event).await?;
    println!("{removed} passkey(s) removed for {email}; {ended} session(s) signed out");
    store.close().await;
    Ok(())
}

pub async fn audit(path: &Path, explicit: bool, cmd: AuditCommand) -> anyhow::Result<()> {
    let config = Config::load(path, explicit)?;
    let store = open_store(&config).await?;
    let AuditCommand::Export { email } = cmd;
    let only = match email {
        Some(email) => match store.users().find_by_email(&email).await? {
            Some(found) => Some(found.user.id),
            None => bail!("no user with email {email:?}"),
        },
        None => None,
    };
    let mut out = std::io::stdout().lock();
    let mut after = 0;
    loop {
        let page = store.audit().page(after, 500).await?;
        let Some((last, _)) = page.last() else { break };
        after = *last;
        for (id, event) in page {
            if only.is_some() && event.user_id != only {
                continue;
            }
            let mut line = serde_json::to_value(&event)?;
            line["id"] = id.into();
            writeln!(out, "{line}")?;
        }
    }
    store.close().await;
    Ok(())
}

async fn set_disabled(
    config: &Config,
    email: &str,
    disabled: bool,
    now: i64,
) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    if !store.users().set_disabled(email, disabled, now).await? {
        bail!("no user with email {email:?}");
    }
    if disabled && let Some(found) = store.users().find_by_email(email).await? {
        store
            .refresh_tokens()
            .revoke_user(&found.user.id, now)
            .await?;
    }
    println!("{} {email}", if disabled { "disabled" } else { "enabled" });
    store.close().await;
    Ok(())
}

pub fn clients(path: &Path, explicit: bool, cmd: ClientsCommand) -> anyhow::Result<()> {
    match cmd {
        ClientsCommand::NewSecret => {
            let secret = zapini_core::crypto::random_token(32)?;
            println!("client secret (give it to the app):  {}", secret.expose());
            println!(
                "client_secret_hash (put it in the client file):  {}",
                zapini_oidc::clients::format_secret_hash(secret.expose())
            );
        }
        ClientsCommand::HashSecret => {
            let mut input = String::new();
            std::io::stdin().take(4096).read_to_string(&mut input)?;
            let secret = input.lines().next().unwrap_or_default();
            if secret.len() < 32 {
                bail!("the secret must be at least 32 characters");
            }
            println!("{}", zapini_oidc::clients::format_secret_hash(secret));
        }
        ClientsCommand::Check | ClientsCommand::List => {
            let config = Config::load(path, explicit)?;
            let registry = load_clients(&config)?;
            if matches!(cmd, ClientsCommand::Check) {
                println!(
                    "{} client(s) OK in {}",
                    registry.len(),
                    config.clients_dir.display()
                );
            } else {
                for c in registry.iter() {
                    println!(
                        "{}\t{}\t{}\t{}",
                        c.client_id,
                        c.auth_method.as_str(),
                        c.redirect_uris.join(" "),
                        c.source.display()
                    );
                }
            }
        }
    }
    Ok(())
}

/// `zapini-id config check`: the same checks as start-up and reload, all
/// problems at once.
pub fn config_check(path: &Path, explicit: bool) -> anyhow::Result<()> {
    match load_checked(path, explicit) {
        Ok((config, registry)) => {
            println!("{}: OK", path.display());
            println!(
                "{}: {} client(s) OK",
                config.clients_dir.display(),
                registry.len()
            );
            Ok(())
        }
        Err(CheckFailed::Settings(err)) => {
            // Client files are read only with valid settings (they name the
            // folder), so stop here.
            println!("{err:#}");
            bail!("the settings have problems; fix them and check again");
        }
        Err(CheckFailed::Clients(errors)) => {
            println!("{}: OK", path.display());
            for problem in &errors.0 {
                println!("{problem}");
            }
            bail!("{} problem(s) in client files", errors.0.len())
        }
    }
}

/// `zapini-id keys rotate | list`, against the configured database while
/// instances run. The master secret must be the servers' one: the stored
/// keys are unsealed first, so a wrong secret stops here instead of sealing
/// keys no instance can read.
pub async fn keys(path: &Path, explicit: bool, cmd: KeysCommand) -> anyhow::Result<()> {
    let config = Config::load(path, explicit)?;
    let now = command_clock().now();
    let retention = config.token_settings().key_retention();
    let store = open_store(&config).await?;
    let sealer = zapini_core::crypto::Sealer::from_master_secret(&crate::secret::load(&config)?);
    zapini_oidc::KeyRing::load_or_create(&store, &sealer, now, retention)
        .await
        .context("reading the stored signing keys")?;

    match cmd {
        KeysCommand::Rotate => {
            let delay = config.key_activation_delay;
            let rotated = match zapini_oidc::keys::rotate(&store, &sealer, now, delay).await {
                Err(zapini_oidc::keys::KeyError::AlreadyWaiting {
                    alg,
                    kid,
                    activates_at,
                }) => bail!(
                    "{alg} key {kid} of an earlier rotation signs only from {}; \
                     rotate again after that",
                    utc(activates_at)
                ),
                other => other?,
            };
            for key in rotated {
                println!(
                    "{}\t{}\tpublished now, signs from {}",
                    key.alg,
                    key.kid,
                    utc(key.activates_at)
                );
            }
            println!(
                "running instances publish the new keys within reload_interval ({} s), \
                 or at once on SIGHUP",
                config.reload_interval
            );
        }
        KeysCommand::List => {
            println!("kid\talg\tstate\tcreated\tactivates\tretires\tunpublished");
            for row in store.signing_keys().all().await? {
                let state = zapini_oidc::keys::KeyState::of(
                    row.active_from,
                    row.retired_at,
                    now,
                    retention,
                );
                let retires = row.retired_at.map_or("-".to_owned(), utc);
                let gone = row
                    .retired_at
                    .map_or("-".to_owned(), |at| utc(at.saturating_add(retention)));
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{retires}\t{gone}",
                    row.kid,
                    row.alg,
                    state.as_str(),
                    utc(row.created_at),
                    utc(row.active_from),
                );
            }
        }
    }
    store.close().await;
    Ok(())
}

/// A Unix time as RFC 3339 in UTC, to the second.
fn utc(t: i64) -> String {
    let (year, month, day, hour, minute) = zapini_login::i18n::civil(t);
    let second = t.rem_euclid(60);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z")
}
