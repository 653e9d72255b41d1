//! How the CLI prints what it gets back: for people, a readable view (fields by name, enums in plain
//! words, instants in local time, lists as aligned tables, empty fields left out); for scripts,
//! `--output json` (the protobuf JSON mapping). Every message is printed through reflection over
//! the CareLoop descriptors, so a new field shows without code here.

use prost::{Message, Name};
use prost_reflect::{DescriptorPool, DynamicMessage, FieldDescriptor, Kind, ReflectMessage, Value};
use std::io::Write;
use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum Format {
    /// Readable views and tables.
    #[default]
    Human,
    /// The protobuf JSON mapping, one document per command.
    Json,
}

static FORMAT: OnceLock<Format> = OnceLock::new();

pub fn set_format(format: Format) {
    let _ = FORMAT.set(format);
}

pub fn format() -> Format {
    FORMAT.get().copied().unwrap_or_default()
}

fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(careloop_proto::FILE_DESCRIPTOR_SET)
            .expect("the CareLoop descriptors are built into this binary")
    })
}

/// The message as a reflected value (its fields by name).
pub fn reflect<M: Message + Name>(message: &M) -> Option<DynamicMessage> {
    let descriptor = pool().get_message_by_name(&M::full_name())?;
    DynamicMessage::decode(descriptor, message.encode_to_vec().as_slice()).ok()
}

/// Writes `text`; a closed pipe (`| head`) ends the output quietly.
pub fn emit(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    if !text.ends_with('\n') {
        let _ = out.write_all(b"\n");
    }
}

fn json(message: &DynamicMessage) -> serde_json::Value {
    serde_json::to_value(message).unwrap_or(serde_json::Value::Null)
}

/// What a command's answer can be: one record, maybe none, or a list.
pub trait Printable {
    fn render(&self) -> String;
}

impl<M: Message + Name> Printable for Option<M> {
    fn render(&self) -> String {
        match self {
            Some(m) => render_one(m),
            None if format() == Format::Json => "null".into(),
            None => "(none)".into(),
        }
    }
}

impl<M: Message + Name> Printable for Vec<M> {
    fn render(&self) -> String {
        let rows: Vec<DynamicMessage> = self.iter().filter_map(reflect).collect();
        if format() == Format::Json {
            let all: Vec<serde_json::Value> = rows.iter().map(json).collect();
            return serde_json::to_string_pretty(&all).unwrap_or_default();
        }
        if rows.is_empty() {
            return "(none)".into();
        }
        table(&rows)
    }
}

pub fn render_one<M: Message + Name>(message: &M) -> String {
    let Some(dynamic) = reflect(message) else {
        return format!("({} bytes of {})", message.encoded_len(), M::full_name());
    };
    if format() == Format::Json {
        return serde_json::to_string_pretty(&json(&dynamic)).unwrap_or_default();
    }
    let mut out = String::new();
    record(&dynamic, 0, &mut out);
    out
}

pub fn show<P: Printable>(value: &P) {
    emit(&value.render());
}

/// `careloop.common.v1.CareRole` values print as `care_manager`.
fn enum_word(field: &FieldDescriptor, number: i32) -> String {
    let Kind::Enum(e) = field.kind() else {
        return number.to_string();
    };
    let Some(value) = e.get_value(number) else {
        return number.to_string();
    };
    let prefix = format!("{}_", constant_case(e.name()));
    value
        .name()
        .strip_prefix(&prefix)
        .unwrap_or(value.name())
        .to_lowercase()
}

fn constant_case(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// An instant in the local time zone, to the minute.
pub fn local_time(seconds: i64) -> String {
    chrono::DateTime::from_timestamp(seconds, 0)
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M %Z")
                .to_string()
        })
        .unwrap_or_default()
}

fn timestamp(m: &DynamicMessage) -> Option<String> {
    if m.descriptor().full_name() != "google.protobuf.Timestamp" {
        return None;
    }
    let seconds = m.get_field_by_name("seconds")?.as_i64()?;
    Some(local_time(seconds))
}

