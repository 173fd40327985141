//! The operator's commands: migrations, users, clients.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, bail};
use clap::Subcommand;
use zapini_core::user::is_plausible_email;
use zapini_core::{Clock, Secret, SystemClock};
use zapini_login::PasswordHasher;
use zapini_login::password::{MAX_PASSWORD_BYTES, MIN_PASSWORD_CHARS};
use zapini_store::NewUser;

use crate::config::Config;
use crate::server::{load_clients, open_store};

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

fn read_password() -> anyhow::Result<Secret> {
    let mut input = String::new();
    std::io::stdin()
        .take(MAX_PASSWORD_BYTES as u64 + 2)
        .read_to_string(&mut input)
        .context("reading the password from standard input")?;
    let password = input.lines().next().unwrap_or_default().to_owned();
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
    }
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
