//! The typed fields of any catalogued event, by name, for rules that test them (pathway rules
//! today; notification routing next): every scalar, bool and enum field of the event's payload,
//! read through protobuf reflection from the contract itself, so a new event or field needs no code
//! here. Enum values are their lowercase short names (`CARE_SETTING_HOSPITAL` -> "hospital",
//! `AUTH_STATUS_APPROVED` -> "approved"), booleans "true"/"false", numbers in decimal.

use careloop_proto::events::v1::Event;
use prost::Message;
use prost_reflect::{
    DescriptorPool, DynamicMessage, Kind, MessageDescriptor, ReflectMessage, Value,
};
use std::collections::BTreeMap;
use std::sync::OnceLock;

fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(careloop_proto::FILE_DESCRIPTOR_SET)
            .expect("the embedded descriptor set decodes")
    })
}

fn event_descriptor() -> MessageDescriptor {
    pool()
        .get_message_by_name("careloop.events.v1.Event")
        .expect("the Event envelope is in the descriptor set")
}

/// The payload message of an event type ("referrals.order.status_changed"), via the catalogue.
fn payload_descriptor(event_type: &str) -> Option<MessageDescriptor> {
    let entry = super::catalogue::CATALOGUE
        .iter()
        .find(|e| e.event_type == event_type)?;
    let field = event_descriptor().get_field_by_name(entry.payload)?;
    match field.kind() {
        Kind::Message(message) => Some(message),
        _ => None,
    }
}

fn testable(kind: &Kind) -> bool {
    matches!(
        kind,
        Kind::Bool
            | Kind::String
            | Kind::Enum(_)
            | Kind::Int32
            | Kind::Int64
            | Kind::Uint32
            | Kind::Uint64
            | Kind::Sint32
            | Kind::Sint64
    )
}

/// The field names rules may test for an event type; empty for an unknown type.
pub fn fields_for(event_type: &str) -> Vec<String> {
    payload_descriptor(event_type)
        .map(|message| {
            message
                .fields()
                .filter(|f| !f.is_list() && !f.is_map() && testable(&f.kind()))
                .map(|f| f.name().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// "CareSetting" -> "CARE_SETTING_", the prefix buf style gives every value of an enum.
fn enum_prefix(enum_name: &str) -> String {
    let mut out = String::new();
    for (i, c) in enum_name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out.push('_');
    out
}

fn render(kind: &Kind, value: &Value) -> Option<String> {
    Some(match value {
        Value::Bool(b) => b.to_string(),
        Value::I32(n) => n.to_string(),
        Value::I64(n) => n.to_string(),
        Value::U32(n) => n.to_string(),
        Value::U64(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::EnumNumber(n) => {
            let Kind::Enum(e) = kind else { return None };
            let name = e.get_value(*n)?.name().to_owned();
            let prefix = enum_prefix(e.name());
            name.strip_prefix(&prefix).unwrap_or(&name).to_lowercase()
        }
        _ => return None,
    })
}

/// The testable fields of `event`'s payload, by name (default values included, so "false" and
/// "unspecified" can be tested too). An event without a payload gives an empty map.
pub fn event_fields(event: &Event) -> BTreeMap<String, String> {
    let mut fields = BTreeMap::new();
    let Ok(envelope) = DynamicMessage::decode(event_descriptor(), event.encode_to_vec().as_slice())
    else {
        return fields;
    };
    let Some(oneof) = envelope
        .descriptor()
        .oneofs()
        .find(|o| o.name() == "payload")
    else {
        return fields;
    };
    for field in oneof.fields() {
        if !envelope.has_field(&field) {
            continue;
        }
        let value = envelope.get_field(&field);
        let Value::Message(payload) = value.as_ref() else {
            continue;
        };
        for f in payload.descriptor().fields() {
            if f.is_list() || f.is_map() || !testable(&f.kind()) {
                continue;
            }
            if let Some(text) = render(&f.kind(), payload.get_field(&f).as_ref()) {
                fields.insert(f.name().to_owned(), text);
            }
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;
    use careloop_proto::events::v1::{PriorAuthDecided, TransitionStarted, event::Payload};

    #[test]
    fn typed_statuses_read_as_the_lowercase_names_rules_use() {
        use careloop_proto::events::v1::ReferralStatusChanged;
        use careloop_proto::referrals::v1::ReferralStatus;
        let fields = event_fields(&event(Payload::ReferralStatusChanged(
            ReferralStatusChanged {
                from_status: ReferralStatus::Accepted as i32,
                to_status: ReferralStatus::NoteReceived as i32,
                ..Default::default()
            },
        )));
        assert_eq!(
            fields.get("from_status").map(String::as_str),
            Some("accepted")
        );
        assert_eq!(
            fields.get("to_status").map(String::as_str),
            Some("note_received")
        );
    }

    #[test]
    fn an_approved_prior_authorization_can_be_told_from_a_denied_one() {
        let decided = |decision: &str| {
            event_fields(&event(Payload::PriorAuthDecided(PriorAuthDecided {
                decision: decision.into(),
                extended: false,
                ..Default::default()
            })))
        };
        assert_eq!(
            decided("approved").get("decision").map(String::as_str),
            Some("approved")
        );
        assert_eq!(
            decided("denied").get("decision").map(String::as_str),
            Some("denied")
        );
        assert_eq!(
            decided("denied").get("extended").map(String::as_str),
            Some("false")
        );
    }

    fn event(payload: Payload) -> Event {
        Event {
            payload: Some(payload),
            ..Default::default()
        }
    }

    #[test]
    fn enum_fields_read_as_their_lowercase_short_names() {
        let fields = event_fields(&event(Payload::TransitionStarted(TransitionStarted {
            transition_id: "t-1".into(),
            from_setting: careloop_proto::plans::v1::CareSetting::Hospital as i32,
            to_setting: careloop_proto::plans::v1::CareSetting::Home as i32,
            risk_level: careloop_proto::plans::v1::RiskLevel::High as i32,
        })));
        assert_eq!(
            fields.get("from_setting").map(String::as_str),
            Some("hospital")
        );
        assert_eq!(fields.get("to_setting").map(String::as_str), Some("home"));
        assert_eq!(fields.get("risk_level").map(String::as_str), Some("high"));
        assert_eq!(fields.get("transition_id").map(String::as_str), Some("t-1"));
    }

    #[test]
    fn every_catalogued_event_type_names_its_testable_fields() {
        let fields = fields_for("priorauth.request.decided");
        assert!(fields.contains(&"decision".to_owned()), "{fields:?}");
        assert!(fields.contains(&"extended".to_owned()), "{fields:?}");
        assert!(
            !fields.contains(&"decided_at".to_owned()),
            "timestamps are not testable"
        );
        assert!(fields_for("plans.transition.started").contains(&"risk_level".to_owned()));
        assert!(fields_for("no.such.event").is_empty());
        for entry in super::super::catalogue::CATALOGUE {
            // Every catalogued payload resolves to a message in the contract.
            assert!(
                payload_descriptor(entry.event_type).is_some(),
                "{}",
                entry.event_type
            );
        }
    }
}
