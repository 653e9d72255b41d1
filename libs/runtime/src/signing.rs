//! Standard Webhooks signatures (standardwebhooks.com): what notifications signs partner webhooks
//! with, and what the gateway verifies on a channel provider's callbacks. The secret is "whsec_" +
//! base64 of the key; the signature "v1," + base64(HMAC-SHA256(key, "id.timestamp.body")).

use base64::Engine as _;

/// A new signing secret: "whsec_" + base64 of 32 random bytes.
pub fn new_secret() -> anyhow::Result<String> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| anyhow::anyhow!("no randomness for a signing secret"))?;
    Ok(format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    ))
}

fn key(secret: &str) -> anyhow::Result<ring::hmac::Key> {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .map_err(|_| anyhow::anyhow!("signing secret is not base64"))?;
    Ok(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key))
}

/// The `webhook-signature` value for a message.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &str) -> anyhow::Result<String> {
    let tag = ring::hmac::sign(&key(secret)?, format!("{id}.{timestamp}.{body}").as_bytes());
    Ok(format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(tag.as_ref())
    ))
}

/// Why a signed message is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("missing webhook-id, webhook-timestamp or webhook-signature")]
    Missing,
    #[error("timestamp outside the tolerance")]
    Stale,
    #[error("no matching signature")]
    Mismatch,
}

/// Checks a message: its timestamp within `tolerance_secs` of `now` (replays of old messages are
/// refused) and one of the space-separated `v1,` signatures made with `secret` (compared in
/// constant time).
pub fn verify(
    secret: &str,
    id: &str,
    timestamp: &str,
    signatures: &str,
    body: &[u8],
    now: i64,
    tolerance_secs: i64,
) -> Result<(), Refusal> {
    if id.is_empty() || timestamp.is_empty() || signatures.is_empty() {
        return Err(Refusal::Missing);
    }
    let at: i64 = timestamp.trim().parse().map_err(|_| Refusal::Stale)?;
    if now.abs_diff(at) > tolerance_secs.unsigned_abs() {
        return Err(Refusal::Stale);
    }
    let key = key(secret).map_err(|_| Refusal::Mismatch)?;
    let mut message = format!("{id}.{at}.").into_bytes();
    message.extend_from_slice(body);
    let matches = signatures
        .split_whitespace()
        .filter_map(|s| s.strip_prefix("v1,"))
        .filter_map(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
        .any(|tag| ring::hmac::verify(&key, &message, &tag).is_ok());
    if matches {
        Ok(())
    } else {
        Err(Refusal::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const BODY: &str = r#"{"test": 2432232314}"#;
    const EXAMPLE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    /// The Standard Webhooks specification's published example: this secret, id, timestamp and
    /// body give this signature.
    #[test]
    fn the_signature_matches_the_standard_webhooks_example() {
        assert_eq!(sign(SECRET, ID, 1614265330, BODY).unwrap(), EXAMPLE);
    }

    #[test]
    fn the_published_example_verifies_and_any_change_is_refused() {
        let now = 1614265330 + 60;
        let ok = |sig: &str, body: &str, ts: &str| {
            verify(SECRET, ID, ts, sig, body.as_bytes(), now, 300)
        };
        assert_eq!(ok(EXAMPLE, BODY, "1614265330"), Ok(()));
        assert_eq!(
            ok(&format!("v1,bm9wZQ== {EXAMPLE}"), BODY, "1614265330"),
            Ok(()),
            "one of several signatures (key rotation) is enough"
        );
        assert_eq!(
            ok(EXAMPLE, r#"{"test": 1}"#, "1614265330"),
            Err(Refusal::Mismatch)
        );
        assert_eq!(
            ok(EXAMPLE, BODY, "1614265331"),
            Err(Refusal::Mismatch),
            "the timestamp is signed"
        );
        assert_eq!(
            verify(
                SECRET,
                ID,
                "1614265330",
                EXAMPLE,
                BODY.as_bytes(),
                now + 600,
                300
            ),
            Err(Refusal::Stale),
            "a replay after the tolerance"
        );
        assert_eq!(ok("", BODY, "1614265330"), Err(Refusal::Missing));
        assert_eq!(
            ok(EXAMPLE, BODY, &i64::MIN.to_string()),
            Err(Refusal::Stale),
            "an extreme timestamp is stale, not an overflow"
        );
        let other = new_secret().unwrap();
        assert_eq!(
            verify(&other, ID, "1614265330", EXAMPLE, BODY.as_bytes(), now, 300),
            Err(Refusal::Mismatch)
        );
    }

    #[test]
    fn secrets_are_fresh_and_sign() {
        let a = new_secret().unwrap();
        assert_ne!(a, new_secret().unwrap());
        let sig = sign(&a, "id", 1, "{}").unwrap();
        assert_eq!(verify(&a, "id", "1", &sig, b"{}", 1, 300), Ok(()));
    }
}
