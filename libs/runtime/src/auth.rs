//! JWT bearer tokens into a `Principal`. Tokens are validated for signature, issuer, audience and
//! expiry; HS256 (a shared key, used in dev mode) and RS256 (an identity provider's public key) are
//! accepted. Health and reflection stay unauthenticated so probes work.

use crate::config::AuthSettings;
use crate::error::ApiError;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tonic::{Request, Status};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    Staff,
    Partner,
    Caregiver,
    Payer,
    /// Another CareLoop service or an internal hospital system.
    Service,
}

impl PrincipalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Staff => "staff",
            Self::Partner => "partner",
            Self::Caregiver => "caregiver",
            Self::Payer => "payer",
            Self::Service => "service",
        }
    }
}

/// Who is calling: taken from a validated token, carried in request extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub subject: String,
    pub org_id: Uuid,
    pub roles: Vec<String>,
    pub kind: PrincipalKind,
}

/// `aud` may be one string or a list (identity providers send either).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub iss: String,
    pub aud: Audience,
    pub exp: i64,
    pub iat: i64,
    pub org_id: String,
    #[serde(default)]
    pub roles: Vec<String>,
    pub kind: PrincipalKind,
}

pub struct Authenticator {
    keys: Vec<(Algorithm, DecodingKey)>,
    signing: EncodingKey,
    issuer: String,
    audience: String,
}

impl Authenticator {
    pub fn from_settings(settings: &AuthSettings) -> anyhow::Result<Self> {
        if !settings.dev_mode && settings.hs256_secret.expose() == crate::config::DEV_HS256_SECRET {
            // The dev key is public: outside dev mode it would let anyone mint a service token.
            anyhow::bail!(
                "auth.hs256_secret is the development key; set a real key or enable auth.dev_mode"
            );
        }
        if settings.hs256_secret.expose().len() < 32 {
            anyhow::bail!("auth.hs256_secret must be at least 32 bytes");
        }
        let secret = settings.hs256_secret.expose().as_bytes();
        let mut keys = vec![(Algorithm::HS256, DecodingKey::from_secret(secret))];
        if !settings.rs256_public_key_pem.trim().is_empty() {
            let key = DecodingKey::from_rsa_pem(settings.rs256_public_key_pem.as_bytes())?;
            keys.push((Algorithm::RS256, key));
        }
        Ok(Self {
            keys,
            signing: EncodingKey::from_secret(secret),
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
        })
    }

    /// Validates a bearer token. The error says what is wrong without echoing the token.
    pub fn validate(&self, token: &str) -> Result<Principal, ApiError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| ApiError::Unauthenticated("malformed bearer token"))?;
        let key = self
            .keys
            .iter()
            .find(|(alg, _)| *alg == header.alg)
            .map(|(_, key)| key)
            .ok_or(ApiError::Unauthenticated("token algorithm not accepted"))?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<Claims>(token, key, &validation)
            .map_err(|_| ApiError::Unauthenticated("invalid or expired bearer token"))?;
        let claims = data.claims;
        let org_id = Uuid::parse_str(&claims.org_id)
            .map_err(|_| ApiError::Unauthenticated("token org_id is not a uuid"))?;
        if claims.sub.is_empty() {
            return Err(ApiError::Unauthenticated("token subject is empty"));
        }
        Ok(Principal {
            subject: claims.sub,
            org_id,
            roles: claims.roles,
            kind: claims.kind,
        })
    }

    /// Signs an HS256 token for `principal`, valid for `ttl`: the dev token, and tests.
    pub fn issue(&self, principal: &Principal, ttl: chrono::Duration) -> anyhow::Result<String> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: principal.subject.clone(),
            iss: self.issuer.clone(),
            aud: Audience::One(self.audience.clone()),
            exp: now + ttl.num_seconds(),
            iat: now,
            org_id: principal.org_id.to_string(),
            roles: principal.roles.clone(),
            kind: principal.kind,
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.signing,
        )?)
    }
}

/// The organization the dev token and the demo data belong to (a fixed id so demos are repeatable).
pub const DEV_ORG_ID: Uuid = Uuid::from_u128(0x0192_0000_0000_7000_8000_0000_0000_0001);

