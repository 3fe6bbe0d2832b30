//! The engine's ports: what it asks of EC2, SNS and the continuation of unfinished work, in
//! the domain's own types. The adapters implement them (`adapters::ec2`, `adapters::sns`,
//! `adapters::lambda`), and `adapters::memory` in plain values for the tests.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::time::Instant;

use crate::domain::notice::Notice;
use crate::domain::ownership::{LedgerChange, Owned, RouteKey};
use crate::domain::plan::{Destination, RouteTable, Target};
use crate::domain::request::SyncRequest;

/// How a failed AWS call may be retried. Decided by the adapter, acted on by `retry`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryClass {
    /// `RequestLimitExceeded` and friends: wait for the token bucket to refill.
    Throttled,
    /// 5xx, timeouts, dropped connections: likely to work a moment later.
    Transient,
    /// Will fail the same way again (bad parameters, no permission ...).
    Permanent,
    /// Not attempted, or cut off, because the invocation's deadline came first: the work is
    /// handed on, never failed.
    Deadline,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{operation} failed: {}{message}", code.as_deref().map(|c| format!("{c}: ")).unwrap_or_default())]
pub struct AwsError {
    pub operation: &'static str,
    pub code: Option<String>,
    pub message: String,
    pub retry: RetryClass,
}

impl AwsError {
    /// The call was not made (or was cut off) because the deadline came first.
    pub fn deadline(operation: &'static str) -> Self {
        Self {
            operation,
            code: None,
            message: "not attempted: the invocation's deadline came first".into(),
            retry: RetryClass::Deadline,
        }
    }
}

/// A route write that did not happen. The first three are EC2 telling us the table changed
/// under us since we read it; the engine reads it again and re-decides rather than guess.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    #[error("the route already exists")]
    AlreadyExists,
    #[error("the route does not exist")]
    NotFound,
    /// `InvalidRouteTableID.NotFound`: the table was deleted since it was read (Terraform
    /// destroying a stack during a sweep). A race, not a failure.
    #[error("the route table does not exist")]
    TableNotFound,
    #[error(transparent)]
    Aws(#[from] AwsError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    Create,
    Replace,
    Delete,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteWrite {
    pub table_id: String,
    pub destination: Destination,
    /// The next hop to write; `None` for a delete.
    pub target: Option<Target>,
    pub mode: WriteMode,
    pub dry_run: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    Written,
    /// EC2 answered `DryRunOperation`: the call would have succeeded.
    DryRunPassed,
}

/// The EC2 port. `deadline` bounds retries: past it an adapter gives up and reports.
pub trait RouteTables: Sync {
    /// One table by id, or `None` if EC2 does not know it.
    fn table(
        &self,
        table_id: &str,
        deadline: Instant,
    ) -> impl Future<Output = Result<Option<RouteTable>, AwsError>> + Send;
    /// Every route table of these VPCs, in one call (following pages if EC2 pages).
    fn vpc_tables(
        &self,
        vpc_ids: &[String],
        deadline: Instant,
    ) -> impl Future<Output = Result<Vec<RouteTable>, AwsError>> + Send;
    /// Every route table in the region, in one paged call.
    fn all_tables(
        &self,
        deadline: Instant,
    ) -> impl Future<Output = Result<Vec<RouteTable>, AwsError>> + Send;
    fn write_route(
        &self,
        write: &RouteWrite,
        deadline: Instant,
    ) -> impl Future<Output = Result<WriteOutcome, WriteError>> + Send;
    /// Calls throttled so far by this process (each was retried), for the metrics.
    fn throttled_calls(&self) -> u32 {
        0
    }
}

/// The notice port (SNS in production).
pub trait Notifier: Sync {
    fn publish(&self, notice: &Notice) -> impl Future<Output = Result<(), String>> + Send;
}

/// The hand-off port: continues a request in a new invocation, at the earliest after
/// `delay` (a message on the function's own work queue in production, or an asynchronous
/// Invoke of the function where there is no queue, which cannot wait). Boxed, so the engine
/// can hold one or none without another type parameter.
pub trait HandOff: Send + Sync {
    fn hand_off<'a>(
        &'a self,
        request: &'a SyncRequest,
        delay: Duration,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

    /// Puts a payload that this invocation received but could not start before its deadline
    /// back, as it came.
    fn resend<'a>(
        &'a self,
        payload: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

    /// Sends a payload made elsewhere (an organization's hub writes the member account into
    /// it), at the earliest after `delay` where the port can wait.
    fn send_after<'a>(
        &'a self,
        payload: &'a str,
        _delay: Duration,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
        self.resend(payload)
    }
}

/// The ledger port: which routes sync-routes wrote (DynamoDB in production, only with
/// deletes on). Boxed, like `HandOff`, so the engine holds one or none.
pub trait Ledger: Send + Sync {
    /// The next hop sync-routes wrote for each of `keys` that it owns; keys it does not own
    /// are absent. An error means ownership is unknown: the caller makes no delete.
    fn owned<'a>(
        &'a self,
        keys: &'a [RouteKey],
    ) -> Pin<Box<dyn Future<Output = Result<Owned, AwsError>> + Send + 'a>>;

    /// Records writes and forgets deletes, in order: of several changes to one route, the
    /// last is what the ledger keeps. Returns how many changes could not be applied (an
    /// unrecorded write stays unowned, so it is never deleted: the safe side).
    fn apply<'a>(
        &'a self,
        changes: &'a [LedgerChange],
    ) -> Pin<Box<dyn Future<Output = Result<(), LedgerWriteError>> + Send + 'a>>;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{failed} ledger changes not applied: {message}")]
pub struct LedgerWriteError {
    pub failed: u32,
    pub message: String,
}
