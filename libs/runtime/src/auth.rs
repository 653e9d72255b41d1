//! Who is calling, decided on the server from what cannot be forged:
//! - users: a bearer JWT from a trusted identity provider, verified with the issuer's published keys
//!   (RS256/PS256/ES256 and their longer forms, selected by `kid`), for this service's audience,
//!   within its validity (`exp`, `nbf`, `iat` with a small leeway) and a maximum lifetime; each
//!   issuer asserts only the principal kinds and organizations its configuration allows;
//! - services: the verified client certificate of the mutual-TLS connection (see `conn`), never a
//!   shared secret. A service acting for a user sends the user as `x-careloop-on-behalf-of`;
//!   authorization then decides on the user, and audit records both.
//!
//! Dev mode (off by default) also trusts the published HS256 development key for every kind, so
//! `make run` and the tests work on plaintext loopback. Health and reflection stay unauthenticated.

mod keys;

use crate::config::{AuthSettings, DEV_HS256_SECRET, IssuerSettings};
use crate::conn::PeerInfo;
use crate::error::ApiError;
use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tonic::{Request, Status};
use uuid::Uuid;

pub use keys::KeySource;

/// The metadata key a service uses to name the user it acts for.
pub const ON_BEHALF_OF: &str = "x-careloop-on-behalf-of";

/// The issuer recorded for services known by their certificate.
pub const MTLS_ISSUER: &str = "mtls";

/// Dev tokens live up to this long (the printed token is valid for a working day).
const DEV_MAX_LIFETIME_SECS: u64 = 12 * 3600;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
    pub const ALL: [Self; 5] = [
        Self::Staff,
        Self::Partner,
        Self::Caregiver,
        Self::Payer,
        Self::Service,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Staff => "staff",
            Self::Partner => "partner",
            Self::Caregiver => "caregiver",
            Self::Payer => "payer",
            Self::Service => "service",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == value)
    }
}

/// Who is calling: taken from a validated token or a verified certificate, carried in request
/// extensions. When a service acts for a user, this is the user and `via` names the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub issuer: String,
    pub subject: String,
    pub org_id: Uuid,
    pub roles: Vec<String>,
    pub kind: PrincipalKind,
    /// The CareLoop service that carried this user's call (on-behalf-of), if any.
    pub via: Option<String>,
}

impl Principal {
    /// A CareLoop service acting for itself (a sweeper, a consumer, an access question).
    pub fn service(name: &str) -> Self {
        Self {
            issuer: MTLS_ISSUER.into(),
            subject: name.to_owned(),
            org_id: Uuid::nil(),
            roles: vec![],
            kind: PrincipalKind::Service,
            via: None,
        }
    }
}

/// The claims of a dev token (and the shape `careloop dev-token` prints).
#[derive(Debug, Serialize, Deserialize)]
struct DevClaims {
    sub: String,
    iss: String,
    aud: Vec<String>,
    exp: i64,
    nbf: i64,
    iat: i64,
    org_id: String,
    roles: Vec<String>,
    kind: PrincipalKind,
}

/// The on-behalf-of header's content: the user a service acts for.
#[derive(Debug, Serialize, Deserialize)]
struct OnBehalfOf {
    iss: String,
    sub: String,
    org: Uuid,
    kind: PrincipalKind,
    #[serde(default)]
    roles: Vec<String>,
}

struct DevKey {
    issuer: String,
    signing: EncodingKey,
    verifying: DecodingKey,
}

/// One trusted identity provider, its rules and its current keys.
struct Issuer {
    settings: IssuerSettings,
    kinds: Vec<PrincipalKind>,
    fixed_org: Option<Uuid>,
    allowed_orgs: Vec<Uuid>,
    max_lifetime_secs: u64,
    keys: Arc<KeySource>,
}

pub struct Authenticator {
    audience: String,
    leeway_secs: u64,
    max_lifetime_secs: u64,
    dev: Option<DevKey>,
    issuers: HashMap<String, Issuer>,
    callers: HashSet<String>,
}

/// What is wrong with a token, said without echoing it.
fn refused(reason: &'static str) -> ApiError {
    ApiError::Unauthenticated(reason)
}

const ASYMMETRIC: [Algorithm; 8] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
];

