//! `zapini-id bench …`: helpers for the benchmark in `tests/bench`, hidden
//! from the help. They measure Argon2id with the server's own parameters and
//! code, and load users and authorization codes straight into the store, so
//! that a benchmark does not spend its time on setup through HTTP.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Subcommand;
use zapini_core::auth::AuthMethod;
use zapini_core::crypto::{Sealer, random_token, token_hash};
use zapini_core::flow::{AuthorizationCode, ns};
use zapini_core::{Authentication, Clock, Secret, SystemClock};
use zapini_login::PasswordHasher;
use zapini_login::second_factor::SEED_PURPOSE;
use zapini_store::SeedUser;

use crate::config::Config;
use crate::server::open_store;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Argon2id hashes per second with the configured parameters, on
    /// `--threads` threads at once; prints one JSON line.
    Hash {
        #[arg(long, default_value_t = 1)]
        threads: usize,
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
    },
    /// Inserts `--count` users `<prefix><n>@bench.example` in one
    /// transaction, all with the password read from standard input (hashed
    /// once); the first `--totp-count` get the TOTP seed `--totp-seed-hex`.
    SeedUsers {
        #[arg(long)]
        count: u64,
        #[arg(long, default_value_t = 0)]
        start: u64,
        #[arg(long, default_value = "user")]
        prefix: String,
        #[arg(long, default_value_t = 0)]
        totp_count: u64,
        #[arg(long)]
        totp_seed_hex: Option<String>,
    },
    /// Stores `--count` authorization codes for `--client` and the user
    /// `--email`, as `/authorize/continue` would after a password and TOTP
    /// sign-in, and prints them one a line.
    SeedCodes {
        #[arg(long)]
        client: String,
        #[arg(long)]
        redirect_uri: String,
        #[arg(long)]
        email: String,
        #[arg(long, default_value = "openid")]
        scope: String,
        #[arg(long)]
        count: u64,
    },
}

pub async fn run(path: &std::path::Path, explicit: bool, cmd: BenchCommand) -> anyhow::Result<()> {
    let config = Config::load(path, explicit)?;
    match cmd {
        BenchCommand::Hash { threads, seconds } => hash_rate(&config, threads, seconds).await,
        BenchCommand::SeedUsers {
            count,
            start,
            prefix,
            totp_count,
            totp_seed_hex,
        } => {
            let seed = match totp_seed_hex {
                Some(hex) => Some(decode_hex(&hex)?),
                None if totp_count > 0 => bail!("--totp-count needs --totp-seed-hex"),
                None => None,
            };
            let plan = SeedPlan {
                count,
                start,
                prefix,
                totp_count,
            };
            seed_users(&config, plan, seed).await
        }
        BenchCommand::SeedCodes {
            client,
            redirect_uri,
            email,
            scope,
            count,
        } => {
            let scope = scope.split(' ').map(str::to_owned).collect();
            seed_codes(&config, &client, &redirect_uri, &email, scope, count).await
        }
    }
}

/// Hashes with the server's `PasswordHasher` (on the blocking pool, as the
/// sign-in does) from `threads` tasks at once for `seconds`.
async fn hash_rate(config: &Config, threads: usize, seconds: f64) -> anyhow::Result<()> {
    let policy = config.password_policy();
    let hasher = PasswordHasher::new(policy, threads)?;
    let password = Secret::new("correct horse battery staple");
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let tasks: Vec<_> = (0..threads.max(1))
        .map(|_| {
            let (hasher, password) = (hasher.clone(), password.clone());
            tokio::spawn(async move {
                let mut done = 0u64;
                while Instant::now() < until {
                    hasher.hash(&password).await?;
                    done += 1;
                }
                anyhow::Ok(done)
            })
        })
        .collect();
    let mut total = 0;
    for task in tasks {
        total += task.await??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let line = serde_json::json!({
        "threads": threads,
        "hashes": total,
        "seconds": elapsed,
        "per_second": total as f64 / elapsed,
        "memory_kib": policy.memory_kib,
        "iterations": policy.iterations,
        "parallelism": policy.parallelism,
    });
    println!("{line}");
    Ok(())
}

struct SeedPlan {
    count: u64,
    start: u64,
    prefix: String,
    totp_count: u64,
}

async fn seed_users(config: &Config, plan: SeedPlan, seed: Option<Vec<u8>>) -> anyhow::Result<()> {
    let password = crate::cli::read_password()?;
    let hasher = PasswordHasher::new(config.password_policy(), 1)?;
    let hash = hasher.hash(&password).await?;
    let sealer = Sealer::from_master_secret(&crate::secret::load(config)?);
    let sealed = match &seed {
        Some(seed) => Some(sealer.seal(SEED_PURPOSE, seed)?),
        None => None,
    };
    let users: Vec<SeedUser> = (plan.start..plan.start + plan.count)
        .map(|n| SeedUser {
            id: format!("{}-{n}", plan.prefix),
            email: format!("{}{n}@bench.example", plan.prefix),
            totp_sealed: (n - plan.start < plan.totp_count)
                .then(|| sealed.clone())
                .flatten(),
        })
        .collect();

    let store = open_store(config).await?;
    let started = Instant::now();
    let now = SystemClock::default().now();
    let inserted = store.bulk().insert_users(users, &hash, now).await?;
    let total = store.users().count().await?;
    store.close().await;
    println!(
        "{}",
        serde_json::json!({
            "inserted": inserted,
            "users": total,
            "seconds": started.elapsed().as_secs_f64(),
        })
    );
    Ok(())
}

async fn seed_codes(
    config: &Config,
    client: &str,
    redirect_uri: &str,
    email: &str,
    scope: Vec<String>,
    count: u64,
) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    let Some(found) = store.users().find_by_email(email).await? else {
        bail!("no user with email {email:?}");
    };
    let now = SystemClock::default().now();
    let auth_id = random_token(16)?.expose().to_owned();
    let auth = Authentication::new(auth_id, vec![AuthMethod::Password, AuthMethod::Totp], now);
    let mut out = std::io::stdout().lock();
    for _ in 0..count {
        let code = random_token(32)?;
        let record = AuthorizationCode {
            client_id: client.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            code_challenge: None,
            scope: scope.clone(),
            nonce: None,
            user_id: found.user.id.clone(),
            sid: random_token(16)?.expose().to_owned(),
            auth: auth.clone(),
            expires_at: now + config.tokens.code_ttl,
            id_token_claims: Vec::new(),
            userinfo_claims: Vec::new(),
        };
        let key = token_hash(code.expose());
        store
            .ephemeral()
            .put(ns::CODE, &key, &record, record.expires_at)
            .await
            .context("storing a code")?;
        writeln!(out, "{}", code.expose())?;
    }
    store.close().await;
    Ok(())
}

fn decode_hex(text: &str) -> anyhow::Result<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("--totp-seed-hex is not hexadecimal");
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).context("hex"))
        .collect()
}
