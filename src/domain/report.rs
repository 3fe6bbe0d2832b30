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
    /// The deadline came before every write was made: what was written stands, and the rest
    /// was handed on to a new invocation, which re-reads and continues. Not a failure.
    Progressing,
    /// A fresh event that EC2's reads do not show yet (they lag its writes). Nothing was
    /// decided from that read and nothing written; the event is tried again later (handed on
    /// to a new invocation, or retried). Not a failure and not a refusal.
    WaitingForEc2,
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
            Outcome::Progressing => "progressing",
            Outcome::WaitingForEc2 => "waiting-for-ec2",
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
    Deleted,
    Unchanged,
    Skipped,
    WouldCreate,
    WouldReplace,
    WouldDelete,
    /// Not written before the deadline; handed on (see `Outcome::Progressing`).
    Deferred,
    Failed,
    /// `{"reconcile": true, "adopt": true}`: the route equals the main table's and is now
    /// recorded as written by sync-routes (its deletes may follow the main table's).
    Adopted,
    WouldAdopt,
}

impl TableActionTaken {
    /// The name used in the report's JSON, for the notice text.
    pub fn name(self) -> &'static str {
        match self {
            TableActionTaken::Created => "created",
            TableActionTaken::Replaced => "replaced",
            TableActionTaken::Deleted => "deleted",
            TableActionTaken::Unchanged => "unchanged",
            TableActionTaken::Skipped => "skipped",
            TableActionTaken::WouldCreate => "would-create",
            TableActionTaken::WouldReplace => "would-replace",
            TableActionTaken::WouldDelete => "would-delete",
            TableActionTaken::Deferred => "deferred",
            TableActionTaken::Failed => "failed",
            TableActionTaken::Adopted => "adopted",
            TableActionTaken::WouldAdopt => "would-adopt",
        }
    }

    /// A route was written (created, replaced or deleted).
    pub fn is_change(self) -> bool {
        matches!(
            self,
            TableActionTaken::Created | TableActionTaken::Replaced | TableActionTaken::Deleted
        )
    }

    pub fn is_dry_run_change(self) -> bool {
        matches!(
            self,
            TableActionTaken::WouldCreate
                | TableActionTaken::WouldReplace
                | TableActionTaken::WouldDelete
        )
    }
}

/// One destination in one custom table (or, with no destination, a whole table left alone).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableReport {
    pub vpc_id: String,
    pub route_table_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    pub action: TableActionTaken,
    /// The next hop before, if the table had a route for the destination.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    /// The next hop after (or after the change, for a dry run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// A stable code for why the pair was skipped, deferred or failed (`table-deleted`,
    /// `conflicting-target`, `gateway-endpoint-route` ...), for scripts and log queries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The same, in a sentence for people.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A destination that a coalesced batch named but the eligibility rules refuse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefusedRoute {
    pub destination: String,
    /// The refusal's stable code (`target-kind-not-allowed` ...).
    pub reason: String,
    pub message: String,
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
    /// Calls EC2 answered with `RequestLimitExceeded` (each one was retried).
    pub throttled: u32,
    /// Continuations sent (the deadline's leftovers, or an event waiting for EC2): work that
    /// goes on elsewhere, so the request that sent them is never also retried for it.
    pub hand_offs: u32,
}

/// The ledger's part in a request (deletes on only): its calls, the writes it could not
/// record (they stay unowned, so never deleted), and whether ownership could not be read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LedgerCalls {
    /// BatchGetItem calls: ownership of the planned deletes.
    pub reads: u32,
    /// BatchWriteItem calls: writes recorded, deletes forgotten, routes adopted.
    pub writes: u32,
    pub write_failures: u32,
    /// The ledger could not be read: no delete was made.
    pub unavailable: bool,
}

/// A request that planned more deletes than its budget: none was made, and these are the
/// deletes it would have made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeleteBudgetExceeded {
    pub max_deletes: u32,
    pub planned: u32,
    pub would_delete: Vec<HeldBackRoute>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeldBackRoute {
    pub vpc_id: String,
    pub route_table_id: String,
    pub destination: String,
    pub next_hop: String,
}

