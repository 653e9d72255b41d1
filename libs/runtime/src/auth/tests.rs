use super::*;
use crate::config::Settings;

fn dev_settings() -> AuthSettings {
    let mut settings = Settings::defaults().auth;
    settings.dev_mode = true;
    settings
}

fn authenticator() -> Authenticator {
    Authenticator::new(&dev_settings(), "plans").unwrap()
}

#[test]
fn an_issued_dev_token_validates_back_into_the_same_principal() {
    let auth = authenticator();
    let token = auth
        .issue(&dev_principal(), chrono::Duration::hours(1))
        .unwrap();
    assert_eq!(auth.validate(&token).unwrap(), dev_principal());
}

#[test]
fn dev_mode_is_off_by_default_and_then_no_dev_token_is_accepted() {
    let dev = authenticator();
    let token = dev
        .issue(&dev_principal(), chrono::Duration::hours(1))
        .unwrap();
    let production = Authenticator::new(&Settings::defaults().auth, "plans").unwrap();
    assert!(!production.dev_mode());
    assert!(matches!(
        production.validate(&token),
        Err(ApiError::Unauthenticated("token issuer is not trusted"))
    ));
    assert!(
        production
            .issue(&dev_principal(), chrono::Duration::hours(1))
            .is_err()
    );
}

#[test]
fn the_published_dev_key_is_refused_outside_dev_mode() {
    let mut settings = Settings::defaults().auth;
    settings.hs256_secret = crate::secret::Secret::new(DEV_HS256_SECRET);
    let error = Authenticator::new(&settings, "plans").err().unwrap();
    assert!(error.to_string().contains("published development key"));
}

#[test]
fn any_hs256_key_is_refused_outside_dev_mode() {
    let mut settings = Settings::defaults().auth;
    settings.hs256_secret = crate::secret::Secret::new("a private key that is long enough to use");
    assert!(Authenticator::new(&settings, "plans").is_err());
}

#[test]
fn an_expired_dev_token_is_refused() {
    let auth = authenticator();
    let token = auth
        .issue(&dev_principal(), chrono::Duration::hours(-2))
        .unwrap();
    assert!(matches!(
        auth.validate(&token),
        Err(ApiError::Unauthenticated("token expired"))
    ));
}

#[test]
fn a_dev_token_living_longer_than_a_working_day_is_refused() {
    let auth = authenticator();
    let token = auth
        .issue(&dev_principal(), chrono::Duration::days(3650))
        .unwrap();
    assert!(matches!(
        auth.validate(&token),
        Err(ApiError::Unauthenticated(
            "token lifetime exceeds the maximum"
        ))
    ));
}

#[test]
fn the_default_audience_is_one_per_service() {
    let plans = Authenticator::new(&dev_settings(), "plans").unwrap();
    let referrals = Authenticator::new(&dev_settings(), "referrals").unwrap();
    assert_eq!(plans.audience(), "careloop-plans");
    assert_eq!(referrals.audience(), "careloop-referrals");
}

#[test]
fn an_issuer_may_never_assert_service() {
    let mut settings = Settings::defaults().auth;
    settings.issuers = vec![IssuerSettings {
        issuer: "https://idp.example".into(),
        discovery: false,
        jwks_url: String::new(),
        jwks_file: "/nonexistent".into(),
        kinds: vec![PrincipalKind::Service],
        kind_claim: String::new(),
        org_id: String::new(),
        org_claim: "org_id".into(),
        allowed_orgs: vec![],
        roles_claim: "roles".into(),
        max_token_lifetime_secs: None,
        refresh_secs: 300,
        ca_file: String::new(),
    }];
    let error = Authenticator::new(&settings, "plans").err().unwrap();
    assert!(error.to_string().contains("may not assert kind service"));
}

#[test]
fn on_behalf_of_round_trips_and_never_names_a_service() {
    let user = dev_principal();
    let decoded = decode_on_behalf_of(&on_behalf_of_header(&user), "referrals").unwrap();
    assert_eq!(decoded.subject, user.subject);
    assert_eq!(decoded.org_id, user.org_id);
    assert_eq!(decoded.via.as_deref(), Some("referrals"));
    let laundered = on_behalf_of_header(&Principal::service("plans"));
    assert!(decode_on_behalf_of(&laundered, "referrals").is_err());
    assert!(decode_on_behalf_of("not base64 json", "referrals").is_err());
}

#[test]
fn roles_are_read_from_a_list_or_a_space_separated_string() {
    let list: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(r#"{"roles": ["rn", "pcp"]}"#).unwrap();
    let spaced: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(r#"{"roles": "rn pcp"}"#).unwrap();
    assert_eq!(roles(&list, "roles"), vec!["rn", "pcp"]);
    assert_eq!(roles(&spaced, "roles"), vec!["rn", "pcp"]);
}
