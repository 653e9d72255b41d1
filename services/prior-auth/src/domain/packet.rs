//! What a submission needs. Every missing element is named at once, so the coordinator can fix the
//! packet in one pass instead of one refusal at a time.

/// The request as it stands, for the completeness check.
pub struct Draft<'a> {
    pub has_linked_loop: bool,
    pub payer_id: &'a str,
    pub plan_member_id: &'a str,
    pub service_lines: usize,
    pub diagnosis_codes: usize,
    pub expedited: bool,
    pub urgency_set: bool,
    pub urgency_reason: &'a str,
    pub notes_summary: &'a str,
    pub medications: usize,
    pub prior_treatments: usize,
    pub attachment_refs: usize,
}

/// Each missing element as (field, why).
pub fn missing(d: &Draft<'_>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut need = |cond: bool, field: &str, why: &str| {
        if cond {
            out.push((field.to_owned(), why.to_owned()));
        }
    };
    need(
        !d.has_linked_loop,
        "linked_loop",
        "the order or referral this authorizes is required",
    );
    need(d.payer_id.is_empty(), "payer_id", "is required");
    need(d.plan_member_id.is_empty(), "plan_member_id", "is required");
    need(
        d.service_lines == 0,
        "service_lines",
        "at least one CPT/HCPCS code with a quantity is required",
    );
    need(
        d.diagnosis_codes == 0,
        "diagnosis_codes",
        "at least one ICD-10 code is required",
    );
    need(!d.urgency_set, "urgency", "is required");
    need(
        d.expedited && d.urgency_reason.is_empty(),
        "urgency_reason",
        "an expedited request needs its reason",
    );
    need(
        d.notes_summary.is_empty(),
        "packet.notes_summary",
        "a summary of recent notes is required",
    );
    need(
        d.medications == 0,
        "packet.medications",
        "the current medications are required (write \"none\" if none)",
    );
    need(
        d.prior_treatments == 0,
        "packet.prior_treatments",
        "prior treatments are required",
    );
    need(
        d.attachment_refs == 0,
        "packet.attachment_refs",
        "at least one attachment reference is required",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete() -> Draft<'static> {
        Draft {
            has_linked_loop: true,
            payer_id: "payer-1",
            plan_member_id: "M123",
            service_lines: 1,
            diagnosis_codes: 1,
            expedited: false,
            urgency_set: true,
            urgency_reason: "",
            notes_summary: "summary",
            medications: 1,
            prior_treatments: 1,
            attachment_refs: 1,
        }
    }

    #[test]
    fn a_complete_packet_misses_nothing() {
        assert!(missing(&complete()).is_empty());
    }

    #[test]
    fn an_empty_draft_lists_every_missing_element() {
        let empty = Draft {
            has_linked_loop: false,
            payer_id: "",
            plan_member_id: "",
            service_lines: 0,
            diagnosis_codes: 0,
            expedited: true,
            urgency_set: false,
            urgency_reason: "",
            notes_summary: "",
            medications: 0,
            prior_treatments: 0,
            attachment_refs: 0,
        };
        let fields: Vec<String> = missing(&empty).into_iter().map(|(f, _)| f).collect();
        assert_eq!(
            fields,
            [
                "linked_loop",
                "payer_id",
                "plan_member_id",
                "service_lines",
                "diagnosis_codes",
                "urgency",
                "urgency_reason",
                "packet.notes_summary",
                "packet.medications",
                "packet.prior_treatments",
                "packet.attachment_refs"
            ]
        );
    }

    #[test]
    fn an_expedited_request_needs_its_reason() {
        let d = Draft {
            expedited: true,
            ..complete()
        };
        assert_eq!(
            missing(&d),
            vec![(
                "urgency_reason".to_owned(),
                "an expedited request needs its reason".to_owned()
            )]
        );
    }
}