/// How many (destination, table) pairs ended each way, so a sweep's report stays short:
/// its `tables` list leaves out the unchanged pairs, these counts do not.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub vpcs: u32,
    pub created: u32,
    pub replaced: u32,
    pub deleted: u32,
    pub unchanged: u32,
    pub skipped: u32,
    pub would_change: u32,
    pub deferred: u32,
    pub failed: u32,
    /// Routes adopted (or, in a dry run, that would be).
    #[serde(skip_serializing_if = "is_zero")]
    pub adopted: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Counts {
    pub fn add(&mut self, action: TableActionTaken) {
        match action {
            TableActionTaken::Created => self.created += 1,
            TableActionTaken::Replaced => self.replaced += 1,
            TableActionTaken::Deleted => self.deleted += 1,
            TableActionTaken::Unchanged => self.unchanged += 1,
            TableActionTaken::Skipped => self.skipped += 1,
            TableActionTaken::WouldCreate
            | TableActionTaken::WouldReplace
            | TableActionTaken::WouldDelete => self.would_change += 1,
            TableActionTaken::Deferred => self.deferred += 1,
            TableActionTaken::Failed => self.failed += 1,
            TableActionTaken::Adopted | TableActionTaken::WouldAdopt => self.adopted += 1,
        }
    }

    /// Undoes `add`, for a pair whose first outcome a later pass replaced.
    pub fn remove(&mut self, action: TableActionTaken) {
        let count = match action {
            TableActionTaken::Created => &mut self.created,
            TableActionTaken::Replaced => &mut self.replaced,
            TableActionTaken::Deleted => &mut self.deleted,
            TableActionTaken::Unchanged => &mut self.unchanged,
            TableActionTaken::Skipped => &mut self.skipped,
            TableActionTaken::WouldCreate
            | TableActionTaken::WouldReplace
            | TableActionTaken::WouldDelete => &mut self.would_change,
            TableActionTaken::Deferred => &mut self.deferred,
            TableActionTaken::Failed => &mut self.failed,
            TableActionTaken::Adopted | TableActionTaken::WouldAdopt => &mut self.adopted,
        };
        *count = count.saturating_sub(1);
    }

    pub fn changed(&self) -> u32 {
        self.created + self.replaced + self.deleted
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub outcome: Outcome,
    /// One sentence for people: the notice subject and the log line say the same.
    pub message: String,
    /// What asked: the CloudTrail event name, `schedule`, `manual`, `http` or `watch`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger: Option<String>,
    /// The AWS account worked in, for an organization's hub (its own or a member's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
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
    /// Every table for a single-destination request; for a wider reconcile every pair that
    /// did not stay unchanged, by VPC, destination and table.
    pub tables: Vec<TableReport>,
    /// With several destinations named (a coalesced batch): those refused, each with why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<RefusedRoute>,
    pub counts: Counts,
    pub calls: CallCounts,
    pub notice: NoticeStatus,
    /// The error behind `failed`, if a call failed before any table could be decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Deletes held back because the request planned more than its budget.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delete_budget_exceeded: Option<DeleteBudgetExceeded>,
    /// With deletes on: what the ledger of sync-routes' own routes did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ledger: Option<LedgerCalls>,
    /// A hub's sweep: the member accounts and regions it covers, each queued as its own
    /// reconcile (or, without a queue, run here).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub accounts: Vec<AccountWork>,
}

/// One account and region of a hub's sweep.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccountWork {
    pub account: String,
    pub region: String,
    /// `queued`, or the outcome of the reconcile when it ran here.
    pub outcome: String,
    pub message: String,
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
            trigger: None,
            account: None,
            region: None,
            reason: None,
            vpc_id: None,
            route_table_id: None,
            main_route_table_id: None,
            destination: None,
            target: None,
            dry_run: false,
            tables: Vec::new(),
            refused: Vec::new(),
            counts: Counts::default(),
            calls: CallCounts::default(),
            notice: NoticeStatus::NotNeeded,
            error: None,
            delete_budget_exceeded: None,
            ledger: None,
            accounts: Vec::new(),
        }
    }

    pub fn failed_tables(&self) -> impl Iterator<Item = &TableReport> {
        self.tables
            .iter()
            .filter(|t| t.action == TableActionTaken::Failed)
    }

    pub fn changed_tables(&self) -> impl Iterator<Item = &TableReport> {
        self.tables.iter().filter(|t| t.action.is_change())
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
            Outcome::Progressing,
            Outcome::WaitingForEc2,
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
            TableActionTaken::Deleted,
            TableActionTaken::Unchanged,
            TableActionTaken::Skipped,
            TableActionTaken::WouldCreate,
            TableActionTaken::WouldReplace,
            TableActionTaken::WouldDelete,
            TableActionTaken::Deferred,
            TableActionTaken::Failed,
            TableActionTaken::Adopted,
            TableActionTaken::WouldAdopt,
        ] {
            assert_eq!(serde_json::to_value(action).unwrap(), action.name());
        }
    }
}
