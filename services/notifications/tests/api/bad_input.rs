//! Every RPC refuses malformed input with INVALID_ARGUMENT naming the field, and writes nothing.

use crate::helpers::*;
use careloop_proto::common::v1::CareRole;
use careloop_proto::notifications::v1::*;
use careloop_runtime::auth::PrincipalKind;
use careloop_testkit::refused;
use uuid::Uuid;

fn rung(target: role_target::Target, window_minutes: i32) -> Rung {
    Rung {
        target: Some(RoleTarget {
            target: Some(target),
        }),
        window_minutes,
    }
}

#[tokio::test]
async fn every_rpc_names_the_bad_field_and_writes_nothing() {
    let _cases = careloop_testkit::cases::CaseReport;
    let app = spawn_app().await;
    let mut admin = app.admin();
    let before = app.footprint().await;

    let good = CreateRoutingRuleRequest {
        idempotency_key: key(),
        name: "Overdue task".into(),
        event_type: "plans.loop.overdue".into(),
        conditions: Default::default(),
        ladder: vec![rung(
            role_target::Target::EventField("owner_role".into()),
            60,
        )],
        priority: NotificationPriority::Urgent as i32,
        channels: vec![],
        also: vec![],
    };
    let with = |f: &dyn Fn(&mut CreateRoutingRuleRequest)| {
        let mut r = good.clone();
        f(&mut r);
        r
    };
    refused!(
        admin.create_routing_rule(with(&|r| r.idempotency_key.clear())),
        "idempotency_key"
    );
    refused!(admin.create_routing_rule(with(&|r| r.name.clear())), "name");
    refused!(
        admin.create_routing_rule(with(&|r| r.event_type = "plans.nothing".into())),
        "event_type"
    );
    refused!(
        admin.create_routing_rule(with(&|r| r.event_type = "plans.patient.created".into())),
        "event_type"
    );
    refused!(
        admin.create_routing_rule(with(&|r| {
            r.conditions.insert("colour".into(), "red".into());
        })),
        "conditions"
    );
    refused!(
        admin.create_routing_rule(with(&|r| r.ladder.clear())),
        "ladder"
    );
    refused!(
        admin.create_routing_rule(with(&|r| r.ladder = vec![good.ladder[0].clone(); 11])),
        "ladder"
    );
    refused!(
        admin.create_routing_rule(with(&|r| r.ladder[0].window_minutes = 0)),
        "ladder[0].window_minutes"
    );
    refused!(
        admin.create_routing_rule(with(&|r| r.ladder[0].window_minutes = 20_000)),
        "ladder[0].window_minutes"
    );
    refused!(
        admin.create_routing_rule(with(&|r| r.ladder[0].target = None)),
        "ladder[0].target"
    );
    refused!(
        admin.create_routing_rule(with(&|r| r
            .ladder
            .push(rung(role_target::Target::EventField("stage".into()), 5)))),
        "ladder[1].target.event_field"
    );
    refused!(
        admin.create_routing_rule(with(&|r| r
            .ladder
            .push(rung(role_target::Target::Role(99), 5)))),
        "ladder[1].target.role"
    );
    refused!(
        admin.create_routing_rule(with(&|r| r
            .ladder
            .push(rung(role_target::Target::Role(0), 5)))),
        "ladder[1].target.role"
    );
    refused!(
        admin.create_routing_rule(with(&|r| r.ladder[0].target = Some(RoleTarget {
            target: Some(role_target::Target::CareTeam(true))
        }))),
        "ladder[0].target"
    );
    refused!(
        admin.create_routing_rule(with(&|r| r.also = vec![RoleTarget { target: None }])),
        "also[0]"
    );
    refused!(
        admin.create_routing_rule(with(&|r| r.also = vec![RoleTarget {
            target: Some(role_target::Target::EventField("stage".into()))
        }])),
        "also[0].event_field"
    );
    refused!(
        admin.create_routing_rule(with(&|r| r.priority = 0)),
        "priority"
    );
    refused!(
        admin.create_routing_rule(with(&|r| r.priority = 42)),
        "priority"
    );
    refused!(
        admin.create_routing_rule(with(&|r| r.channels = vec![0])),
        "channels[0]"
    );
    refused!(
        admin.create_routing_rule(with(&|r| r.channels = vec![1, 17])),
        "channels[1]"
    );

    let rule_id = "01930000-0000-7000-8000-000000000101".to_string();
    refused!(
        admin.set_routing_rule_enabled(SetRoutingRuleEnabledRequest {
            idempotency_key: key(),
            rule_id: "r".into(),
            expected_version: 1,
            enabled: false,
        }),
        "rule_id"
    );
    refused!(
        admin.set_routing_rule_enabled(SetRoutingRuleEnabledRequest {
            idempotency_key: key(),
            rule_id: rule_id.clone(),
            expected_version: 0,
            enabled: false,
        }),
        "expected_version"
    );
    refused!(
        admin.set_routing_rule_enabled(SetRoutingRuleEnabledRequest {
            idempotency_key: String::new(),
            rule_id: rule_id.clone(),
            expected_version: 1,
            enabled: false,
        }),
        "idempotency_key"
    );

    let mut pcp = app.staff("pcp");
    let list = ListInboxRequest {
        role: CareRole::Pcp as i32,
        ..Default::default()
    };
    refused!(
        pcp.list_inbox(ListInboxRequest {
            role: 0,
            ..list.clone()
        }),
        "role"
    );
    refused!(
        pcp.list_inbox(ListInboxRequest {
            role: 99,
            ..list.clone()
        }),
        "role"
    );
    refused!(
        pcp.list_inbox(ListInboxRequest {
            mine: true,
            ..list.clone()
        }),
        "role"
    );
    refused!(
        pcp.list_inbox(ListInboxRequest {
            page_size: -1,
            ..list.clone()
        }),
        "page_size"
    );
    refused!(
        pcp.list_inbox(ListInboxRequest {
            page_token: "not a token".into(),
            ..list.clone()
        }),
        "page_token"
    );
    refused!(
        pcp.list_inbox(ListInboxRequest {
            org_id: "o".into(),
            ..list.clone()
        }),
        "org_id"
    );
    let mut service = app.client_as(PrincipalKind::Service, Uuid::now_v7(), "gateway", &[]);
    refused!(service.list_inbox(list.clone()), "org_id");
    refused!(
        pcp.get_item(GetItemRequest {
            item_id: "i".into()
        }),
        "item_id"
    );
    let ack = AcknowledgeItemRequest {
        idempotency_key: key(),
        item_id: Uuid::now_v7().to_string(),
        expected_version: 1,
        note: "on it".into(),
    };
    refused!(
        pcp.acknowledge_item(AcknowledgeItemRequest {
            item_id: "i".into(),
            ..ack.clone()
        }),
        "item_id"
    );
    refused!(
        pcp.acknowledge_item(AcknowledgeItemRequest {
            expected_version: -3,
            ..ack.clone()
        }),
        "expected_version"
    );
    refused!(
        pcp.acknowledge_item(AcknowledgeItemRequest {
            note: String::new(),
            ..ack.clone()
        }),
        "note"
    );
    refused!(
        pcp.acknowledge_item(AcknowledgeItemRequest {
            note: "x".repeat(5000),
            ..ack.clone()
        }),
        "note"
    );
    refused!(
        pcp.acknowledge_item(AcknowledgeItemRequest {
            idempotency_key: String::new(),
            ..ack.clone()
        }),
        "idempotency_key"
    );
    let watch = WatchInboxRequest {
        role: CareRole::Pcp as i32,
        ..Default::default()
    };
    refused!(
        pcp.watch_inbox(WatchInboxRequest {
            role: 0,
            ..watch.clone()
        }),
        "role"
    );
    refused!(
        pcp.watch_inbox(WatchInboxRequest {
            cursor: "yesterday".into(),
            ..watch.clone()
        }),
        "cursor"
    );
    refused!(
        pcp.watch_inbox(WatchInboxRequest {
            cursor: "-4".into(),
            ..watch.clone()
        }),
        "cursor"
    );
    refused!(service.watch_inbox(watch.clone()), "org_id");

    let endpoint = CreateWebhookEndpointRequest {
        idempotency_key: key(),
        url: "https://partner.example/hook".into(),
        event_types: vec![],
        org_id: String::new(),
    };
    refused!(
        admin.create_webhook_endpoint(CreateWebhookEndpointRequest {
            url: "ftp://partner.example/hook".into(),
            ..endpoint.clone()
        }),
        "url"
    );
    refused!(
        admin.create_webhook_endpoint(CreateWebhookEndpointRequest {
            url: "not a url at all".into(),
            ..endpoint.clone()
        }),
        "url"
    );
    refused!(
        admin.create_webhook_endpoint(CreateWebhookEndpointRequest {
            url: String::new(),
            ..endpoint.clone()
        }),
        "url"
    );
    refused!(
        admin.create_webhook_endpoint(CreateWebhookEndpointRequest {
            event_types: vec!["plans.task.created".into()],
            ..endpoint.clone()
        }),
        "event_types[0]"
    );
    refused!(
        admin.create_webhook_endpoint(CreateWebhookEndpointRequest {
            idempotency_key: String::new(),
            ..endpoint.clone()
        }),
        "idempotency_key"
    );
    refused!(service.create_webhook_endpoint(endpoint.clone()), "org_id");
    refused!(
        admin.list_webhook_endpoints(ListWebhookEndpointsRequest { org_id: "o".into() }),
        "org_id"
    );
    refused!(
        admin.set_webhook_endpoint_enabled(SetWebhookEndpointEnabledRequest {
            idempotency_key: key(),
            endpoint_id: "e".into(),
            expected_version: 1,
            enabled: true,
        }),
        "endpoint_id"
    );
    refused!(
        admin.list_webhook_deliveries(ListWebhookDeliveriesRequest {
            endpoint_id: "e".into(),
            ..Default::default()
        }),
        "endpoint_id"
    );
    refused!(
        admin.list_webhook_deliveries(ListWebhookDeliveriesRequest {
            endpoint_id: Uuid::now_v7().to_string(),
            page_size: -2,
            ..Default::default()
        }),
        "page_size"
    );
    refused!(
        admin.resend_webhook_delivery(ResendWebhookDeliveryRequest {
            idempotency_key: key(),
            delivery_id: "d".into(),
        }),
        "delivery_id"
    );

    let roster = SetRosterRequest {
        idempotency_key: key(),
        org_id: String::new(),
        role: CareRole::Rn as i32,
        time_zone: "America/New_York".into(),
        members: vec![RosterMember {
            subject: "rn-1".into(),
            shifts: vec![Shift {
                weekdays: vec![1, 2, 3],
                start: "07:00".into(),
                end: "19:00".into(),
            }],
            email: "rn-1@hospital.example".into(),
            phone: "+15551230000".into(),
        }],
        backup_role: 0,
        expected_version: 0,
    };
    let with_roster = |f: &dyn Fn(&mut SetRosterRequest)| {
        let mut r = roster.clone();
        f(&mut r);
        r
    };
    refused!(admin.set_roster(with_roster(&|r| r.role = 0)), "role");
    refused!(
        admin.set_roster(with_roster(&|r| r.time_zone = "Mars/Olympus".into())),
        "time_zone"
    );
    refused!(
        admin.set_roster(with_roster(&|r| r.members[0].subject.clear())),
        "members[0].subject"
    );
    refused!(
        admin.set_roster(with_roster(&|r| r.members[0].shifts[0].weekdays = vec![8])),
        "members[0].shifts[0].weekdays"
    );
    refused!(
        admin.set_roster(with_roster(&|r| r.members[0].shifts[0].weekdays.clear())),
        "members[0].shifts[0].weekdays"
    );
    refused!(
        admin.set_roster(with_roster(&|r| r.members[0].shifts[0].start = "7am".into())),
        "members[0].shifts[0].start"
    );
    refused!(
        admin.set_roster(with_roster(&|r| r.members[0].shifts[0].end = "25:00".into())),
        "members[0].shifts[0].end"
    );
    refused!(
        admin.set_roster(with_roster(
            &|r| r.members[0].email = "rn at hospital".into()
        )),
        "members[0].email"
    );
    refused!(
        admin.set_roster(with_roster(
            &|r| r.members[0].email = "rn@hospital.example\r\nBcc: x@y.z".into()
        )),
        "members[0].email"
    );
    refused!(
        admin.set_roster(with_roster(&|r| r.members[0].phone = "555-1234".into())),
        "members[0].phone"
    );
    refused!(
        admin.set_roster(with_roster(&|r| r.backup_role = CareRole::Rn as i32)),
        "backup_role"
    );
    refused!(
        admin.set_roster(with_roster(&|r| r.backup_role = 99)),
        "backup_role"
    );
    refused!(
        admin.set_roster(with_roster(&|r| r.expected_version = -1)),
        "expected_version"
    );
    refused!(
        admin.set_roster(with_roster(&|r| r.idempotency_key.clear())),
        "idempotency_key"
    );
    refused!(service.set_roster(roster.clone()), "org_id");
    refused!(
        pcp.get_roster(GetRosterRequest {
            org_id: String::new(),
            role: 0
        }),
        "role"
    );

    let digest = GetShiftDigestRequest {
        role: CareRole::Pcp as i32,
        org_id: String::new(),
        from: in_hours(-8),
        to: in_hours(0),
    };
    refused!(
        pcp.get_shift_digest(GetShiftDigestRequest {
            role: 0,
            ..digest.clone()
        }),
        "role"
    );
    refused!(
        pcp.get_shift_digest(GetShiftDigestRequest {
            from: None,
            ..digest.clone()
        }),
        "from"
    );
    refused!(
        pcp.get_shift_digest(GetShiftDigestRequest {
            to: in_hours(-9),
            ..digest.clone()
        }),
        "to"
    );
    refused!(
        pcp.get_shift_digest(GetShiftDigestRequest {
            to: in_hours(24 * 8),
            ..digest.clone()
        }),
        "to"
    );

    let report = RecordDeliveryReportRequest {
        idempotency_key: key(),
        channel: "sms".into(),
        provider_message_id: "sms-1".into(),
        outcome: ReportedOutcome::Delivered as i32,
    };
    refused!(
        service.record_delivery_report(RecordDeliveryReportRequest {
            channel: "fax".into(),
            ..report.clone()
        }),
        "channel"
    );
    refused!(
        service.record_delivery_report(RecordDeliveryReportRequest {
            provider_message_id: String::new(),
            ..report.clone()
        }),
        "provider_message_id"
    );
    refused!(
        service.record_delivery_report(RecordDeliveryReportRequest {
            outcome: 0,
            ..report.clone()
        }),
        "outcome"
    );
    refused!(
        service.record_delivery_report(RecordDeliveryReportRequest {
            idempotency_key: String::new(),
            ..report.clone()
        }),
        "idempotency_key"
    );

    assert_eq!(app.footprint().await, before, "nothing was written");
}
