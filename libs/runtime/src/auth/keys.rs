//! An identity provider's signing keys: a JWKS from a file, a URL, or the `jwks_uri` of its OpenID
//! discovery document, cached and fetched again on a schedule and (at most every 10 s) when a token
//! names a `kid` the cache does not know, so a rotated key is picked up while old and new keys
//! overlap, and a removed key stops validating at the next refresh. Only RSA and EC keys are taken:
//! a symmetric key in a JWKS would let anyone who reads the JWKS sign tokens.

use crate::config::IssuerSettings;
use crate::error::ApiError;
use anyhow::Context as _;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

const FORCED_REFRESH_EVERY: Duration = Duration::from_secs(10);
const RETRY_WHEN_EMPTY: Duration = Duration::from_secs(10);
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_DOCUMENT_BYTES: usize = 1 << 20;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    Rsa,
    Ec,
}

fn family_of(alg: Algorithm) -> Option<Family> {
    match alg {
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512 => Some(Family::Rsa),
        Algorithm::ES256 | Algorithm::ES384 => Some(Family::Ec),
        _ => None,
    }
}

struct Key {
    kid: Option<String>,
    alg: Option<Algorithm>,
    family: Family,
    key: DecodingKey,
}

enum Origin {
    File(PathBuf),
    Url {
        url: String,
        discovery: bool,
        client: crate::http::HttpClient,
    },
}

pub struct KeySource {
    issuer: String,
    origin: Origin,
    refresh_every: Duration,
    keys: RwLock<Vec<Key>>,
    wake: Arc<Notify>,
    last_forced: Mutex<Option<Instant>>,
}

