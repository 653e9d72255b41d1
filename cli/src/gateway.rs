//! `careloop summary` and `careloop worklist`: the gateway's composed views, as one readable screen
//! and an aligned table (local times), or JSON with `--output json`.

use crate::client::{Gateway, role};
use crate::output::{Format, emit, format, grid, local_time, render_one};
use careloop_proto::gateway::v1::{
    GetPatientSummaryRequest, ListWorklistRequest, Section, SectionState, WorkItem,
};

fn words(value: &str, prefix: &str) -> String {
    value.strip_prefix(prefix).unwrap_or(value).to_lowercase()
}

fn role_word(role: i32) -> String {
    careloop_runtime::events::fields::care_role_name(role)
}

fn kind_word(kind: i32) -> String {
    careloop_runtime::events::fields::loop_kind_name(kind)
}

fn due(item: &WorkItem) -> String {
    item.due_at
        .as_ref()
        .map(|t| local_time(t.seconds))
        .unwrap_or_default()
}

/// Open loops as a table: overdue marked first.
fn loops_table(items: &[WorkItem]) -> String {
    if items.is_empty() {
        return "  (none)\n".into();
    }
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|i| {
            vec![
                if i.overdue {
                    "OVERDUE".into()
                } else {
                    String::new()
                },
                kind_word(i.kind),
                i.label.clone(),
                i.status.clone(),
                role_word(i.owner_role),
                due(i),
                i.service.clone(),
                i.id.clone(),
            ]
        })
        .collect();
    grid(
        &[
            "", "kind", "what", "status", "owner", "due", "service", "id",
        ],
        &rows,
    )
}

fn unavailable(sections: &[SectionState]) -> Vec<String> {
    sections
        .iter()
        .filter(|s| !s.available)
        .map(|s| {
            let name = Section::try_from(s.section)
                .map(|x| words(x.as_str_name(), "SECTION_"))
                .unwrap_or_default();
            format!("{name} ({})", s.reason)
        })
        .collect()
}

pub async fn summary(g: &mut Gateway, patient: &str) -> anyhow::Result<()> {
    let s = g
        .get_patient_summary(GetPatientSummaryRequest {
            patient_id: patient.to_owned(),
        })
        .await?
        .into_inner();
    if format() == Format::Json {
        emit(&render_one(&s));
        return Ok(());
    }
    let mut out = String::new();
    if let Some(p) = &s.patient {
        out.push_str(&format!(
            "{} {}  born {}  mrn {}  ({})\n",
            p.given_name, p.family_name, p.birth_date, p.mrn, p.id
        ));
    }
    let missing = unavailable(&s.sections);
    if !missing.is_empty() {
        out.push_str(&format!("NOT SHOWN: {}\n", missing.join(", ")));
    }
    if let Some(plan) = &s.plan {
        let c = plan.content.clone().unwrap_or_default();
        out.push_str(&format!("\nPlan: {}\n", c.summary));
        for goal in &c.goals {
            out.push_str(&format!("  goal: {}\n", goal.text));
        }
        if !c.red_flags.is_empty() {
            out.push_str(&format!("Red flags: {}\n", c.red_flags.join("; ")));
        }
        if !c.allergies.is_empty() {
            let names: Vec<&str> = c.allergies.iter().map(|a| a.substance.as_str()).collect();
            out.push_str(&format!("Allergies: {}\n", names.join(", ")));
        }
        if !c.medications.is_empty() {
            let names: Vec<&str> = c.medications.iter().map(|m| m.name.as_str()).collect();
            out.push_str(&format!("Medications: {}\n", names.join(", ")));
        }
        match &plan.last_reconciliation {
            Some(r) => out.push_str(&format!(
                "  last reconciled by {} ({}) {}\n",
                r.reconciled_by,
                role_word(r.reconciled_by_role),
                r.reconciled_at
                    .as_ref()
                    .map(|t| local_time(t.seconds))
                    .unwrap_or_default()
            )),
            None if !c.medications.is_empty() => out.push_str("  never reconciled\n"),
            None => {}
        }
        if let Some(t) = &c.next_touchpoint {
            out.push_str(&format!(
                "Next touchpoint: {} {}\n",
                t.description,
                t.at.as_ref()
                    .map(|x| local_time(x.seconds))
                    .unwrap_or_default()
            ));
        }
        out.push_str("\nCare team:\n");
        let rows: Vec<Vec<String>> = plan
            .care_team
            .iter()
            .map(|m| {
                vec![
                    if m.is_lead {
                        "lead".into()
                    } else {
                        String::new()
                    },
                    m.display_name.clone(),
                    role_word(m.role),
                ]
            })
            .collect();
        for line in grid(&["", "member", "role"], &rows).lines() {
            out.push_str(&format!("  {line}\n"));
        }
        for w in &c.who_to_call {
            out.push_str(&format!(
                "  call {}: {} {}\n",
                role_word(w.role),
                w.phone,
                w.hours
            ));
        }
    } else if s
        .sections
        .iter()
        .any(|x| x.section == Section::Plan as i32 && x.available)
    {
        out.push_str("\nNo care plan yet.\n");
    }
    out.push_str(&format!("\nOpen loops ({}):\n", s.open_loops.len()));
    out.push_str(&loops_table(&s.open_loops));
    emit(&out);
    Ok(())
}

pub async fn worklist(
    g: &mut Gateway,
    role_name: &str,
    page_size: i32,
    all: bool,
) -> anyhow::Result<()> {
    let mut token = String::new();
    let mut items = Vec::new();
    let mut first = None;
    loop {
        let page = g
            .list_worklist(ListWorklistRequest {
                role: role(role_name)?,
                page_size,
                page_token: token.clone(),
            })
            .await?
            .into_inner();
        items.extend(page.items.iter().cloned());
        // A page that moved nowhere (a source down keeps its place) ends the walk.
        let stuck = page.items.is_empty() && page.next_page_token == token;
        token = page.next_page_token.clone();
        let done = token.is_empty() || !all || stuck;
        first.get_or_insert(page);
        if done {
            break;
        }
    }
    let Some(mut page) = first else {
        return Ok(());
    };
    page.items = items;
    if !all {
        page.next_page_token = token;
    }
    if format() == Format::Json {
        emit(&render_one(&page));
        return Ok(());
    }
    let mut out = format!(
        "{} worklist: {} open loops{}; inbox {}\n",
        role_name,
        page.items.len(),
        if page.next_page_token.is_empty() {
            ""
        } else {
            " (more: --all)"
        },
        if page.inbox_open_count < 0 {
            "unknown".to_owned()
        } else {
            format!("{} open", page.inbox_open_count)
        }
    );
    let missing = unavailable(&page.sections);
    if !missing.is_empty() {
        out.push_str(&format!("NOT SHOWN: {}\n", missing.join(", ")));
    }
    out.push_str(&loops_table(&page.items));
    emit(&out);
    Ok(())
}