impl Authenticator {
    /// Builds the authenticator for `service` (its audience defaults to `careloop-<service>`),
    /// loading JWKS files at once and fetching remote key sets in the background.
    pub fn new(settings: &AuthSettings, service: &str) -> anyhow::Result<Self> {
        let dev = Self::dev_key(settings)?;
        let mut issuers = HashMap::new();
        for issuer in &settings.issuers {
            if issuer.issuer.is_empty() {
                anyhow::bail!("auth.issuers: an issuer needs its `issuer` value");
            }
            if dev.as_ref().is_some_and(|d| d.issuer == issuer.issuer) {
                anyhow::bail!("auth.issuers: {} is the dev issuer", issuer.issuer);
            }
            if issuer.kinds.is_empty() {
                anyhow::bail!(
                    "auth.issuers: {} may assert no kind; list its kinds",
                    issuer.issuer
                );
            }
            if issuer.kinds.contains(&PrincipalKind::Service) {
                // Services are known by their certificates; no identity provider speaks for them.
                anyhow::bail!(
                    "auth.issuers: {} may not assert kind service",
                    issuer.issuer
                );
            }
            if issuer.kinds.len() > 1 && issuer.kind_claim.is_empty() {
                anyhow::bail!(
                    "auth.issuers: {} asserts several kinds and needs kind_claim",
                    issuer.issuer
                );
            }
            let fixed_org = if issuer.org_id.is_empty() {
                None
            } else {
                Some(Uuid::parse_str(&issuer.org_id).map_err(|_| {
                    anyhow::anyhow!("auth.issuers: {} org_id is not a uuid", issuer.issuer)
                })?)
            };
            if fixed_org.is_none() && issuer.org_claim.is_empty() {
                anyhow::bail!("auth.issuers: {} needs org_id or org_claim", issuer.issuer);
            }
            let allowed_orgs = issuer
                .allowed_orgs
                .iter()
                .map(|o| Uuid::parse_str(o))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| {
                    anyhow::anyhow!(
                        "auth.issuers: {} allowed_orgs holds a non-uuid",
                        issuer.issuer
                    )
                })?;
            let max_lifetime_secs = issuer
                .max_token_lifetime_secs
                .map_or(settings.max_token_lifetime_secs, |own| {
                    own.min(settings.max_token_lifetime_secs)
                });
            let keys = KeySource::start(issuer)?;
            let mut kinds = issuer.kinds.clone();
            kinds.dedup();
            issuers.insert(
                issuer.issuer.clone(),
                Issuer {
                    settings: issuer.clone(),
                    kinds,
                    fixed_org,
                    allowed_orgs,
                    max_lifetime_secs,
                    keys,
                },
            );
        }
        let audience = if settings.audience.is_empty() {
            format!("careloop-{service}")
        } else {
            settings.audience.clone()
        };
        Ok(Self {
            audience,
            leeway_secs: settings.leeway_secs,
            max_lifetime_secs: settings.max_token_lifetime_secs,
            dev,
            issuers,
            callers: settings.callers.iter().cloned().collect(),
        })
    }

    fn dev_key(settings: &AuthSettings) -> anyhow::Result<Option<DevKey>> {
        let configured = settings.hs256_secret.expose();
        if !settings.dev_mode {
            if configured == DEV_HS256_SECRET {
                anyhow::bail!(
                    "auth.hs256_secret is the published development key; it is accepted only with auth.dev_mode = true"
                );
            }
            if !configured.is_empty() {
                anyhow::bail!(
                    "auth.hs256_secret is set but HS256 tokens are accepted only in dev mode; configure auth.issuers"
                );
            }
            return Ok(None);
        }
        let secret = if configured.is_empty() {
            DEV_HS256_SECRET
        } else {
            configured
        };
        if secret.len() < 32 {
            anyhow::bail!("auth.hs256_secret must be at least 32 bytes");
        }
        Ok(Some(DevKey {
            issuer: settings.dev_issuer.clone(),
            signing: EncodingKey::from_secret(secret.as_bytes()),
            verifying: DecodingKey::from_secret(secret.as_bytes()),
        }))
    }

    pub fn audience(&self) -> &str {
        &self.audience
    }

    pub fn dev_mode(&self) -> bool {
        self.dev.is_some()
    }

    /// Whether `service` may call this one.
    pub fn accepts_caller(&self, service: &str) -> bool {
        self.callers.contains(service)
    }

    /// Validates a bearer token into the user it names. The error says what is wrong without
    /// echoing the token.
    pub fn validate(&self, token: &str) -> Result<Principal, ApiError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| refused("malformed bearer token"))?;
        #[derive(Deserialize)]
        struct Unverified {
            iss: Option<String>,
        }
        // Read only to pick the issuer's keys; nothing is trusted before the signature checks.
        let iss = jsonwebtoken::dangerous::insecure_decode_claims::<Unverified>(token)
            .map_err(|_| refused("malformed bearer token"))?
            .iss
            .ok_or(refused("token has no issuer"))?;
        if let Some(dev) = self.dev.as_ref().filter(|d| d.issuer == iss) {
            if header.alg != Algorithm::HS256 {
                return Err(refused("token algorithm not accepted"));
            }
            let claims = self.verify(token, &dev.verifying, Algorithm::HS256, &iss)?;
            return self.dev_principal_from(claims, &iss);
        }
        let issuer = self
            .issuers
            .get(&iss)
            .ok_or(refused("token issuer is not trusted"))?;
        if !ASYMMETRIC.contains(&header.alg) {
            // HS256 and friends: a shared secret is never an identity provider's key here.
            return Err(refused("token algorithm not accepted"));
        }
        let key = issuer.keys.find(header.kid.as_deref(), header.alg)?;
        let claims = self.verify(token, &key, header.alg, &iss)?;
        self.check_lifetime(&claims, issuer.max_lifetime_secs)?;
        issuer.principal_from(&claims, &iss)
    }

    fn verify(
        &self,
        token: &str,
        key: &DecodingKey,
        alg: Algorithm,
        iss: &str,
    ) -> Result<serde_json::Map<String, serde_json::Value>, ApiError> {
        let mut validation = Validation::new(alg);
        validation.set_issuer(&[iss]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = self.leeway_secs;
        let data = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
            token,
            key,
            &validation,
        )
        .map_err(|error| match error.kind() {
            ErrorKind::ExpiredSignature => refused("token expired"),
            ErrorKind::ImmatureSignature => refused("token not yet valid"),
            ErrorKind::InvalidAudience => refused("token audience is not this service"),
            ErrorKind::InvalidIssuer => refused("token issuer is not trusted"),
            ErrorKind::InvalidSignature => refused("invalid token signature"),
            ErrorKind::InvalidAlgorithm => refused("token algorithm not accepted"),
            ErrorKind::MissingRequiredClaim(_) => refused("token lacks a required claim"),
            _ => refused("invalid bearer token"),
        })?;
        Ok(data.claims)
    }

    /// `iat` not in the future and `exp - iat` within the maximum: a ten-year token is refused
    /// even when its issuer signed it.
    fn check_lifetime(
        &self,
        claims: &serde_json::Map<String, serde_json::Value>,
        max_lifetime_secs: u64,
    ) -> Result<(), ApiError> {
        let number = |name: &str| claims.get(name).and_then(serde_json::Value::as_i64);
        let iat = number("iat").ok_or(refused("token lacks a required claim"))?;
        let exp = number("exp").ok_or(refused("token lacks a required claim"))?;
        let now = chrono::Utc::now().timestamp();
        if iat > now.saturating_add(self.leeway_secs as i64) {
            return Err(refused("token issued in the future"));
        }
        if exp.saturating_sub(iat) > max_lifetime_secs as i64 {
            return Err(refused("token lifetime exceeds the maximum"));
        }
        Ok(())
    }

    fn dev_principal_from(
        &self,
        claims: serde_json::Map<String, serde_json::Value>,
        iss: &str,
    ) -> Result<Principal, ApiError> {
        self.check_lifetime(&claims, DEV_MAX_LIFETIME_SECS.max(self.max_lifetime_secs))?;
        let text = |name: &str| claims.get(name).and_then(serde_json::Value::as_str);
        let kind = text("kind")
            .and_then(PrincipalKind::parse)
            .ok_or(refused("token kind is missing or unknown"))?;
        let org_id = text("org_id")
            .and_then(|o| Uuid::parse_str(o).ok())
            .ok_or(refused("token org_id is not a uuid"))?;
        Ok(Principal {
            issuer: iss.to_owned(),
            subject: subject(&claims)?,
            org_id,
            roles: roles(&claims, "roles"),
            kind,
            via: None,
        })
    }

    /// Signs a dev token (dev mode only): the printed dev token, and tests.
    pub fn issue(&self, principal: &Principal, ttl: chrono::Duration) -> anyhow::Result<String> {
        let dev = self
            .dev
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("dev tokens exist only in dev mode"))?;
        let now = chrono::Utc::now().timestamp();
        let claims = DevClaims {
            sub: principal.subject.clone(),
            iss: dev.issuer.clone(),
            aud: dev_audiences(&self.audience),
            exp: now + ttl.num_seconds(),
            nbf: now,
            iat: now,
            org_id: principal.org_id.to_string(),
            roles: principal.roles.clone(),
            kind: principal.kind,
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &dev.signing,
        )?)
    }
}

