//! Secrets and identifiers: hex rendering, new tokens, constant-time comparison.

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

/// A new random secret: 24 random bytes in hex (the API token when none is configured).
pub fn generate_token() -> String {
    use rand::Rng;
    let bytes: [u8; 24] = rand::rng().random();
    hex(&bytes)
}

/// Constant-time comparison for secrets: both sides are hashed to SHA-256 first, so neither
/// a differing byte nor a differing length shows in the time taken.
pub fn secret_eq(a: &str, b: &str) -> bool {
    use sha2::Digest as _;
    use subtle::ConstantTimeEq as _;
    let (a, b) = (
        sha2::Sha256::digest(a.as_bytes()),
        sha2::Sha256::digest(b.as_bytes()),
    );
    a.ct_eq(&b).into()
}

#[cfg(test)]
mod tests {
    #[test]
    fn secrets_compare_by_content_whatever_their_length() {
        assert!(super::secret_eq("s3cret", "s3cret"));
        assert!(!super::secret_eq("s3cret", "s3creT"));
        assert!(!super::secret_eq("s3cret", "s3cret-and-more"));
        assert!(!super::secret_eq("", "s3cret"));
    }
}
