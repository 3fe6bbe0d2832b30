//! What `sync-routes invoke` prints on a terminal: the outcome line, then one line per table
//! entry (action, table, destination where the report covers several, before -> after,
//! reason). Pipes and `--json` get the JSON report instead.

use std::fmt::Write;

use crate::domain::report::Report;

pub fn human_summary(report: &Report) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(out, "{}: {}", report.outcome.name(), report.message);
    let several_destinations = report.destination.is_none();
    let several_vpcs = report.vpc_id.is_none();
    for table in &report.tables {
        let _ = write!(out, "  {:<13} ", table.action.name());
        if several_vpcs {
            let _ = write!(out, "{} ", table.vpc_id);
        }
        let _ = write!(out, "{}", table.route_table_id);
        if several_destinations {
            let _ = write!(out, "  {}", table.destination.as_deref().unwrap_or("(all)"));
        }
        if table.before.is_some() || table.after.is_some() {
            let _ = write!(
                out,
                "  {} -> {}",
                table.before.as_deref().unwrap_or("(none)"),
                table.after.as_deref().unwrap_or("(none)")
            );
        }
        if let Some(reason) = &table.reason {
            let _ = write!(out, "  ({reason})");
        }
        let _ = writeln!(out);
    }
    if let Some(error) = &report.error {
        let _ = writeln!(out, "  error: {error}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::report::{Outcome, TableActionTaken, TableReport};

    fn entry(table: &str, destination: &str, action: TableActionTaken) -> TableReport {
        TableReport {
            vpc_id: "vpc-1".into(),
            route_table_id: table.into(),
            destination: Some(destination.into()),
            action,
            before: Some("eni-a".into()),
            after: Some("eni-b".into()),
            code: None,
            reason: None,
        }
    }

    #[test]
    fn one_route_one_line_per_table() {
        let mut report = Report::new(
            Outcome::Synced,
            "10.1.0.0/16 -> eni-b: 1 of 2 custom tables updated, 1 skipped".into(),
        );
        report.vpc_id = Some("vpc-1".into());
        report.destination = Some("10.1.0.0/16".into());
        report.tables = vec![
            entry("rtb-1", "10.1.0.0/16", TableActionTaken::Replaced),
            TableReport {
                code: Some("conflicting-target".into()),
                reason: Some("it already routes 10.1.0.0/16 to igw-1".into()),
                before: Some("igw-1".into()),
                after: Some("igw-1".into()),
                ..entry("rtb-2", "10.1.0.0/16", TableActionTaken::Skipped)
            },
        ];
        assert_eq!(
            human_summary(&report),
            "synced: 10.1.0.0/16 -> eni-b: 1 of 2 custom tables updated, 1 skipped\n\
             \x20 replaced      rtb-1  eni-a -> eni-b\n\
             \x20 skipped       rtb-2  igw-1 -> igw-1  (it already routes 10.1.0.0/16 to igw-1)\n"
        );
    }

    #[test]
    fn a_sweep_names_the_vpc_and_the_destination() {
        let mut report = Report::new(
            Outcome::Synced,
            "sweep of 2 VPCs: 1 of 9 routes in custom tables updated".into(),
        );
        report.tables = vec![entry("rtb-1", "pl-0123", TableActionTaken::Created)];
        assert_eq!(
            human_summary(&report),
            "synced: sweep of 2 VPCs: 1 of 9 routes in custom tables updated\n\
             \x20 created       vpc-1 rtb-1  pl-0123  eni-a -> eni-b\n"
        );
    }
}
