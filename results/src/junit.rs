//! `--junit FILE`: the run's thresholds as JUnit test cases, for CI systems
//! that show test results (one test case per threshold expression, one
//! failure per failed threshold).

use crate::text::threshold_observed;
use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};
use volley_model::summary::Summary;

/// quick-junit could not write the report.
#[derive(Debug, thiserror::Error)]
#[error("cannot write JUnit XML: {0}")]
pub struct JunitError(quick_junit::SerializeError);

pub fn render(s: &Summary) -> Result<String, JunitError> {
    let info = &s.volley;
    let mut suite = TestSuite::new(format!("volley thresholds: {}", info.plan));
    suite.set_time(volley_protocols::duration::secs(info.duration_s));
    suite.add_property(Property::new("plan", info.plan.clone()));
    suite.add_property(Property::new("started", info.started.clone()));
    suite.add_property(Property::new("segment", info.segment.clone()));
    if let Some(reason) = &info.aborted {
        suite.add_property(Property::new("aborted", reason.clone()));
    }
    if let Some(m) = &info.merge {
        let parts: Vec<&str> = m.parts.iter().map(|p| p.segment.as_str()).collect();
        suite.add_property(Property::new("merged_parts", parts.join(" ")));
        if !m.missing.is_empty() {
            let missing: Vec<String> = m.missing.iter().map(|s| format!("{s}/{}", m.of)).collect();
            suite.add_property(Property::new("missing_segments", missing.join(" ")));
        }
    }
    for t in &info.thresholds {
        let m = s.metrics.get(&t.key);
        for expr in &t.expressions {
            let result = m.and_then(|m| m.thresholds.get(expr).map(|r| (m, r)));
            let status = match result {
                Some((m, r)) if !r.ok => {
                    let seen = threshold_observed(m, expr, r);
                    let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    st.set_message(format!("{} '{expr}' failed: {seen}", t.key));
                    st.set_type("threshold");
                    st
                }
                Some((m, r)) => {
                    let mut st = TestCaseStatus::success();
                    if r.no_data {
                        st = TestCaseStatus::skipped();
                        st.set_message("no data: nothing was recorded for this metric");
                    } else {
                        st.set_message(threshold_observed(m, expr, r));
                    }
                    st
                }
                None => {
                    let mut st = TestCaseStatus::skipped();
                    st.set_message("not evaluated in this summary");
                    st
                }
            };
            let mut case = TestCase::new(expr.clone(), status);
            case.set_classname(t.key.clone());
            if let Some((m, r)) = result {
                case.set_system_out(threshold_observed(m, expr, r));
            }
            suite.add_test_case(case);
        }
    }
    let mut report = Report::new("volley");
    report.set_time(volley_protocols::duration::secs(info.duration_s));
    report.add_test_suite(suite);
    report.to_string().map_err(JunitError)
}
