//! Passwords for the seed: generated ones (random, from the system's CSPRNG) and SHA-512
//! crypt hashes (`$6$...`, what /etc/shadow and cloud-init's `hashed_passwd` take).
//!
//! Plain passwords given on the command line are hashed with a salt derived from the VM and
//! user name, so the same settings give the same hash and the same instance-id (no spurious
//! re-provisioning); generated passwords get a random salt.

use super::error::CloudInitError;
use sha_crypt::{PasswordHasher, ShaCrypt};
use sha2::{Digest, Sha256};

/// Characters of generated passwords: no look-alikes (0/O, 1/l/I), no shell metacharacters.
const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
/// Length of generated passwords (about 116 bits).
pub const GENERATED_LEN: usize = 20;

/// A new random password.
pub fn generate() -> Result<String, CloudInitError> {
    let mut out = String::with_capacity(GENERATED_LEN);
    while out.len() < GENERATED_LEN {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| CloudInitError::Random(e.to_string()))?;
        // Rejection sampling keeps every character equally likely.
        let limit = 256 - 256 % ALPHABET.len();
        for b in bytes {
            if (b as usize) < limit && out.len() < GENERATED_LEN {
                out.push(ALPHABET[b as usize % ALPHABET.len()] as char);
            }
        }
    }
    Ok(out)
}

/// Salt bytes per hash: 12 bytes are the 16 crypt-base64 characters crypt(3) uses.
const SALT_BYTES: usize = 12;

/// SHA-512 crypt of `password` with a salt derived from `vm_name` and `user`.
pub fn hash_for(password: &str, vm_name: &str, user: &str) -> Result<String, CloudInitError> {
    let digest = Sha256::digest(format!("vmux cloud-init salt\0{vm_name}\0{user}").as_bytes());
    hash_with_salt(password, &digest[..SALT_BYTES])
}

/// SHA-512 crypt of `password` with a random salt.
pub fn hash_random(password: &str) -> Result<String, CloudInitError> {
    let mut salt = [0u8; SALT_BYTES];
    getrandom::fill(&mut salt).map_err(|e| CloudInitError::Random(e.to_string()))?;
    hash_with_salt(password, &salt)
}

/// `$6$rounds=5000$SALT$HASH`, where SALT is `salt` in crypt's base64 (the form glibc's
/// crypt(3) and so /etc/shadow read).
fn hash_with_salt(password: &str, salt: &[u8]) -> Result<String, CloudInitError> {
    ShaCrypt::default()
        .hash_password_with_salt(password.as_bytes(), salt)
        .map(|h| h.as_str().to_string())
        .map_err(|e| CloudInitError::Hash(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha_crypt::PasswordVerifier;

    #[test]
    fn generated_passwords_are_long_distinct_and_plain() {
        let a = generate().expect("random");
        let b = generate().expect("random");
        assert_eq!(a.len(), GENERATED_LEN);
        assert_ne!(a, b);
        assert!(a.bytes().all(|c| ALPHABET.contains(&c)), "{a}");
    }

    #[test]
    fn hashes_are_sha512_crypt_and_verify() {
        let hash = hash_for("s3cret", "web1", "root").expect("hash");
        assert!(hash.starts_with("$6$"), "{hash}");
        let parsed = sha_crypt::PasswordHash::new(&hash).expect("parses");
        ShaCrypt::default()
            .verify_password(b"s3cret", &parsed)
            .expect("verifies");
        assert!(
            ShaCrypt::default()
                .verify_password(b"wrong", &parsed)
                .is_err()
        );
    }

    #[test]
    fn the_same_settings_hash_the_same_and_other_vms_differently() {
        let one = hash_for("pw", "web1", "alice").expect("hash");
        assert_eq!(one, hash_for("pw", "web1", "alice").expect("hash"));
        assert_ne!(one, hash_for("pw", "web2", "alice").expect("hash"));
        assert_ne!(
            hash_random("pw").expect("hash"),
            hash_random("pw").expect("hash")
        );
    }

    #[test]
    fn hashes_match_an_independent_crypt_implementation() {
        let hash = hash_for("Hello world!", "web1", "root").expect("hash");
        let fields: Vec<&str> = hash.split('$').collect();
        assert_eq!(fields[1..3], ["6", "rounds=5000"], "{hash}");
        let salt = fields[3];
        assert_eq!(salt.len(), 16, "{hash}");
        // OpenSSL's SHA-512 crypt (same algorithm as glibc's).
        if !crate::prereq::met(&[crate::prereq::Need::program("openssl", "openssl")]) {
            return;
        }
        let out = std::process::Command::new("openssl")
            .args(["passwd", "-6", "-salt", salt, "Hello world!"])
            .output()
            .expect("run openssl");
        let theirs = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert_eq!(
            theirs.rsplit('$').next(),
            Some(fields[4]),
            "ours {hash}, openssl {theirs}"
        );
    }
}
