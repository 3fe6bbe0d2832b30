//! The report every invocation returns (and logs): what was asked, what was decided and
//! what happened in each custom table. It is the function's return value, so a manual run
//! with a sample event shows exactly what happened.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// At least one custom table was written, and none failed.
    Synced,
    /// Every custom table already had the route (or was skipped with a reason).
    Unchanged,
    /// A dry run: the tables list what would change; nothing was written.
    DryRun,
    /// A valid request that the eligibility rules refuse (see `reason`).
    Refused,
    /// An event that is not ours to act on (a failed call, another region ...).
    Ignored,
    /// A payload that could not be understood.
    Rejected,
    /// Something went wrong talking to AWS; see `error` and the tables marked `failed`.
    Failed,
}

impl Outcome {
    /// The name used in the report's JSON, for log lines.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Synced => "synced",
            Outcome::Unchanged => "unchanged",
            Outcome::DryRun => "dry-run",
            Outcome::Refused => "refused",
            Outcome::Ignored => "ignored",
            Outcome::Rejected => "rejected",
            Outcome::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TableActionTaken {
    Created,
    Replaced,
    Unchanged,
    Skipped,
    WouldCreate,
    WouldReplace,
    Failed,
}

impl TableActionTaken {
    /// The name used in the report's JSON, for the notice text.
    pub fn name(self) -> &'static str {
        match self {
            TableActionTaken::Created => "created",
            TableActionTaken::Replaced => "replaced",
            TableActionTaken::Unchanged => "unchanged",
            TableActionTaken::Skipped => "skipped",
            TableActionTaken::WouldCreate => "would-create",
            TableActionTaken::WouldReplace => "would-replace",
            TableActionTaken::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableReport {
    pub route_table_id: String,
    pub action: TableActionTaken,
    /// The next hop before, if the table had a route for the destination.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    /// The next hop after (or after the change, for a dry run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Whether the change notice went out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NoticeStatus {
    /// Nothing changed or failed: no notice is sent for a no-op.
    NotNeeded,
    /// `SNS_TOPIC_ARN` is not set.
    Disabled,
    Published,
    /// Publishing failed; the route work stands (see the log).
    Failed,
}

/// API calls made for this request, so a reader sees the cost of every sync.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CallCounts {
    pub describe_route_tables: u32,
    pub route_writes: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub outcome: Outcome,
    /// One sentence for people: the notice subject and the log line say the same.
    pub message: String,
    /// A stable code for refusals, ignores and rejections (`not-main-table` ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vpc_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route_table_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub main_route_table_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    pub dry_run: bool,
    pub tables: Vec<TableReport>,
    pub calls: CallCounts,
    pub notice: NoticeStatus,
    /// The error behind `failed`, if a call failed before any table could be decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Report {
    /// A report with no plan behind it (rejected, ignored, refused, failed early).
    pub fn without_plan(outcome: Outcome, reason: &str, message: String) -> Self {
        Self {
            reason: Some(reason.to_owned()),
            ..Self::new(outcome, message)
        }
    }

    pub fn new(outcome: Outcome, message: String) -> Self {
        Self {
            outcome,
            message,
            reason: None,
            vpc_id: None,
            route_table_id: None,
            main_route_table_id: None,
            destination: None,
            target: None,
            dry_run: false,
            tables: Vec::new(),
            calls: CallCounts::default(),
            notice: NoticeStatus::NotNeeded,
            error: None,
        }
    }

    pub fn failed_tables(&self) -> impl Iterator<Item = &TableReport> {
        self.tables
            .iter()
            .filter(|t| t.action == TableActionTaken::Failed)
    }

    pub fn changed_tables(&self) -> impl Iterator<Item = &TableReport> {
        self.tables.iter().filter(|t| {
            matches!(
                t.action,
                TableActionTaken::Created | TableActionTaken::Replaced
            )
        })
    }

    /// Whether Lambda should treat the invocation as failed, so that its retries and the
    /// failure destination take over. Refusals and bad input are final answers, not
    /// failures: retrying them would only fill the dead-letter queue.
    pub fn is_failure(&self) -> bool {
        self.outcome == Outcome::Failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `name()` feeds log lines (and the CDK app's metric filter on them): it must say what
    /// the report's JSON says.
    #[test]
    fn names_match_the_json() {
        for outcome in [
            Outcome::Synced,
            Outcome::Unchanged,
            Outcome::DryRun,
            Outcome::Refused,
            Outcome::Ignored,
            Outcome::Rejected,
            Outcome::Failed,
        ] {
            assert_eq!(serde_json::to_value(outcome).unwrap(), outcome.name());
        }
        for action in [
            TableActionTaken::Created,
            TableActionTaken::Replaced,
            TableActionTaken::Unchanged,
            TableActionTaken::Skipped,
            TableActionTaken::WouldCreate,
            TableActionTaken::WouldReplace,
            TableActionTaken::Failed,
        ] {
            assert_eq!(serde_json::to_value(action).unwrap(), action.name());
        }
    }
}
