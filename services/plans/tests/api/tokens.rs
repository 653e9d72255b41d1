//! User tokens from identity providers, against the real service with dev mode off: a hospital IdP
//! whose keys are a JWKS file (staff and caregivers of the organizations it serves, RS256, PS256
//! and ES256) and a partner IdP found by OIDC discovery over HTTP (partners of one organization).
//! Every token that is not exactly right is UNAUTHENTICATED; a rotated key is accepted while old and
//! new overlap and the old one stops working once the IdP withdraws it.

use crate::helpers::{TestApp, spawn_app_with};
use careloop_proto::plans::v1::{CreatePatientRequest, GetPatientRequest};
use careloop_runtime::auth::PrincipalKind;
use careloop_runtime::config::IssuerSettings;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;
use tonic::Code;
use uuid::Uuid;

const HOSPITAL: &str = "https://idp.hospital.test";
const RSA_PEM: &str = include_str!("../fixtures/idp-rsa-test-key.pem");

/// A signing key of an identity provider, with the JWK it publishes.
struct SigningKey {
    kid: String,
    alg: Algorithm,
    key: EncodingKey,
    jwk: Jwk,
}

fn ec_key(kid: &str) -> SigningKey {
    let pair = rcgen::KeyPair::generate().expect("p-256 key");
    let key = EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).expect("ec key");
    signing_key(kid, Algorithm::ES256, key)
}

fn rsa_key(kid: &str, alg: Algorithm) -> SigningKey {
    let key = EncodingKey::from_rsa_pem(RSA_PEM.as_bytes()).expect("rsa key");
    signing_key(kid, alg, key)
}

fn signing_key(kid: &str, alg: Algorithm, key: EncodingKey) -> SigningKey {
    let mut jwk = Jwk::from_encoding_key(&key, alg).expect("jwk");
    jwk.common.key_id = Some(kid.into());
    SigningKey {
        kid: kid.into(),
        alg,
        key,
        jwk,
    }
}

fn jwks(keys: &[&SigningKey]) -> String {
    serde_json::to_string(&JwkSet {
        keys: keys.iter().map(|k| k.jwk.clone()).collect(),
    })
    .unwrap()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Claims of a good staff token of `org` for plans; cases change one thing.
fn claims(iss: &str, org: Uuid) -> Value {
    let now = now();
    json!({
        "iss": iss, "sub": "nurse-7", "aud": "careloop-plans", "iat": now, "nbf": now,
        "exp": now + 600, "org_id": org.to_string(), "kind": "staff", "roles": ["rn"]
    })
}

fn sign(key: &SigningKey, claims: &Value) -> String {
    let mut header = Header::new(key.alg);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, claims, &key.key).unwrap()
}

fn with(mut claims: Value, field: &str, value: Value) -> Value {
    claims[field] = value;
    claims
}

fn without(mut claims: Value, field: &str) -> Value {
    claims.as_object_mut().unwrap().remove(field);
    claims
}

fn unsigned(claims: &Value) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}.",
        b64.encode(br#"{"alg":"none","typ":"JWT"}"#),
        b64.encode(claims.to_string())
    )
}

