//! Metrics as CloudWatch embedded metric format (EMF): one JSON log line per request, which
//! CloudWatch Logs turns into metrics with no API call of our own. A small serializer rather
//! than a crate: the format is a dozen fields (see the AWS "Embedded metric format
//! specification"), and the tests below pin it.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::domain::report::Report;

pub const NAMESPACE: &str = "SyncRoutes";

/// The metric line for one request. `event_time` is CloudTrail's record of the call that
/// changed the route: `EventLag` (that to the end of the sync) is the delay a user waits
/// through, CloudTrail's delivery included; requests without one (manual, schedule, watch,
/// HTTP) have no lag and report none. Dimensions stay few and of low cardinality: the
/// function's name only, never a table or a route.
pub fn metrics_line(
    report: &Report,
    event_time: Option<SystemTime>,
    now: SystemTime,
    function_name: &str,
) -> Value {
    let millis = |t: SystemTime| {
        t.duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    };
    let mut metrics = vec![
        json!({"Name": "RoutesWritten", "Unit": "Count"}),
        json!({"Name": "TablesFailed", "Unit": "Count"}),
        json!({"Name": "TablesDeferred", "Unit": "Count"}),
        json!({"Name": "Throttled", "Unit": "Count"}),
    ];
    let mut line = json!({
        "_aws": {
            "Timestamp": millis(now),
            "CloudWatchMetrics": [],
        },
        "FunctionName": function_name,
        "RoutesWritten": report.counts.changed(),
        "TablesFailed": report.counts.failed,
        "TablesDeferred": report.counts.deferred,
        "Throttled": report.calls.throttled,
        "outcome": report.outcome.name(),
    });
    // With deletes on only (the ledger is in play), so that without it nothing changes.
    if let Some(ledger) = &report.ledger {
        metrics.push(json!({"Name": "DeleteBudgetExceeded", "Unit": "Count"}));
        metrics.push(json!({"Name": "LedgerWriteFailures", "Unit": "Count"}));
        line["DeleteBudgetExceeded"] = u32::from(report.delete_budget_exceeded.is_some()).into();
        line["LedgerWriteFailures"] = ledger.write_failures.into();
    }
    if let Some(event_time) = event_time {
        let lag = now
            .duration_since(event_time)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        metrics.insert(0, json!({"Name": "EventLag", "Unit": "Milliseconds"}));
        line["EventLag"] = lag.into();
    }
    // A hub's work per account: the same metrics by account too (one account per line).
    let dimensions = match &report.account {
        Some(account) => {
            line["Account"] = account.clone().into();
            json!([["FunctionName"], ["FunctionName", "Account"]])
        }
        None => json!([["FunctionName"]]),
    };
    line["_aws"]["CloudWatchMetrics"] = json!([{
        "Namespace": NAMESPACE,
        "Dimensions": dimensions,
        "Metrics": metrics,
    }]);
    line
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::domain::report::{Outcome, Report};

    #[test]
    fn a_cloudtrail_sync_reports_its_lag_and_counts() {
        let mut report = Report::new(Outcome::Synced, "ok".into());
        report.counts.created = 3;
        report.counts.replaced = 1;
        report.counts.failed = 1;
        report.calls.throttled = 7;
        let now = UNIX_EPOCH + Duration::from_secs(1_795_512_912);
        let line = metrics_line(
            &report,
            Some(now - Duration::from_secs(300)),
            now,
            "SyncRoutes-fn",
        );
        assert_eq!(
            line,
            json!({
                "_aws": {
                    "Timestamp": 1_795_512_912_000u64,
                    "CloudWatchMetrics": [{
                        "Namespace": "SyncRoutes",
                        "Dimensions": [["FunctionName"]],
                        "Metrics": [
                            {"Name": "EventLag", "Unit": "Milliseconds"},
                            {"Name": "RoutesWritten", "Unit": "Count"},
                            {"Name": "TablesFailed", "Unit": "Count"},
                            {"Name": "TablesDeferred", "Unit": "Count"},
                            {"Name": "Throttled", "Unit": "Count"},
                        ],
                    }],
                },
                "FunctionName": "SyncRoutes-fn",
                "EventLag": 300_000,
                "RoutesWritten": 4,
                "TablesFailed": 1,
                "TablesDeferred": 0,
                "Throttled": 7,
                "outcome": "synced",
            })
        );
    }

    #[test]
    fn without_an_event_time_there_is_no_lag() {
        let report = Report::new(Outcome::Unchanged, "ok".into());
        let line = metrics_line(&report, None, SystemTime::now(), "f");
        assert!(line.get("EventLag").is_none());
        let names: Vec<_> = line["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            names,
            [
                "RoutesWritten",
                "TablesFailed",
                "TablesDeferred",
                "Throttled"
            ]
        );
        // Every metric named in the metadata has its value at the top level, as EMF requires.
        for name in names {
            assert!(line[&name].is_u64(), "{name}");
        }
    }
}