/// Dev tokens name every CareLoop service's audience, so one printed token works with each service
/// of `make run` (dev mode only; real identity providers issue a token per audience).
fn dev_audiences(own: &str) -> Vec<String> {
    let mut audiences: Vec<String> = SERVICES.iter().map(|s| format!("careloop-{s}")).collect();
    if !audiences.iter().any(|a| a == own) {
        audiences.push(own.to_owned());
    }
    audiences
}

/// The CareLoop services, by workload name.
pub const SERVICES: [&str; 6] = [
    "plans",
    "referrals",
    "prior-auth",
    "notifications",
    "metrics",
    "gateway",
];

fn subject(claims: &serde_json::Map<String, serde_json::Value>) -> Result<String, ApiError> {
    let sub = claims
        .get("sub")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default();
    if sub.is_empty() || sub.len() > 255 {
        return Err(refused("token subject is empty or too long"));
    }
    Ok(sub.to_owned())
}

/// Roles as a JSON array of strings or one space-separated string (both are seen in the wild).
fn roles(claims: &serde_json::Map<String, serde_json::Value>, claim: &str) -> Vec<String> {
    let raw: Vec<String> = match claims.get(claim) {
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        Some(serde_json::Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
        _ => vec![],
    };
    raw.into_iter()
        .filter(|r| !r.is_empty() && r.len() <= 64)
        .take(32)
        .collect()
}

impl Issuer {
    /// Maps verified claims onto a principal under this issuer's rules.
    fn principal_from(
        &self,
        claims: &serde_json::Map<String, serde_json::Value>,
        iss: &str,
    ) -> Result<Principal, ApiError> {
        let text = |name: &str| claims.get(name).and_then(serde_json::Value::as_str);
        let kind = if self.settings.kind_claim.is_empty() {
            self.kinds[0]
        } else {
            text(&self.settings.kind_claim)
                .and_then(PrincipalKind::parse)
                .ok_or(refused("token kind is missing or unknown"))?
        };
        if !self.kinds.contains(&kind) {
            return Err(refused("token issuer may not assert this principal kind"));
        }
        let org_id = match self.fixed_org {
            Some(fixed) => {
                // A partner's IdP speaks for its own organization only, whatever a claim says.
                let claimed = (!self.settings.org_claim.is_empty())
                    .then(|| text(&self.settings.org_claim))
                    .flatten();
                if claimed.is_some_and(|c| Uuid::parse_str(c).ok() != Some(fixed)) {
                    return Err(refused("token issuer may not assert this organization"));
                }
                fixed
            }
            None => {
                let org = text(&self.settings.org_claim)
                    .and_then(|o| Uuid::parse_str(o).ok())
                    .ok_or(refused("token organization is missing or not a uuid"))?;
                if !self.allowed_orgs.is_empty() && !self.allowed_orgs.contains(&org) {
                    return Err(refused("token issuer may not assert this organization"));
                }
                org
            }
        };
        Ok(Principal {
            issuer: iss.to_owned(),
            subject: subject(claims)?,
            org_id,
            roles: roles(claims, &self.settings.roles_claim),
            kind,
            via: None,
        })
    }
}

/// Encodes `user` for the on-behalf-of header of a call a service makes for it.
pub fn on_behalf_of_header(user: &Principal) -> String {
    let value = OnBehalfOf {
        iss: user.issuer.clone(),
        sub: user.subject.clone(),
        org: user.org_id,
        kind: user.kind,
        roles: user.roles.clone(),
    };
    let json = serde_json::to_vec(&value).unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
}

fn decode_on_behalf_of(value: &str, service: &str) -> Result<Principal, ApiError> {
    let bad = || refused("malformed on-behalf-of user");
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(value.trim())
        .map_err(|_| bad())?;
    let user: OnBehalfOf = serde_json::from_slice(&json).map_err(|_| bad())?;
    if user.kind == PrincipalKind::Service {
        // A service cannot launder its own calls through another service's name.
        return Err(refused("on-behalf-of names a user, never a service"));
    }
    if user.sub.is_empty() || user.sub.len() > 255 || user.iss.is_empty() || user.iss.len() > 255 {
        return Err(bad());
    }
    Ok(Principal {
        issuer: user.iss,
        subject: user.sub,
        org_id: user.org,
        roles: user
            .roles
            .into_iter()
            .filter(|r| !r.is_empty() && r.len() <= 64)
            .take(32)
            .collect(),
        kind: user.kind,
        via: Some(service.to_owned()),
    })
}

/// In dev mode, logs a 12-hour dev token so people can call the service right away. Never in
/// production: there is no dev key there.
pub fn announce_dev_token(auth: &Authenticator) -> anyhow::Result<()> {
    if !auth.dev_mode() {
        return Ok(());
    }
    tracing::warn!(
        audience = auth.audience(),
        "dev mode: tokens signed with the published development key are accepted; `careloop dev-token` prints one"
    );
    Ok(())
}

/// The organization the dev token and the demo data belong to (a fixed id so demos are repeatable).
pub const DEV_ORG_ID: Uuid = Uuid::from_u128(0x0192_0000_0000_7000_8000_0000_0000_0001);

/// The principal of the printed dev token: staff at the dev hospital, a care manager who also
/// coordinates prior authorizations (so the demo can type in a payer's answer).
pub fn dev_principal() -> Principal {
    Principal {
        issuer: "careloop-dev".into(),
        subject: "dev-user".into(),
        org_id: DEV_ORG_ID,
        roles: vec!["care_manager".into(), "prior_auth_coordinator".into()],
        kind: PrincipalKind::Staff,
        via: None,
    }
}

/// A tonic interceptor: decides who calls (certificate, token, on-behalf-of) and puts the
/// `Principal` in request extensions.
#[derive(Clone)]
pub struct AuthInterceptor {
    auth: Arc<Authenticator>,
    limiter: Option<Arc<crate::limits::PrincipalLimiter>>,
    metrics: Option<Arc<crate::metrics::Metrics>>,
}

impl AuthInterceptor {
    pub fn new(auth: Arc<Authenticator>) -> Self {
        Self {
            auth,
            limiter: None,
            metrics: None,
        }
    }

    /// Counts refusals by reason (`careloop_auth_refusals_total`).
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Hands every authenticated request the server's per-principal limiter.
    pub fn with_limiter(mut self, limiter: Arc<crate::limits::PrincipalLimiter>) -> Self {
        self.limiter = Some(limiter);
        self
    }

    fn principal_of<T>(&self, request: &Request<T>) -> Result<Principal, ApiError> {
        let metadata = request.metadata();
        let bearer = match metadata.get("authorization") {
            None => None,
            Some(header) => Some(
                header
                    .to_str()
                    .ok()
                    .and_then(|h| {
                        h.strip_prefix("Bearer ")
                            .or_else(|| h.strip_prefix("bearer "))
                    })
                    .map(str::trim)
                    .ok_or(refused("malformed authorization header"))?,
            ),
        };
        let on_behalf_of = metadata
            .get(ON_BEHALF_OF)
            .map(|v| {
                v.to_str()
                    .map_err(|_| refused("malformed on-behalf-of user"))
            })
            .transpose()?;
        let certified = request
            .extensions()
            .get::<PeerInfo>()
            .and_then(|peer| peer.service.clone());
        let (caller, bearer) = match certified {
            Some(service) => (Principal::service(&service), bearer),
            None => {
                let token = bearer.ok_or(refused("missing bearer token"))?;
                (self.auth.validate(token)?, None)
            }
        };
        if caller.kind != PrincipalKind::Service {
            if on_behalf_of.is_some() {
                return Err(refused("on-behalf-of is accepted only from a service"));
            }
            return Ok(caller);
        }
        if !self.auth.accepts_caller(&caller.subject) {
            return Err(ApiError::PermissionDenied("this service may not call here"));
        }
        if let Some(value) = on_behalf_of {
            return decode_on_behalf_of(value, &caller.subject);
        }
        if let Some(token) = bearer {
            // A service forwarding its user's own token: the user, carried by the service.
            let mut user = self.auth.validate(token)?;
            if user.kind == PrincipalKind::Service {
                return Err(refused("a forwarded token must name a user"));
            }
            user.via = Some(caller.subject.clone());
            return Ok(user);
        }
        Ok(caller)
    }
}

impl tonic::service::Interceptor for AuthInterceptor {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let principal = match self.principal_of(&request) {
            Ok(principal) => principal,
            Err(refusal) => {
                if let Some(metrics) = &self.metrics {
                    let reason = match &refusal {
                        ApiError::Unauthenticated(reason) | ApiError::PermissionDenied(reason) => {
                            *reason
                        }
                        _ => "other",
                    };
                    metrics.auth_refusals.with_label_values(&[reason]).inc();
                }
                return Err(refusal.into());
            }
        };
        request.extensions_mut().insert(principal);
        if let Some(limiter) = &self.limiter {
            request.extensions_mut().insert(Arc::clone(limiter));
        }
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
mod tests;