fn hs256(secret: &[u8], claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

/// A partner's identity provider: its discovery document and JWKS served over HTTP on loopback.
async fn partner_idp(key: &SigningKey) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let discovery = json!({ "issuer": base, "jwks_uri": format!("{base}/keys") }).to_string();
    let keys = jwks(&[key]);
    let app = axum::Router::new()
        .route(
            "/.well-known/openid-configuration",
            axum::routing::get(move || async move { discovery }),
        )
        .route("/keys", axum::routing::get(move || async move { keys }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

fn issuer(issuer: &str) -> IssuerSettings {
    IssuerSettings {
        issuer: issuer.into(),
        discovery: false,
        jwks_url: String::new(),
        jwks_file: String::new(),
        kinds: vec![],
        kind_claim: String::new(),
        org_id: String::new(),
        org_claim: String::new(),
        allowed_orgs: vec![],
        roles_claim: "roles".into(),
        max_token_lifetime_secs: None,
        refresh_secs: 1,
        ca_file: String::new(),
    }
}

struct Idps {
    app: TestApp,
    jwks_file: PathBuf,
    partner: String,
    partner_org: Uuid,
}

async fn spawn_with_idps(hospital_keys: &[&SigningKey], partner_key: &SigningKey) -> Idps {
    let jwks_file =
        std::env::temp_dir().join(format!("careloop-jwks-{}.json", Uuid::new_v4().simple()));
    std::fs::write(&jwks_file, jwks(hospital_keys)).unwrap();
    let partner = partner_idp(partner_key).await;
    let partner_org = Uuid::now_v7();
    let hospital = {
        let mut i = issuer(HOSPITAL);
        i.jwks_file = jwks_file.display().to_string();
        i.kinds = vec![PrincipalKind::Staff, PrincipalKind::Caregiver];
        i.kind_claim = "kind".into();
        i.org_claim = "org_id".into();
        i
    };
    let partner_issuer = {
        let mut i = issuer(&partner);
        i.discovery = true;
        i.kinds = vec![PrincipalKind::Partner];
        i.kind_claim = "kind".into();
        i.org_id = partner_org.to_string();
        i.org_claim = "org_id".into();
        i
    };
    let app = spawn_app_with(move |settings| {
        settings.events.enabled = false;
        settings.auth.dev_mode = false;
        settings.auth.leeway_secs = 5;
        settings.auth.max_token_lifetime_secs = 3600;
        settings.auth.issuers = vec![hospital, partner_issuer];
    })
    .await;
    Idps {
        app,
        jwks_file,
        partner,
        partner_org,
    }
}

/// UNAUTHENTICATED, or the code an authenticated caller gets for an unknown patient (NOT_FOUND).
async fn probe(app: &TestApp, token: &str) -> Code {
    let mut client = app.client_with(Some(token.to_owned()));
    match client
        .get_patient(GetPatientRequest {
            patient_id: Uuid::now_v7().to_string(),
        })
        .await
    {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

/// Waits (bounded) until `token` gets `expected`: key refreshes happen in the background.
async fn eventually(app: &TestApp, token: &str, expected: Code) -> Code {
    let mut last = Code::Unknown;
    for _ in 0..100 {
        last = probe(app, token).await;
        if last == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    last
}

#[tokio::test]
async fn every_flawed_token_is_unauthenticated_and_the_right_ones_pass() {
    let k1 = ec_key("k1");
    let rs = rsa_key("r1", Algorithm::RS256);
    let ps = rsa_key("p1", Algorithm::PS256);
    let k2 = ec_key("k2");
    let partner_key = ec_key("partner-1");
    let idps = spawn_with_idps(&[&k1, &k2, &rs, &ps], &partner_key).await;
    let app = &idps.app;
    let org = app.org_id;
    let good = claims(HOSPITAL, org);
    let partner_good = with(
        with(
            claims(&idps.partner, idps.partner_org),
            "kind",
            json!("partner"),
        ),
        "aud",
        json!(["other-app", "careloop-plans"]),
    );
    let now = now();

    let cases: Vec<(&str, String, Code)> = vec![
        ("staff token signed ES256", sign(&k1, &good), Code::NotFound),
        ("staff token signed RS256", sign(&rs, &good), Code::NotFound),
        ("staff token signed PS256", sign(&ps, &good), Code::NotFound),
        (
            "caregiver token",
            sign(&k1, &with(good.clone(), "kind", json!("caregiver"))),
            Code::NotFound,
        ),
        (
            "partner token found by discovery",
            sign(&partner_key, &partner_good),
            Code::NotFound,
        ),
        (
            "expired",
            sign(
                &k1,
                &with(
                    with(good.clone(), "exp", json!(now - 120)),
                    "iat",
                    json!(now - 600),
                ),
            ),
            Code::Unauthenticated,
        ),
        (
            "not yet valid",
            sign(&k1, &with(good.clone(), "nbf", json!(now + 600))),
            Code::Unauthenticated,
        ),
        (
            "issued in the future",
            sign(&k1, &with(good.clone(), "iat", json!(now + 600))),
            Code::Unauthenticated,
        ),
        (
            "lifetime over the maximum",
            sign(&k1, &with(good.clone(), "exp", json!(now + 86400 * 3650))),
            Code::Unauthenticated,
        ),
        (
            "no iat",
            sign(&k1, &without(good.clone(), "iat")),
            Code::Unauthenticated,
        ),
        (
            "wrong audience",
            sign(&k1, &with(good.clone(), "aud", json!("careloop-referrals"))),
            Code::Unauthenticated,
        ),
        (
            "one audience for every service",
            sign(&k1, &with(good.clone(), "aud", json!("careloop"))),
            Code::Unauthenticated,
        ),
        (
            "unknown issuer",
            sign(
                &k1,
                &with(good.clone(), "iss", json!("https://idp.evil.test")),
            ),
            Code::Unauthenticated,
        ),
        (
            "hospital asserting payer",
            sign(&k1, &with(good.clone(), "kind", json!("payer"))),
            Code::Unauthenticated,
        ),
        (
            "hospital asserting service",
            sign(&k1, &with(good.clone(), "kind", json!("service"))),
            Code::Unauthenticated,
        ),
        (
            "partner asserting staff",
            sign(
                &partner_key,
                &with(partner_good.clone(), "kind", json!("staff")),
            ),
            Code::Unauthenticated,
        ),
        (
            "partner asserting another organization",
            sign(
                &partner_key,
                &with(partner_good.clone(), "org_id", json!(org.to_string())),
            ),
            Code::Unauthenticated,
        ),
        (
            "partner key used for the hospital",
            sign(&partner_key, &good),
            Code::Unauthenticated,
        ),
        ("alg none", unsigned(&good), Code::Unauthenticated),
        (
            "HS256 when only asymmetric keys are trusted",
            hs256(b"a shared secret of at least thirty-two bytes", &good),
            Code::Unauthenticated,
        ),
        (
            "HS256 with the published dev key, dev mode off",
            hs256(
                careloop_runtime::config::DEV_HS256_SECRET.as_bytes(),
                &with(good.clone(), "iss", json!("careloop-dev")),
            ),
            Code::Unauthenticated,
        ),
        (
            "unknown kid",
            sign(&ec_key("k-unknown"), &good),
            Code::Unauthenticated,
        ),
        (
            "RS256 token under the PS256 key's kid",
            sign(&rsa_key("p1", Algorithm::RS256), &good),
            Code::Unauthenticated,
        ),
        (
            "no kid among two EC keys",
            jsonwebtoken::encode(&Header::new(Algorithm::ES256), &good, &k1.key).unwrap(),
            Code::Unauthenticated,
        ),
        (
            "no kid, the one RS256 key",
            jsonwebtoken::encode(&Header::new(Algorithm::RS256), &good, &rs.key).unwrap(),
            Code::NotFound,
        ),
        (
            "not a token",
            "not.a.token".to_owned(),
            Code::Unauthenticated,
        ),
    ];
    // The partner's keys arrive by discovery in the background: wait for the first good token.
    assert_eq!(
        eventually(app, &cases[4].1, Code::NotFound).await,
        Code::NotFound
    );
    let mut wrong = Vec::new();
    for (name, token, expected) in &cases {
        let got = probe(app, token).await;
        if got != *expected {
            wrong.push(format!("{name}: expected {expected:?}, got {got:?}"));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");

    // A write with an IdP token is audited under that issuer.
    let mut client = app.client_with(Some(sign(&k1, &good)));
    client
        .create_patient(CreatePatientRequest {
            idempotency_key: Uuid::now_v7().to_string(),
            mrn: "MRN-IDP-1".into(),
            given_name: "Ada".into(),
            family_name: "Lovelace".into(),
            birth_date: "1950-03-04".into(),
            managing_org_id: org.to_string(),
        })
        .await
        .expect("a staff token from the hospital IdP writes");
    let (issuer, subject): (String, String) = sqlx::query_as(
        "SELECT issuer, subject FROM audit_log WHERE action = 'CreatePatient' AND outcome = 'ok'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!((issuer.as_str(), subject.as_str()), (HOSPITAL, "nurse-7"));
}

#[tokio::test]
async fn a_rotated_key_works_during_the_overlap_and_the_withdrawn_one_stops() {
    let old = ec_key("2026-11");
    let new = ec_key("2026-12");
    let partner_key = ec_key("partner-1");
    let idps = spawn_with_idps(&[&old], &partner_key).await;
    let app = &idps.app;
    let good = claims(HOSPITAL, app.org_id);
    let by_old = sign(&old, &good);
    let by_new = sign(&new, &good);
    assert_eq!(probe(app, &by_old).await, Code::NotFound);
    assert_eq!(
        probe(app, &by_new).await,
        Code::Unauthenticated,
        "not published yet"
    );

    // The IdP publishes the new key beside the old one, then signs with it.
    std::fs::write(&idps.jwks_file, jwks(&[&old, &new])).unwrap();
    assert_eq!(
        eventually(app, &by_new, Code::NotFound).await,
        Code::NotFound
    );
    assert_eq!(
        probe(app, &by_old).await,
        Code::NotFound,
        "the overlap keeps old tokens valid"
    );

    // The old key is withdrawn: tokens it signed stop validating at the next refresh.
    std::fs::write(&idps.jwks_file, jwks(&[&new])).unwrap();
    assert_eq!(
        eventually(app, &by_old, Code::Unauthenticated).await,
        Code::Unauthenticated
    );
    assert_eq!(probe(app, &by_new).await, Code::NotFound);
    let _ = std::fs::remove_file(&idps.jwks_file);
}
