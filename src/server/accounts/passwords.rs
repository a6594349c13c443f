//! Password rules and hashing: argon2 on the blocking pool, at most one hash per core at a
//! time, and a dummy hash so an unknown name costs a login as much as a known one.

use super::AccountError;
use crate::server::store::StoreError;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use std::sync::OnceLock;
use std::time::Duration;
use tokio::sync::Semaphore;

pub const PASSWORD_RULE: &str = "Passwords are 8–128 characters.";

/// How long a login or registration waits for a hashing slot before it is refused.
pub const HASH_WAIT: Duration = Duration::from_secs(2);

pub(super) fn check_password(password: &str) -> Result<(), AccountError> {
    let n = password.chars().count();
    if (8..=128).contains(&n) {
        Ok(())
    } else {
        Err(AccountError::Invalid(PASSWORD_RULE.to_string()))
    }
}

pub(super) async fn hash_password(
    hashing: &Semaphore,
    password: String,
) -> Result<String, AccountError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt)
        .map_err(|e| AccountError::Store(StoreError::Unavailable(format!("no randomness: {e}"))))?;
    blocking(hashing, move || {
        let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| e.to_string())
    })
    .await
}

pub(super) async fn verify_password(
    hashing: &Semaphore,
    password: String,
    hash: String,
) -> Result<bool, AccountError> {
    blocking(hashing, move || {
        let parsed = PasswordHash::new(&hash).map_err(|e| e.to_string())?;
        Ok(Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok())
    })
    .await
}

/// Runs argon2 on the blocking pool, once a hashing slot is free: it takes tens of
/// milliseconds of CPU and about 19 MiB by design, so unbounded it would take a thread and
/// that memory per concurrent login. Waits at most [`HASH_WAIT`] for the slot.
pub(super) async fn blocking<T: Send + 'static>(
    hashing: &Semaphore,
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, AccountError> {
    let _permit = match tokio::time::timeout(HASH_WAIT, hashing.acquire()).await {
        Ok(Ok(permit)) => permit,
        Ok(Err(_)) | Err(_) => return Err(AccountError::Busy),
    };
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r)
        .map_err(|e| {
            AccountError::Store(StoreError::Unavailable(format!(
                "password hashing failed: {e}"
            )))
        })
}

/// A valid hash of a password nobody has, verified against for unknown names.
pub(super) fn dummy_hash() -> &'static str {
    // Computed once, at start-up ([`Accounts::open`]).
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| {
        let salt = SaltString::encode_b64(b"hearth-no-user!!").expect("16-byte salt encodes");
        Argon2::default()
            .hash_password(b"no account has this password", &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}
