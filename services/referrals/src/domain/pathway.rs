//! Pathway rules: "when an event of this type with these field values arrives, create an order or a
//! referral of this kind for this role, due in this long". Conditions compare any typed field of any
//! catalogued event (`careloop_runtime::events::fields`), enum values as lowercase names
//! ("hospital", "transport", "approved").

pub use careloop_runtime::events::fields::matches;

#[cfg(test)]
mod tests {
    use super::*;
    use careloop_proto::events::v1::{
        Event, OrderStatusChanged, PriorAuthDecided, TransitionStarted, event::Payload,
    };
    use careloop_proto::plans::v1::CareSetting;
    use careloop_proto::referrals::v1::OrderKind;
    use careloop_runtime::events::fields::{event_fields as fields_of, fields_for};
    use std::collections::{BTreeMap, HashMap};

    fn event_fields(payload: &Payload) -> BTreeMap<String, String> {
        fields_of(&Event {
            payload: Some(payload.clone()),
            ..Default::default()
        })
    }

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
            ("kind", "transport"),
            ("to_status", "confirmed"),
            ("home_health", "true"),
        ]);
        let event = |home_health| {
            Payload::OrderStatusChanged(OrderStatusChanged {
                kind: OrderKind::Transport as i32,
                to_status: careloop_proto::referrals::v1::OrderStatus::Confirmed as i32,
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
        assert!(fields_for("plans.transition.started").contains(&"to_setting".to_owned()));
    }

    #[test]
    fn a_condition_on_an_unknown_field_never_matches() {
        let rule = conditions(&[("colour", "blue")]);
        assert!(!matches(
            &rule,
            &event_fields(&Payload::TransitionStarted(Default::default()))
        ));
    }

    #[test]
    fn an_approved_prior_authorization_is_told_from_a_denied_one() {
        let rule = conditions(&[("decision", "approved")]);
        let decided = |decision: &str| {
            Payload::PriorAuthDecided(PriorAuthDecided {
                decision: decision.into(),
                ..Default::default()
            })
        };
        assert!(matches(&rule, &event_fields(&decided("approved"))));
        assert!(!matches(&rule, &event_fields(&decided("denied"))));
    }
}
