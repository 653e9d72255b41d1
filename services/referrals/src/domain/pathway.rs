//! Pathway rules: "when an event of this type with these field values arrives, create an order or a
//! referral of this kind for this role, due in this long". Conditions compare the event's fields,
//! which are exposed by name with enum values as lowercase names ("hospital", "transport").

use careloop_proto::events::v1::event::Payload;
use careloop_proto::plans::v1::{CareSetting, RiskLevel};
use careloop_proto::referrals::v1::OrderKind;
use std::collections::HashMap;

fn short(name: &str, prefix: &str) -> String {
    name.strip_prefix(prefix).unwrap_or(name).to_lowercase()
}

/// The fields of a payload that rules may test. Payloads no rule can use give an empty map.
pub fn event_fields(payload: &Payload) -> HashMap<&'static str, String> {
    let mut f = HashMap::new();
    match payload {
        Payload::TransitionStarted(t) => {
            let setting = |v: i32| {
                CareSetting::try_from(v)
                    .map(|s| short(s.as_str_name(), "CARE_SETTING_"))
                    .unwrap_or_default()
            };
            f.insert("from_setting", setting(t.from_setting));
            f.insert("to_setting", setting(t.to_setting));
            f.insert(
                "risk_level",
                RiskLevel::try_from(t.risk_level)
                    .map(|r| short(r.as_str_name(), "RISK_LEVEL_"))
                    .unwrap_or_default(),
            );
        }
        Payload::OrderStatusChanged(o) => {
            f.insert(
                "order_kind",
                OrderKind::try_from(o.kind)
                    .map(|k| short(k.as_str_name(), "ORDER_KIND_"))
                    .unwrap_or_default(),
            );
            f.insert("to_status", o.to_status.clone());
            f.insert("home_health", o.home_health.to_string());
        }
        Payload::ReferralStatusChanged(r) => {
            f.insert("to_status", r.to_status.clone());
        }
        _ => {}
    }
    f
}

/// The fields rules may test for an event type (empty: rules on it can only be unconditional).
pub fn fields_for(event_type: &str) -> &'static [&'static str] {
    match event_type {
        "plans.transition.started" => &["from_setting", "to_setting", "risk_level"],
        "referrals.order.status_changed" => &["order_kind", "to_status", "home_health"],
        "referrals.referral.status_changed" => &["to_status"],
        _ => &[],
    }
}

/// Whether every condition equals the event's field of that name.
pub fn matches(
    conditions: &HashMap<String, String>,
    fields: &HashMap<&'static str, String>,
) -> bool {
    conditions
        .iter()
        .all(|(k, v)| fields.get(k.as_str()).is_some_and(|actual| actual == v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use careloop_proto::events::v1::{OrderStatusChanged, TransitionStarted};

    fn conditions(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_hospital_to_home_transition_matches_the_discharge_rule_and_others_do_not() {
        let rule = conditions(&[("from_setting", "hospital"), ("to_setting", "home")]);
        let home = Payload::TransitionStarted(TransitionStarted {
            from_setting: CareSetting::Hospital as i32,
            to_setting: CareSetting::Home as i32,
            ..Default::default()
        });
        let rehab = Payload::TransitionStarted(TransitionStarted {
            from_setting: CareSetting::Hospital as i32,
            to_setting: CareSetting::Rehabilitation as i32,
            ..Default::default()
        });
        assert!(matches(&rule, &event_fields(&home)));
        assert!(!matches(&rule, &event_fields(&rehab)));
    }

    #[test]
    fn a_confirmed_transport_with_home_health_matches_the_home_health_rule() {
        let rule = conditions(&[
            ("order_kind", "transport"),
            ("to_status", "confirmed"),
            ("home_health", "true"),
        ]);
        let event = |home_health| {
            Payload::OrderStatusChanged(OrderStatusChanged {
                kind: OrderKind::Transport as i32,
                to_status: "confirmed".into(),
                home_health,
                ..Default::default()
            })
        };
        assert!(matches(&rule, &event_fields(&event(true))));
        assert!(!matches(&rule, &event_fields(&event(false))));
    }

    #[test]
    fn a_rule_without_conditions_matches_any_event_of_its_type() {
        let none = HashMap::new();
        assert!(matches(
            &none,
            &event_fields(&Payload::TransitionCompleted(Default::default()))
        ));
        assert!(fields_for("plans.transition.completed").is_empty());
        assert!(fields_for("plans.transition.started").contains(&"to_setting"));
    }

    #[test]
    fn a_condition_on_an_unknown_field_never_matches() {
        let rule = conditions(&[("colour", "blue")]);
        assert!(!matches(
            &rule,
            &event_fields(&Payload::TransitionStarted(Default::default()))
        ));
    }
}
