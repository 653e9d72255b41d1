//! Optimistic concurrency: two edits from the same version, one wins and one is ABORTED.

use crate::helpers::*;
use careloop_proto::plans::v1::*;

#[tokio::test]
async fn two_concurrent_plan_edits_from_one_version_abort_one_and_lose_nothing() {
    let app = spawn_app().await;
    let mut c = app.client();
    let patient = app.create_patient(&mut c).await;
    let plan = app.create_plan(&mut c, &patient.id).await;
    let edit = |summary: &'static str| {
        let mut c = app.client();
        let req = UpdateCarePlanRequest {
            idempotency_key: key(),
            patient_id: patient.id.clone(),
            expected_version: plan.version,
            content: Some(plan_content(summary)),
        };
        tokio::spawn(async move { c.update_care_plan(req).await })
    };
    let (a, b) = (
        edit("Edit from the nurse"),
        edit("Edit from the pharmacist"),
    );
    let results = [a.await.unwrap(), b.await.unwrap()];
    let winners: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    let losers: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!((winners.len(), losers.len()), (1, 1));
    assert_eq!(losers[0].code(), tonic::Code::Aborted);
    assert!(losers[0].message().contains("current version is 2"));
    let won = winners[0].get_ref().plan.clone().unwrap();
    let stored = c
        .get_care_plan(GetCarePlanRequest {
            patient_id: patient.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .plan
        .unwrap();
    assert_eq!(stored.version, 2);
    assert_eq!(
        stored.content, won.content,
        "the winning edit is what is stored"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM outbox WHERE event_type = 'plans.care_plan.updated'")
            .await,
        1
    );
}

#[tokio::test]
async fn a_stale_version_is_aborted_with_the_current_version() {
    let app = spawn_app().await;
    let mut c = app.client();
    let patient = app.create_patient(&mut c).await;
    let plan = app.create_plan(&mut c, &patient.id).await;
    let update = |v: i64| UpdateCarePlanRequest {
        idempotency_key: key(),
        patient_id: patient.id.clone(),
        expected_version: v,
        content: Some(plan_content("Next")),
    };
    c.update_care_plan(update(plan.version)).await.unwrap();
    let status = c.update_care_plan(update(plan.version)).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Aborted);
    assert_eq!(status.metadata().get("x-current-version").unwrap(), "2");
}