/// The principal of the printed dev token: staff at the dev hospital.
pub fn dev_principal() -> Principal {
    Principal {
        subject: "dev-user".into(),
        org_id: DEV_ORG_ID,
        roles: vec!["care_manager".into()],
        kind: PrincipalKind::Staff,
    }
}

/// In dev mode, logs a 12-hour dev token so people can call the service right away.
pub fn announce_dev_token(settings: &AuthSettings) -> anyhow::Result<()> {
    if !settings.dev_mode {
        return Ok(());
    }
    let token = Authenticator::from_settings(settings)?
        .issue(&dev_principal(), chrono::Duration::hours(12))?;
    tracing::warn!(dev_token = %token, "dev mode: tokens are signed with the development key");
    Ok(())
}

/// A tonic interceptor: validates the bearer token and puts the `Principal` in request extensions.
#[derive(Clone)]
pub struct AuthInterceptor {
    auth: Arc<Authenticator>,
}

impl AuthInterceptor {
    pub fn new(auth: Arc<Authenticator>) -> Self {
        Self { auth }
    }
}

impl tonic::service::Interceptor for AuthInterceptor {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let header = request
            .metadata()
            .get("authorization")
            .ok_or_else(|| Status::from(ApiError::Unauthenticated("missing bearer token")))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .ok_or_else(|| {
                Status::from(ApiError::Unauthenticated("malformed authorization header"))
            })?;
        let principal = self.auth.validate(token.trim())?;
        request.extensions_mut().insert(principal);
        Ok(request)
    }
}

/// The principal the interceptor stored; a missing one is a wiring bug, answered UNAUTHENTICATED.
pub fn principal<T>(request: &Request<T>) -> Result<Principal, ApiError> {
    request
        .extensions()
        .get::<Principal>()
        .cloned()
        .ok_or(ApiError::Unauthenticated("missing bearer token"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    fn authenticator() -> Authenticator {
        Authenticator::from_settings(&Settings::defaults().auth).unwrap()
    }

    #[test]
    fn an_issued_token_validates_back_into_the_same_principal() {
        let auth = authenticator();
        let token = auth
            .issue(&dev_principal(), chrono::Duration::hours(1))
            .unwrap();
        assert_eq!(auth.validate(&token).unwrap(), dev_principal());
    }

    #[test]
    fn an_expired_token_is_refused() {
        let auth = authenticator();
        let token = auth
            .issue(&dev_principal(), chrono::Duration::hours(-2))
            .unwrap();
        assert!(matches!(
            auth.validate(&token),
            Err(ApiError::Unauthenticated(_))
        ));
    }

    #[test]
    fn a_token_signed_with_another_key_is_refused() {
        let mut settings = Settings::defaults().auth;
        settings.hs256_secret =
            crate::secret::Secret::new("another key entirely, long enough to be used");
        let other = Authenticator::from_settings(&settings).unwrap();
        let token = other
            .issue(&dev_principal(), chrono::Duration::hours(1))
            .unwrap();
        assert!(authenticator().validate(&token).is_err());
    }

    #[test]
    fn the_dev_key_is_refused_outside_dev_mode() {
        let mut settings = Settings::defaults().auth;
        settings.dev_mode = false;
        assert!(Authenticator::from_settings(&settings).is_err());
    }

    #[test]
    fn a_token_with_an_audience_list_is_accepted() {
        let auth = authenticator();
        let now = chrono::Utc::now().timestamp();
        let claims = serde_json::json!({
            "sub": "idp-user", "iss": "careloop-dev", "aud": ["other", "careloop"],
            "exp": now + 600, "iat": now, "org_id": DEV_ORG_ID.to_string(), "kind": "staff"
        });
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(crate::config::DEV_HS256_SECRET.as_bytes()),
        )
        .unwrap();
        assert_eq!(auth.validate(&token).unwrap().subject, "idp-user");
    }

    #[test]
    fn a_token_for_another_audience_is_refused() {
        let mut settings = Settings::defaults().auth;
        settings.audience = "someone-else".into();
        let other = Authenticator::from_settings(&settings).unwrap();
        let token = other
            .issue(&dev_principal(), chrono::Duration::hours(1))
            .unwrap();
        assert!(authenticator().validate(&token).is_err());
    }
}