/// One value on one line, or `None` when it needs lines of its own (a nested record, a list of
/// records).
fn inline(field: &FieldDescriptor, value: &Value) -> Option<String> {
    Some(match value {
        Value::Bool(b) => b.to_string(),
        Value::I32(n) => n.to_string(),
        Value::I64(n) => n.to_string(),
        Value::U32(n) => n.to_string(),
        Value::U64(n) => n.to_string(),
        Value::F32(n) => format!("{n:.1}"),
        Value::F64(n) => format!("{n:.1}"),
        Value::String(s) => s.clone(),
        Value::Bytes(b) => format!("({} bytes)", b.len()),
        Value::EnumNumber(n) => enum_word(field, *n),
        Value::Message(m) => {
            if let Some(t) = timestamp(m) {
                t
            } else if m.descriptor().full_name() == "careloop.common.v1.LoopRef" {
                m.fields()
                    .map(|(f, v)| inline(&f, v).unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join(" ")
            } else {
                return None;
            }
        }
        Value::List(items) => {
            let words: Option<Vec<String>> = items.iter().map(|v| inline(field, v)).collect();
            words?.join(", ")
        }
        Value::Map(_) => return None,
    })
}

fn label(name: &str) -> String {
    name.replace('_', " ")
}

/// A record as `name: value` lines, nested records indented, lists of records as tables.
fn record(m: &DynamicMessage, depth: usize, out: &mut String) {
    let pad = "  ".repeat(depth);
    // Only the fields that carry something.
    let fields: Vec<(FieldDescriptor, Value)> = m.fields().map(|(f, v)| (f, v.clone())).collect();
    let width = fields
        .iter()
        .map(|(f, _)| label(f.name()).len())
        .max()
        .unwrap_or(0);
    for (field, value) in &fields {
        let name = label(field.name());
        match (inline(field, value), value) {
            (Some(text), _) => {
                if !text.is_empty() {
                    out.push_str(&format!("{pad}{name:<width$}  {text}\n"));
                }
            }
            (None, Value::Message(nested)) => {
                out.push_str(&format!("{pad}{name}:\n"));
                record(nested, depth + 1, out);
            }
            (None, Value::List(items)) => {
                let rows: Vec<DynamicMessage> = items
                    .iter()
                    .filter_map(|v| v.as_message().cloned())
                    .collect();
                out.push_str(&format!("{pad}{name}:\n"));
                for line in table(&rows).lines() {
                    out.push_str(&format!("{pad}  {line}\n"));
                }
            }
            (None, _) => {}
        }
    }
}

/// Records of one type as an aligned table: a column per field that fits on a line and is set in
/// some row.
pub fn table(rows: &[DynamicMessage]) -> String {
    let Some(first) = rows.first() else {
        return "(none)\n".into();
    };
    let descriptor = first.descriptor();
    let mut columns: Vec<(String, Vec<String>)> = Vec::new();
    for field in descriptor.fields() {
        let cells: Vec<String> = rows
            .iter()
            .map(|r| {
                if !r.has_field(&field) {
                    return String::new();
                }
                inline(&field, &r.get_field(&field)).unwrap_or_default()
            })
            .collect();
        if cells.iter().any(|c| !c.is_empty()) {
            columns.push((label(field.name()), cells));
        }
    }
    grid(
        &columns.iter().map(|(h, _)| h.as_str()).collect::<Vec<_>>(),
        &(0..rows.len())
            .map(|i| columns.iter().map(|(_, c)| c[i].clone()).collect())
            .collect::<Vec<Vec<String>>>(),
    )
}

/// Columns padded to their widest cell (long cells cut at 60 characters).
pub fn grid(headers: &[&str], rows: &[Vec<String>]) -> String {
    let cut = |s: &str| -> String {
        if s.chars().count() > 60 {
            format!("{}…", s.chars().take(59).collect::<String>())
        } else {
            s.to_owned()
        }
    };
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| cut(c)).collect())
        .collect();
    let widths: Vec<usize> = headers
        .iter()
        .enumerate()
        .map(|(i, h)| {
            rows.iter()
                .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                .max()
                .unwrap_or(0)
                .max(h.len())
        })
        .collect();
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    let mut out = line(headers.to_vec());
    out.push('\n');
    for row in &rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use careloop_proto::common::v1::CareRole;
    use careloop_proto::plans::v1::Task;

    fn task(title: &str, role: CareRole) -> Task {
        Task {
            id: "t-1".into(),
            title: title.into(),
            owner_role: role as i32,
            due_at: Some(prost_types::Timestamp {
                seconds: 1_800_000_000,
                nanos: 0,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_record_reads_as_named_lines_with_words_for_enums_and_local_times() {
        let text = render_one(&task("call the patient", CareRole::CareManager));
        assert!(text.contains("title"), "{text}");
        assert!(text.contains("call the patient"));
        assert!(text.contains("care_manager"), "enum in words: {text}");
        assert!(text.contains(&local_time(1_800_000_000)), "{text}");
        assert!(!text.contains("description"), "empty fields are left out");
        assert!(!text.contains("Task {"), "no debug dump");
    }

    #[test]
    fn a_list_is_an_aligned_table_with_a_column_per_set_field() {
        let text = vec![
            task("call", CareRole::Rn),
            task("book transport", CareRole::DischargePlanner),
        ]
        .render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("id"));
        let column = lines[0].find("owner role").unwrap();
        assert_eq!(&lines[1][column..column + 2], "rn");
        assert_eq!(&lines[2][column..column + 17], "discharge_planner");
    }
}