impl KeySource {
    /// Loads a JWKS file at once (a broken file stops the start); a URL is fetched in the
    /// background, so a service starts while its identity provider is briefly unreachable.
    pub fn start(settings: &IssuerSettings) -> anyhow::Result<Arc<Self>> {
        let origin = if !settings.jwks_file.is_empty() {
            Origin::File(PathBuf::from(&settings.jwks_file))
        } else {
            let (url, discovery) = if !settings.jwks_url.is_empty() {
                (settings.jwks_url.clone(), false)
            } else if settings.discovery {
                let base = settings.issuer.trim_end_matches('/');
                (format!("{base}/.well-known/openid-configuration"), true)
            } else {
                anyhow::bail!(
                    "auth.issuers: {} needs jwks_file, jwks_url or discovery = true",
                    settings.issuer
                );
            };
            check_url(&url)?;
            let client = crate::http::HttpClient::with_ca_file(
                &settings.ca_file,
                FETCH_TIMEOUT,
                MAX_DOCUMENT_BYTES,
            )?;
            Origin::Url {
                url,
                discovery,
                client,
            }
        };
        let source = Arc::new(Self {
            issuer: settings.issuer.clone(),
            origin,
            refresh_every: Duration::from_secs(settings.refresh_secs.max(1)),
            keys: RwLock::new(Vec::new()),
            wake: Arc::new(Notify::new()),
            last_forced: Mutex::new(None),
        });
        if let Origin::File(path) = &source.origin {
            let text = std::fs::read(path)
                .with_context(|| format!("failed to read JWKS file {}", path.display()))?;
            source.install(&text)?;
        }
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let weak = Arc::downgrade(&source);
            handle.spawn(async move {
                let mut first = true;
                loop {
                    let Some(source) = weak.upgrade() else { return };
                    if !(first && matches!(source.origin, Origin::File(_))) {
                        source.refresh().await;
                    }
                    first = false;
                    let wait = if source.is_empty() {
                        RETRY_WHEN_EMPTY.min(source.refresh_every)
                    } else {
                        source.refresh_every
                    };
                    let wake = Arc::clone(&source.wake);
                    drop(source);
                    let woken = wake.notified();
                    // Holding only a weak reference while waiting lets a dropped authenticator end this task.
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = woken => {}
                    }
                }
            });
        }
        Ok(source)
    }

    fn is_empty(&self) -> bool {
        self.keys.read().map(|k| k.is_empty()).unwrap_or(true)
    }

    async fn refresh(&self) {
        match self.fetch().await {
            Ok(bytes) => {
                if let Err(error) = self.install(&bytes) {
                    tracing::warn!(issuer = %self.issuer, error = %error, "identity provider keys rejected; keeping the previous ones");
                }
            }
            Err(error) => {
                tracing::warn!(issuer = %self.issuer, error = %error, "identity provider keys could not be fetched; keeping the previous ones");
            }
        }
    }

    async fn fetch(&self) -> anyhow::Result<Vec<u8>> {
        match &self.origin {
            Origin::File(path) => Ok(tokio::fs::read(path).await?),
            Origin::Url {
                url,
                discovery,
                client,
            } => {
                let url = if *discovery {
                    let document: serde_json::Value =
                        serde_json::from_slice(&get(url, client).await?)
                            .context("discovery document is not json")?;
                    let jwks_uri = document
                        .get("jwks_uri")
                        .and_then(serde_json::Value::as_str)
                        .context("discovery document has no jwks_uri")?
                        .to_owned();
                    check_url(&jwks_uri)?;
                    jwks_uri
                } else {
                    url.clone()
                };
                get(&url, client).await
            }
        }
    }

    /// Replaces the cached keys with the usable keys of a JWKS document.
    fn install(&self, document: &[u8]) -> anyhow::Result<()> {
        let set: JwkSet = serde_json::from_slice(document).context("not a JWKS document")?;
        let mut keys = Vec::new();
        for jwk in &set.keys {
            let family = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => Family::Rsa,
                AlgorithmParameters::EllipticCurve(_) => Family::Ec,
                _ => continue,
            };
            if jwk
                .common
                .public_key_use
                .as_ref()
                .is_some_and(|u| *u != jsonwebtoken::jwk::PublicKeyUse::Signature)
            {
                continue;
            }
            let alg = match jwk.common.key_algorithm {
                None => None,
                Some(declared) => match algorithm_of(declared) {
                    Some(alg) if family_of(alg) == Some(family) => Some(alg),
                    _ => continue,
                },
            };
            let Ok(key) = DecodingKey::from_jwk(jwk) else {
                continue;
            };
            keys.push(Key {
                kid: jwk.common.key_id.clone(),
                alg,
                family,
                key,
            });
        }
        if keys.is_empty() {
            anyhow::bail!("the JWKS holds no usable RSA or EC signing key");
        }
        let count = keys.len();
        if let Ok(mut current) = self.keys.write() {
            *current = keys;
        }
        tracing::debug!(issuer = %self.issuer, keys = count, "identity provider keys loaded");
        Ok(())
    }

    /// Asks for a fetch now, at most once per 10 s (a flood of unknown `kid`s cannot hammer the IdP).
    fn request_refresh(&self) {
        let Ok(mut last) = self.last_forced.lock() else {
            return;
        };
        if last.is_some_and(|at| at.elapsed() < FORCED_REFRESH_EVERY) {
            return;
        }
        *last = Some(Instant::now());
        self.wake.notify_one();
    }

    /// The key that verifies a token with this `kid` and algorithm.
    pub(super) fn find(&self, kid: Option<&str>, alg: Algorithm) -> Result<DecodingKey, ApiError> {
        let family =
            family_of(alg).ok_or(ApiError::Unauthenticated("token algorithm not accepted"))?;
        let keys = self
            .keys
            .read()
            .map_err(|_| ApiError::Unauthenticated("identity provider keys unavailable"))?;
        let fits = |k: &&Key| k.family == family && k.alg.is_none_or(|a| a == alg);
        match kid {
            Some(kid) => {
                let Some(key) = keys.iter().find(|k| k.kid.as_deref() == Some(kid)) else {
                    drop(keys);
                    self.request_refresh();
                    return Err(ApiError::Unauthenticated("token signing key is unknown"));
                };
                if !fits(&key) {
                    return Err(ApiError::Unauthenticated("token algorithm not accepted"));
                }
                Ok(key.key.clone())
            }
            None => {
                let mut candidates = keys.iter().filter(fits);
                match (candidates.next(), candidates.next()) {
                    (Some(only), None) => Ok(only.key.clone()),
                    _ => Err(ApiError::Unauthenticated("token has no key id")),
                }
            }
        }
    }
}

fn algorithm_of(declared: KeyAlgorithm) -> Option<Algorithm> {
    Some(match declared {
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        _ => return None,
    })
}

/// Keys come over https; plain http only from this machine (tests, a sidecar).
fn check_url(url: &str) -> anyhow::Result<()> {
    let uri: http::Uri = url.parse().context("invalid key URL")?;
    match uri.scheme_str() {
        Some("https") => Ok(()),
        Some("http") if matches!(uri.host(), Some("127.0.0.1" | "localhost" | "[::1]")) => Ok(()),
        _ => anyhow::bail!("identity provider keys must be fetched over https: {url}"),
    }
}

/// A GET of a small JSON document over HTTP/1.1, TLS for https.
async fn get(url: &str, client: &crate::http::HttpClient) -> anyhow::Result<Vec<u8>> {
    let answer = client
        .send(
            http::Method::GET,
            url,
            &[("accept", "application/json")],
            Vec::new(),
        )
        .await?;
    if !(200..300).contains(&answer.status) {
        anyhow::bail!("answered {}", answer.status);
    }
    Ok(answer.body)
}
