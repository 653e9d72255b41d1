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

/// An event of `event_type` with a default payload (every field empty), for checks that need the
/// payload's shape; `None` for a type not in the catalogue.
pub fn sample(event_type: &str) -> Option<Event> {
    let entry = super::catalogue::CATALOGUE
        .iter()
        .find(|e| e.event_type == event_type)?;
    let mut envelope = DynamicMessage::new(event_descriptor());
    let field = envelope.descriptor().get_field_by_name(entry.payload)?;
    let Kind::Message(payload) = field.kind() else {
        return None;
    };
    envelope.set_field(&field, Value::Message(DynamicMessage::new(payload)));
    Event::decode(envelope.encode_to_vec().as_slice()).ok()
}

/// A care role's lowercase short name ("rn", "prior_auth_coordinator"), as tokens, rules and event
/// fields spell it; empty for a number that is no role.
pub fn care_role_name(role: i32) -> String {
    careloop_proto::common::v1::CareRole::try_from(role)
        .map(|r| {
            r.as_str_name()
                .trim_start_matches("CARE_ROLE_")
                .to_ascii_lowercase()
        })
        .unwrap_or_default()
}

/// A loop kind's lowercase short name ("referral", "prior_auth"); empty for an unknown number.
pub fn loop_kind_name(kind: i32) -> String {
    careloop_proto::common::v1::LoopKind::try_from(kind)
        .map(|k| {
            k.as_str_name()
                .trim_start_matches("LOOP_KIND_")
                .to_ascii_lowercase()
        })
        .unwrap_or_default()
}

/// Whether every condition equals the event's field of that name.
pub fn matches(
    conditions: &std::collections::HashMap<String, String>,
    fields: &BTreeMap<String, String>,
) -> bool {
    conditions
        .iter()
        .all(|(k, v)| fields.get(k.as_str()).is_some_and(|actual| actual == v))
}

/// Checks a rule's event type and conditions (pathway and routing rules alike): the type must be
/// in the catalogue, at most 20 conditions, each on a field the event has, values short text.
pub fn rule_conditions(
    event_type: &str,
    conditions: &std::collections::HashMap<String, String>,
) -> Result<(String, std::collections::HashMap<String, String>), crate::error::ApiError> {
    use crate::error::ApiError;
    use crate::validate::{self as v, MAX_SHORT};
    let event_type = v::text("event_type", event_type, MAX_SHORT)?;
    if !super::catalogue::CATALOGUE
        .iter()
        .any(|e| e.event_type == event_type)
    {
        return Err(ApiError::invalid(
            "event_type",
            "is not an event in the catalogue (docs/events.md)",
        ));
    }
    if conditions.len() > 20 {
        return Err(ApiError::invalid(
            "conditions",
            "must hold at most 20 conditions",
        ));
    }
    let known = fields_for(&event_type);
    let mut checked = std::collections::HashMap::new();
    for (k, value) in conditions {
        let key = v::text("conditions", k, 64)?;
        if !known.contains(&key) {
            return Err(ApiError::invalid(
                "conditions",
                format!(
                    "{event_type} has no field {key:?} (known: {})",
                    known.join(", ")
                ),
            ));
        }
        checked.insert(key, v::text(&format!("conditions[{k}]"), value, MAX_SHORT)?);
    }
    Ok((event_type, checked))
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
    fn a_sample_event_carries_the_payload_of_its_type() {
        for entry in super::super::catalogue::CATALOGUE {
            let event = sample(entry.event_type).expect("every catalogued type has a sample");
            let payload = event.payload.expect("with its payload");
            assert_eq!(
                super::super::catalogue::event_type(&payload),
                entry.event_type
            );
        }
        assert!(sample("plans.nothing").is_none());
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
