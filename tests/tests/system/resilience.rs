//! What partners see when a service fails or a caller asks too much: the summary still answers with
//! the failing section marked, a service that hangs does not hold the caller past its deadline, and
//! a burst over the rate limit is refused with the time to come back.

use careloop_proto::common::v1::CareRole;
use careloop_proto::gateway::v1::*;
use careloop_proto::plans::v1::*;
use careloop_system_tests::{Gateway, System, Tuning, eventually, key};
use tonic_types::StatusExt;
use uuid::Uuid;

async fn patient(g: &mut Gateway, org: Uuid) -> String {
    g.create_patient(CreatePatientRequest {
        idempotency_key: key(),
        mrn: format!("MRN-{}", &Uuid::now_v7().simple().to_string()[20..]),
        given_name: "Ada".into(),
        family_name: "Lovelace".into(),
        birth_date: "1950-03-04".into(),
        managing_org_id: org.to_string(),
    })
    .await
    .unwrap()
    .into_inner()
    .patient
    .unwrap()
    .id
}

fn section(s: &GetPatientSummaryResponse, which: Section) -> SectionState {
    s.sections
        .iter()
        .find(|x| x.section == which as i32)
        .cloned()
        .unwrap_or_else(|| panic!("no {which:?} section"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_one_service_stopped_the_summary_answers_with_that_section_unavailable() {
    let mut system = System::start().await;
    let org = Uuid::now_v7();
    let mut staff = system.staff(org, "nurse-1", &["rn"]);
    let id = patient(&mut staff, org).await;
    let before = staff
        .get_patient_summary(GetPatientSummaryRequest {
            patient_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        before.sections.iter().all(|s| s.available),
        "{:?}",
        before.sections
    );

    system.stop("prior-auth");
    let after = eventually("the prior-auth section to turn unavailable", || {
        let mut staff = staff.clone();
        let id = id.clone();
        async move {
            let s = staff
                .get_patient_summary(GetPatientSummaryRequest { patient_id: id })
                .await
                .expect("the screen answers whatever one service does")
                .into_inner();
            (!section(&s, Section::PriorAuth).available).then_some(s)
        }
    })
    .await;
    assert_eq!(
        after.patient.as_ref().unwrap().id,
        id,
        "the rest of the screen is there"
    );
    for other in [
        Section::Plan,
        Section::Tasks,
        Section::Referrals,
        Section::Inbox,
    ] {
        assert!(
            section(&after, other).available,
            "{other:?} stays available"
        );
    }
    let reason = section(&after, Section::PriorAuth).reason;
    assert!(
        ["unavailable", "circuit open"].contains(&reason.as_str()),
        "a reason without internals: {reason}"
    );
    // The worklist too answers, naming the missing source.
    let w = staff
        .list_worklist(ListWorklistRequest {
            role: CareRole::Rn as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        w.sections
            .iter()
            .any(|s| s.section == Section::PriorAuth as i32 && !s.available)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_never_answers_does_not_hold_the_caller_past_its_deadline() {
    // prior-auth's address is a listener that accepts connections and never says a word.
    let hole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hole_addr = hole.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = hole.accept().await {
            held.push(socket);
        }
    });
    let system = System::start_tuned(Tuning {
        gateway: Some(Box::new(move |g| {
            g.prior_auth_addr = format!("http://{hole_addr}");
            // A generous margin so a loaded test machine still answers inside the deadline.
            g.deadline_margin_ms = 1_000;
            g.call_timeout_ms = 60_000;
        })),
    })
    .await;
    let org = Uuid::now_v7();
    let mut staff = system.staff(org, "nurse-1", &["rn"]);
    let id = patient(&mut staff, org).await;
    let mut request = tonic::Request::new(GetPatientSummaryRequest {
        patient_id: id.clone(),
    });
    request.set_timeout(std::time::Duration::from_secs(4));
    let summary = staff
        .get_patient_summary(request)
        .await
        .expect("answered within the caller's deadline, not DEADLINE_EXCEEDED")
        .into_inner();
    let prior_auth = section(&summary, Section::PriorAuth);
    assert!(!prior_auth.available);
    assert_eq!(prior_auth.reason, "deadline exceeded");
    assert!(section(&summary, Section::Plan).available);
    assert_eq!(summary.patient.unwrap().id, id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_over_the_rate_limit_is_refused_with_retry_information_and_spares_others() {
    let system = System::start_tuned(Tuning {
        gateway: Some(Box::new(|g| {
            g.principal_burst = 5;
            g.principal_rate_per_sec = 0.01;
        })),
    })
    .await;
    let org = Uuid::now_v7();
    let mut busy = system.staff(org, "busy", &["rn"]);
    let id = patient(&mut busy, org).await; // the first of the five
    let mut admitted = 1;
    let mut refusals = Vec::new();
    for _ in 0..9 {
        match busy
            .get_patient_summary(GetPatientSummaryRequest {
                patient_id: id.clone(),
            })
            .await
        {
            Ok(_) => admitted += 1,
            Err(status) => refusals.push(status),
        }
    }
    assert_eq!(admitted, 5, "the burst admits five calls");
    assert_eq!(refusals.len(), 5);
    for status in &refusals {
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        let details = status.get_error_details();
        let retry = details
            .retry_info()
            .expect("RetryInfo")
            .retry_delay
            .expect("a delay");
        assert!(retry > std::time::Duration::ZERO);
        assert_eq!(details.error_info().unwrap().reason, "RATE_LIMITED");
    }
    // A colleague in the same organization has a bucket of its own.
    let mut colleague = system.staff(org, "colleague", &["rn"]);
    colleague
        .get_patient_summary(GetPatientSummaryRequest {
            patient_id: id.clone(),
        })
        .await
        .expect("another caller is not limited by the busy one");
}
