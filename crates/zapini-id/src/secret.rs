//! The master secret that seals signing keys (and later TOTP seeds) at rest.

use std::io::Write;

use anyhow::{Context, bail};
use zapini_core::Secret;
use zapini_core::crypto::random_token;

use crate::config::Config;

/// Shortest master secret accepted, in characters.
const MIN_LEN: usize = 32;

/// `ZAPINI_ID_SECRET`, else the secret file; on the embedded default a
/// missing file is created (several instances must share one secret, so
/// with PostgreSQL it must be given).
pub fn load(config: &Config) -> anyhow::Result<Secret> {
    if let Ok(value) = std::env::var("ZAPINI_ID_SECRET") {
        if value.len() < MIN_LEN {
            bail!("ZAPINI_ID_SECRET must be at least {MIN_LEN} characters");
        }
        return Ok(Secret::new(value));
    }

    let path = &config.secret_file;
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let value = text.trim().to_owned();
            if value.len() < MIN_LEN {
                bail!(
                    "{}: the secret must be at least {MIN_LEN} characters",
                    path.display()
                );
            }
            Ok(Secret::new(value))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && config.is_embedded_database() => {
            let value = random_token(32).context("generating a master secret")?;
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            write_private(path, value.expose())?;
            tracing::warn!(
                path = %path.display(),
                "no ZAPINI_ID_SECRET given: created a new master secret file. \
                 Back it up with the database; without it the signing keys cannot be read"
            );
            Ok(value)
        }
        Err(e) => Err(e).with_context(|| {
            format!(
                "reading {} (set ZAPINI_ID_SECRET or secret_file)",
                path.display()
            )
        }),
    }
}

fn write_private(path: &std::path::Path, value: &str) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    writeln!(file, "{value}").with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
