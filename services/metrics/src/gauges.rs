//! The headline measures as Prometheus gauges, for dashboards: refreshed every interval for each
//! organization with kept events in the last 30 days; coordination measures over the last 7 days,
//! prior-authorization figures over the last 30. Labels: `org_id`, and a role, urgency, payer, loop
//! kind or age bucket where the measure has one: low cardinality by construction.

use crate::domain::priorauth;
use prometheus::{GaugeVec, Opts};
use sqlx::PgPool;
use uuid::Uuid;

pub struct Gauges {
    closure: GaugeVec,
    completion: GaugeVec,
    follow_through: GaugeVec,
    orphaned: GaugeVec,
    handoff: GaugeVec,
    response_median: GaugeVec,
    response_p90: GaugeVec,
    open_loops: GaugeVec,
    priorauth_approved: GaugeVec,
    priorauth_median: GaugeVec,
    payer_decisions: GaugeVec,
}

fn gauge(name: &str, help: &str, labels: &[&str]) -> GaugeVec {
    GaugeVec::new(Opts::new(name, help), labels).expect("static metric")
}

impl Gauges {
    pub fn new(
        metrics: &careloop_runtime::metrics::Metrics,
    ) -> anyhow::Result<std::sync::Arc<Self>> {
        let g = Self {
            closure: gauge(
                "careloop_measure_referral_closure_percent",
                "referrals placed in the last 7 days closed within 30 days, percent",
                &["org_id"],
            ),
            completion: gauge(
                "careloop_measure_referral_completion_percent",
                "referrals placed in the last 7 days the patient was seen for, percent",
                &["org_id"],
            ),
            follow_through: gauge(
                "careloop_measure_result_follow_through_median_hours",
                "abnormal results routed in the last 7 days: median hours to acknowledgement",
                &["org_id"],
            ),
            orphaned: gauge(
                "careloop_measure_orphaned_abnormal_results",
                "abnormal results routed in the last 7 days, unacknowledged and past due",
                &["org_id"],
            ),
            handoff: gauge(
                "careloop_measure_handoff_acknowledgement_median_hours",
                "handoffs sent in the last 7 days: median hours to acknowledgement",
                &["org_id"],
            ),
            response_median: gauge(
                "careloop_measure_response_median_hours",
                "inbox items raised in the last 7 days: median hours to acknowledgement, by role",
                &["org_id", "role"],
            ),
            response_p90: gauge(
                "careloop_measure_response_p90_hours",
                "inbox items raised in the last 7 days: p90 hours to acknowledgement, by role",
                &["org_id", "role"],
            ),
            open_loops: gauge(
                "careloop_measure_open_loops",
                "loops open now, by kind and age bucket",
                &["org_id", "loop_kind", "age"],
            ),
            priorauth_approved: gauge(
                "careloop_measure_priorauth_approved_percent",
                "prior authorizations decided in the last 30 days: approved percent, by urgency",
                &["org_id", "urgency"],
            ),
            priorauth_median: gauge(
                "careloop_measure_priorauth_median_hours",
                "prior authorizations decided in the last 30 days: median hours from submission, by urgency",
                &["org_id", "urgency"],
            ),
            payer_decisions: gauge(
                "careloop_measure_payer_decisions",
                "prior-auth decisions in the last 30 days against CareLoop's deadlines, by payer and outcome",
                &["org_id", "payer", "outcome"],
            ),
        };
        for c in [
            &g.closure,
            &g.completion,
            &g.follow_through,
            &g.orphaned,
            &g.handoff,
            &g.response_median,
            &g.response_p90,
            &g.open_loops,
            &g.priorauth_approved,
            &g.priorauth_median,
            &g.payer_decisions,
        ] {
            metrics.register(Box::new(c.clone()))?;
        }
        Ok(std::sync::Arc::new(g))
    }

    /// Recomputes every gauge; returns how many organizations were measured.
    pub async fn refresh(&self, pool: &PgPool) -> anyhow::Result<usize> {
        let now = careloop_runtime::time::now();
        let orgs: Vec<Uuid> = sqlx::query_scalar(
            "SELECT DISTINCT org_id FROM loop_events WHERE org_id IS NOT NULL AND occurred_at > $1",
        )
        .bind(now - chrono::Duration::days(30))
        .fetch_all(pool)
        .await?;
        // Every refresh starts empty: an organization that left the window leaves the gauges, and a
        // figure with nothing to measure is absent rather than a misleading zero.
        for g in [
            &self.closure,
            &self.completion,
            &self.follow_through,
            &self.orphaned,
            &self.handoff,
            &self.response_median,
            &self.response_p90,
            &self.open_loops,
            &self.priorauth_approved,
            &self.priorauth_median,
            &self.payer_decisions,
        ] {
            g.reset();
        }
        for org in &orgs {
            let o = org.to_string();
            let m = crate::api::coordination(pool, *org, now - chrono::Duration::days(7), now, 30)
                .await?;
            if m.referrals_placed > 0 {
                self.closure
                    .with_label_values(&[&o])
                    .set(m.referral_closure_percent);
                self.completion
                    .with_label_values(&[&o])
                    .set(m.referral_completion_percent);
            }
            if let Some(h) = m.result_follow_through_median_hours {
                self.follow_through.with_label_values(&[&o]).set(h);
            }
            self.orphaned
                .with_label_values(&[&o])
                .set(m.orphaned_abnormal_results as f64);
            if let Some(h) = m.handoff_acknowledgement_median_hours {
                self.handoff.with_label_values(&[&o]).set(h);
            }
            for r in &m.response_by_role {
                if let (Some(median), Some(p90)) = (r.median_hours, r.p90_hours) {
                    self.response_median
                        .with_label_values(&[&o, &r.role])
                        .set(median);
                    self.response_p90.with_label_values(&[&o, &r.role]).set(p90);
                }
            }
            for l in &m.open_loops {
                self.open_loops
                    .with_label_values(&[&o, &l.loop_kind, &l.age])
                    .add(l.count as f64);
            }
            let from = now - chrono::Duration::days(30);
            let decisions = crate::api::decisions(pool, *org, from, now).await?;
            let report = priorauth::report(&decisions, from, now, None);
            for (urgency, f) in [
                ("standard", &report.standard),
                ("expedited", &report.expedited),
            ] {
                if f.decided == 0 {
                    continue;
                }
                self.priorauth_approved
                    .with_label_values(&[&o, urgency])
                    .set(f.approved_percent);
                if let Some(h) = f.median_hours {
                    self.priorauth_median
                        .with_label_values(&[&o, urgency])
                        .set(h);
                }
            }
            for c in priorauth::payer_clocks(&decisions, from, now) {
                self.payer_decisions
                    .with_label_values(&[&o, &c.payer, "on_time"])
                    .set(c.on_time as f64);
                self.payer_decisions
                    .with_label_values(&[&o, &c.payer, "late"])
                    .set(c.late as f64);
                self.payer_decisions
                    .with_label_values(&[&o, &c.payer, "extended"])
                    .set(c.extended as f64);
            }
        }
        Ok(orgs.len())
    }
}
