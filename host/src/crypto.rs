//! Encryption at rest for secrets (and the view tokens kept for idempotent replays):
//! XChaCha20-Poly1305 with a random 24-byte nonce per value, the value's owner bound in
//! as associated data so a ciphertext cannot be moved to another app or name.

use std::path::Path;

use anyhow::{Context as _, bail};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

/// Nonce length of XChaCha20-Poly1305.
const NONCE: usize = 24;

/// Encrypts and decrypts with the master key.
pub struct Sealer {
    cipher: XChaCha20Poly1305,
}

impl Sealer {
    /// The key from `FLOOM_MASTER_KEY` (64 hex digits), else from `<data-dir>/master-key`,
    /// generated there (mode 0600) on first start.
    pub fn load(data_dir: &Path) -> anyhow::Result<Self> {
        let hex_key = match std::env::var("FLOOM_MASTER_KEY") {
            Ok(key) if !key.trim().is_empty() => key.trim().to_owned(),
            _ => {
                let path = data_dir.join("master-key");
                match std::fs::read_to_string(&path) {
                    Ok(key) => key.trim().to_owned(),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        let key = hex::encode(random::<32>()?);
                        write_private(&path, &key)?;
                        key
                    }
                    Err(e) => {
                        return Err(e).with_context(|| format!("cannot read {}", path.display()));
                    }
                }
            }
        };
        let key = hex::decode(&hex_key).ok().filter(|k| k.len() == 32);
        let Some(key) = key else {
            bail!("the master key must be 32 bytes written as 64 hex digits");
        };
        Ok(Sealer {
            cipher: XChaCha20Poly1305::new_from_slice(&key).context("master key")?,
        })
    }

    /// Encrypts `plaintext` for `owner`; returns the nonce followed by the ciphertext.
    pub fn seal(&self, owner: &[u8], plaintext: &[u8]) -> anyhow::Result<Vec<u8>> {
        let nonce = random::<NONCE>()?;
        let ciphertext = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: owner,
                },
            )
            .map_err(|_| anyhow::anyhow!("encryption failed"))?;
        Ok([nonce.as_slice(), &ciphertext].concat())
    }

    /// Decrypts what [`Sealer::seal`] made for `owner`.
    pub fn open(&self, owner: &[u8], sealed: &[u8]) -> anyhow::Result<Vec<u8>> {
        if sealed.len() < NONCE {
            bail!("the sealed value is too short");
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE);
        self.cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: owner,
                },
            )
            .map_err(|_| anyhow::anyhow!("the value does not decrypt with this master key"))
    }
}

/// The associated data a secret is sealed with: its app and name.
pub fn secret_owner(app: &str, name: &str) -> Vec<u8> {
    format!("secret\0{app}\0{name}").into_bytes()
}

fn random<const N: usize>() -> anyhow::Result<[u8; N]> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(bytes)
}

/// Writes a new file readable by its owner only.
pub fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    writeln!(file, "{contents}")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_for_their_owner() {
        let dir = std::env::temp_dir().join(format!("floom-sealer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sealer = Sealer::load(&dir).unwrap();
        let sealed = sealer.seal(b"app\0KEY", b"s3cret").unwrap();
        assert!(!sealed.windows(6).any(|w| w == b"s3cret"));
        assert_eq!(sealer.open(b"app\0KEY", &sealed).unwrap(), b"s3cret");
        assert!(sealer.open(b"other\0KEY", &sealed).is_err());
        // The same key is read back on the next start.
        let again = Sealer::load(&dir).unwrap();
        assert_eq!(again.open(b"app\0KEY", &sealed).unwrap(), b"s3cret");
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.join("master-key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
