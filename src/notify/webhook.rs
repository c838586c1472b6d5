//! Webhooks as the Standard Webhooks specification has them: a JSON `POST` with `webhook-id` (the
//! same on every retry, so the receiver can drop duplicates), `webhook-timestamp` (seconds) and
//! `webhook-signature` (`v1,` then the base64 HMAC-SHA256 of `id.timestamp.body`). A secret
//! written `whsec_<base64>` is the base64-decoded key, as the specification's libraries take it;
//! any other secret is used as its bytes.

use std::time::Duration;

use base64::Engine as _;
use hmac::{KeyInit, Mac};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// The signing key of a secret.
pub fn key(secret: &str) -> Vec<u8> {
    match secret.strip_prefix("whsec_") {
        Some(encoded) => base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap_or_else(|_| secret.as_bytes().to_vec()),
        None => secret.as_bytes().to_vec(),
    }
}

/// The `webhook-signature` header value.
pub fn signature(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let sum = mac.finalize().into_bytes();
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(sum)
    )
}

pub struct Webhook {
    client: reqwest::Client,
    url: String,
    key: Vec<u8>,
}

/// How one delivery went.
#[derive(Debug)]
pub enum Delivery {
    Accepted,
    /// A status other than 2xx, a timeout, or no connection: to be retried.
    Failed(String),
}

impl Webhook {
    pub fn new(url: &str, secret: &str, timeout: Duration) -> Result<Webhook, String> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Webhook {
            client,
            url: url.to_owned(),
            key: key(secret),
        })
    }

    pub async fn send(&self, id: &str, body: Vec<u8>) -> Delivery {
        let timestamp = chrono::Utc::now().timestamp();
        let signature = signature(&self.key, id, timestamp, &body);
        let sent = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => Delivery::Accepted,
            Ok(r) => Delivery::Failed(format!("answered {}", r.status())),
            Err(e) if e.is_timeout() => Delivery::Failed("timed out".into()),
            Err(e) => Delivery::Failed(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification's reference libraries.
    #[test]
    fn signs_like_the_specification() {
        let key = key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            signature(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }
}
