//! Tables of bad input that report every failing case, not only the first: `refused!` records a
//! case that was not refused as expected, and a `CaseReport` held by the test fails it at the end,
//! listing them all.

use std::cell::RefCell;

thread_local! {
    static FAILURES: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// Records one failed case for the running test (tests run on their own thread).
pub fn record_failure(case: String) {
    FAILURES.with(|f| f.borrow_mut().push(case));
}

/// Hold one for the length of a table test: when it drops, the test fails with every recorded case.
#[must_use = "the report fails the test only while it is held"]
#[derive(Default)]
pub struct CaseReport;

impl Drop for CaseReport {
    fn drop(&mut self) {
        let failures = FAILURES.with(|f| std::mem::take(&mut *f.borrow_mut()));
        if !failures.is_empty() && !std::thread::panicking() {
            panic!(
                "{} case(s) failed:\n{}",
                failures.len(),
                failures.join("\n")
            );
        }
    }
}

/// The field named in an INVALID_ARGUMENT's BadRequest details (empty for any other status).
pub fn bad_field(status: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    if status.code() != tonic::Code::InvalidArgument {
        return String::new();
    }
    status
        .get_details_bad_request()
        .and_then(|b| b.field_violations.first().map(|v| v.field.clone()))
        .unwrap_or_default()
}

/// `refused!(call, "field")`: the call must fail with INVALID_ARGUMENT naming `field`, and its
/// message must carry no patient data. A case that does not hold is recorded, not fatal.
#[macro_export]
macro_rules! refused {
    ($call:expr, $field:expr) => {{
        match $call.await {
            Ok(_) => $crate::cases::record_failure(format!(
                "{}: was accepted, expected INVALID_ARGUMENT naming {}",
                stringify!($call),
                $field
            )),
            Err(status) => {
                let named = $crate::cases::bad_field(&status);
                if named != $field {
                    $crate::cases::record_failure(format!(
                        "{}: expected INVALID_ARGUMENT naming {}, got {:?} naming {:?}: {}",
                        stringify!($call),
                        $field,
                        status.code(),
                        named,
                        status.message()
                    ));
                }
                if status.message().contains("Lovelace") {
                    $crate::cases::record_failure(format!(
                        "{}: patient data in the error message",
                        stringify!($call)
                    ));
                }
            }
        }
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "2 case(s) failed:\nfirst\nsecond")]
    fn a_report_lists_every_failed_case_not_only_the_first() {
        let _report = CaseReport;
        record_failure("first".into());
        record_failure("second".into());
    }

    #[test]
    fn a_report_without_failures_passes() {
        let _report = CaseReport;
    }
}
