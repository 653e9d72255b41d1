//! SMS through an HTTP provider: a JSON POST `{"to": "+1555...", "text": "..."}` with a bearer
//! token; a 2xx answer is the provider taking it, and its `"id"` (when present) the receipt.

use super::{Notice, Sender};
use futures::future::BoxFuture;

pub struct HttpSms {
    pub url: String,
    pub token: careloop_runtime::secret::Secret,
    pub client: careloop_runtime::http::HttpClient,
}

impl Sender for HttpSms {
    fn send<'a>(&'a self, notice: &'a Notice) -> BoxFuture<'a, anyhow::Result<String>> {
        Box::pin(async move {
            let body = serde_json::json!({ "to": notice.to, "text": notice.body }).to_string();
            let auth = format!("Bearer {}", self.token.expose());
            let answer = self
                .client
                .send(
                    http::Method::POST,
                    &self.url,
                    &[
                        ("content-type", "application/json"),
                        ("authorization", &auth),
                    ],
                    body.into_bytes(),
                )
                .await?;
            if !(200..300).contains(&answer.status) {
                anyhow::bail!("SMS provider answered {}", answer.status);
            }
            let receipt = serde_json::from_slice::<serde_json::Value>(&answer.body)
                .ok()
                .and_then(|v| v.get("id").and_then(|i| i.as_str()).map(str::to_owned))
                .unwrap_or_default();
            Ok(receipt)
        })
    }
}
