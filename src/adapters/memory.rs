//! In-memory adapters: EC2's route tables and SNS as plain values, with EC2's answers to
//! conflicting writes (`RouteAlreadyExists`, no route to replace or delete). They make the
//! engine testable without an SDK or an emulator, and count every call so a test can
//! assert the cost of a request.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::domain::notice::Notice;
use crate::domain::ownership::{LedgerChange, LedgerEntry, Owned, RouteKey};
use crate::domain::plan::{Destination, Route, RouteOrigin, RouteState, RouteTable};
use crate::domain::ports::{Ledger, LedgerWriteError};
use crate::domain::request::SyncRequest;
use crate::domain::sync::{
    AwsError, HandOff, Notifier, RetryClass, RouteTables, RouteWrite, WriteError, WriteMode,
    WriteOutcome,
};

/// Applies one write to `tables` as EC2 would, or answers as EC2 would refuse it.
pub fn apply_write(tables: &mut [RouteTable], write: &RouteWrite) -> Result<(), WriteError> {
    let Some(table) = tables.iter_mut().find(|t| t.id == write.table_id) else {
        return Err(WriteError::TableNotFound);
    };
    // Our writes touch only the static route; a propagated one beside it stays.
    let existing = table
        .routes
        .iter()
        .position(|r| r.destination == write.destination && r.origin == RouteOrigin::CreateRoute);
    match (write.mode, existing, &write.target) {
        (WriteMode::Create, Some(_), _) => Err(WriteError::AlreadyExists),
        (WriteMode::Replace | WriteMode::Delete, None, _) => Err(WriteError::NotFound),
        (WriteMode::Delete, Some(i), _) => {
            table.routes.remove(i);
            Ok(())
        }
        (WriteMode::Replace, Some(i), Some(target)) => {
            table.routes[i].target = target.clone();
            table.routes[i].state = RouteState::Active;
            Ok(())
        }
        (WriteMode::Create, _, Some(target)) => {
            table.routes.push(Route {
                destination: write.destination.clone(),
                target: target.clone(),
                state: RouteState::Active,
                origin: RouteOrigin::CreateRoute,
            });
            Ok(())
        }
        (_, _, None) => Err(WriteError::Aws(AwsError {
            operation: "route write",
            code: Some("MissingParameter".into()),
            message: "a create or replace needs a next hop".into(),
            retry: RetryClass::Permanent,
        })),
    }
}

/// EC2 in memory. Implemented on a reference too, so a test keeps it to inspect and change.
#[derive(Default)]
pub struct MemoryEc2 {
    pub tables: Mutex<Vec<RouteTable>>,
    pub table_reads: AtomicU32,
    pub vpc_reads: AtomicU32,
    pub region_reads: AtomicU32,
    pub writes: AtomicU32,
    pub max_in_flight: AtomicU32,
    in_flight: AtomicU32,
    /// Every write fails with this, if set (a throttle is held until the deadline, as the
    /// retry loop would).
    pub write_error: Mutex<Option<WriteError>>,
    /// Every read fails with this, if set.
    pub read_error: Mutex<Option<AwsError>>,
    /// How long each write takes.
    pub write_latency: Duration,
    /// How long a write stays invisible to reads (EC2's reads lag its writes). Writes
    /// become visible in order: a read shows a table as it was before its oldest write
    /// that is not visible yet.
    pub read_lag: Duration,
    /// Each table as it was before each of its writes, with when the write was made.
    history: Mutex<Vec<(Instant, RouteTable)>>,
    /// Runs just before each write reaches the tables (to stage a race: a failback, a
    /// table deleted between the read and the write).
    #[allow(clippy::type_complexity)]
    pub before_write: Mutex<Option<Box<dyn FnMut(&mut Vec<RouteTable>, &RouteWrite) + Send>>>,
}

impl MemoryEc2 {
    pub fn new(tables: Vec<RouteTable>) -> Self {
        Self {
            tables: Mutex::new(tables),
            ..Self::default()
        }
    }

    /// (reads of one table, reads of VPCs, writes) since the last call.
    pub fn take_counts(&self) -> (u32, u32, u32) {
        (
            self.table_reads.swap(0, Ordering::SeqCst),
            self.vpc_reads.swap(0, Ordering::SeqCst) + self.region_reads.swap(0, Ordering::SeqCst),
            self.writes.swap(0, Ordering::SeqCst),
        )
    }

    pub fn snapshot(&self) -> Vec<RouteTable> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<RouteTable>> {
        self.tables.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn read<T>(&self, pick: impl FnOnce(&[RouteTable]) -> T) -> Result<T, AwsError> {
        if let Some(error) = self
            .read_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            return Err(error);
        }
        let mut tables = self.lock().clone();
        if !self.read_lag.is_zero() {
            let now = Instant::now();
            let history = self.history.lock().unwrap_or_else(|p| p.into_inner());
            for table in &mut tables {
                // The oldest write to this table not visible yet decides what a read shows.
                if let Some((_, before)) = history
                    .iter()
                    .find(|(at, t)| t.id == table.id && now.duration_since(*at) < self.read_lag)
                {
                    table.routes = before.routes.clone();
                }
            }
        }
        Ok(pick(&tables))
    }

    /// Changes the tables as another writer would (a failover script, Terraform), with the
    /// same lag before reads show it.
    pub fn change(&self, change: impl FnOnce(&mut Vec<RouteTable>)) {
        let mut tables = self.lock();
        let before = tables.clone();
        change(&mut tables);
        self.remember_writes(&before, &tables);
    }

    fn remember_writes(&self, before: &[RouteTable], after: &[RouteTable]) {
        if self.read_lag.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut history = self.history.lock().unwrap_or_else(|p| p.into_inner());
        history.retain(|(at, _)| now.duration_since(*at) < self.read_lag);
        for old in before {
            if after
                .iter()
                .any(|new| new.id == old.id && new.routes != old.routes)
            {
                history.push((now, old.clone()));
            }
        }
    }
}

impl RouteTables for MemoryEc2 {
    async fn table(&self, id: &str, _: Instant) -> Result<Option<RouteTable>, AwsError> {
        self.table_reads.fetch_add(1, Ordering::SeqCst);
        self.read(|tables| tables.iter().find(|t| t.id == id).cloned())
    }

    async fn vpc_tables(&self, vpcs: &[String], _: Instant) -> Result<Vec<RouteTable>, AwsError> {
        self.vpc_reads.fetch_add(1, Ordering::SeqCst);
        self.read(|tables| {
            tables
                .iter()
                .filter(|t| vpcs.contains(&t.vpc_id))
                .cloned()
                .collect()
        })
    }

    async fn all_tables(&self, _: Instant) -> Result<Vec<RouteTable>, AwsError> {
        self.region_reads.fetch_add(1, Ordering::SeqCst);
        self.read(<[RouteTable]>::to_vec)
    }

    async fn write_route(
        &self,
        write: &RouteWrite,
        deadline: Instant,
    ) -> Result<WriteOutcome, WriteError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(self.write_latency).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        let scripted = self
            .write_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(error) = scripted {
            if matches!(&error, WriteError::Aws(e) if e.retry == RetryClass::Throttled) {
                tokio::time::sleep_until(deadline).await;
            }
            return Err(error);
        }
        if write.dry_run {
            // EC2 checks a DryRun call without making it; conflicts still show.
            let mut copy = self.snapshot();
            apply_write(&mut copy, write)?;
            return Ok(WriteOutcome::DryRunPassed);
        }
        let mut tables = self.lock();
        let before = tables.clone();
        if let Some(hook) = self
            .before_write
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
            hook(&mut tables, write);
        }
        let result = apply_write(&mut tables, write).map(|()| WriteOutcome::Written);
        self.remember_writes(&before, &tables);
        result
    }
}

impl<T: RouteTables + Send> RouteTables for &T {
    async fn table(&self, id: &str, deadline: Instant) -> Result<Option<RouteTable>, AwsError> {
        (**self).table(id, deadline).await
    }

    async fn vpc_tables(
        &self,
        vpcs: &[String],
        deadline: Instant,
    ) -> Result<Vec<RouteTable>, AwsError> {
        (**self).vpc_tables(vpcs, deadline).await
    }

    async fn all_tables(&self, deadline: Instant) -> Result<Vec<RouteTable>, AwsError> {
        (**self).all_tables(deadline).await
    }

    async fn write_route(
        &self,
        write: &RouteWrite,
        deadline: Instant,
    ) -> Result<WriteOutcome, WriteError> {
        (**self).write_route(write, deadline).await
    }

    fn throttled_calls(&self) -> u32 {
        (**self).throttled_calls()
    }
}

/// SNS in memory: keeps every notice.
#[derive(Default)]
pub struct MemoryNotifier {
    pub sent: Mutex<Vec<Notice>>,
}

impl Notifier for MemoryNotifier {
    async fn publish(&self, notice: &Notice) -> Result<(), String> {
        self.sent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(notice.clone());
        Ok(())
    }
}

impl<T: Notifier + Send> Notifier for &T {
    async fn publish(&self, notice: &Notice) -> Result<(), String> {
        (**self).publish(notice).await
    }
}

/// The hand-off in memory: keeps every continuation asked for (with its delay) and every
/// payload sent back, or refuses them all.
#[derive(Default)]
pub struct MemoryHandOff {
    pub requests: Mutex<Vec<SyncRequest>>,
    pub delays: Mutex<Vec<Duration>>,
    pub resent: Mutex<Vec<String>>,
    pub refuse: Option<String>,
}

impl HandOff for MemoryHandOff {
    fn hand_off<'a>(
        &'a self,
        request: &'a SyncRequest,
        delay: Duration,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            if let Some(why) = &self.refuse {
                return Err(why.clone());
            }
            self.requests
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(request.clone());
            self.delays
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(delay);
            Ok(())
        })
    }

    fn resend<'a>(
        &'a self,
        payload: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            if let Some(why) = &self.refuse {
                return Err(why.clone());
            }
            self.resent
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(payload.to_owned());
            Ok(())
        })
    }
}

/// The ledger in memory: the routes recorded, the calls made, and switches that make reads
/// or writes fail as an unreachable DynamoDB would.
#[derive(Default)]
pub struct MemoryLedger {
    pub entries: Mutex<HashMap<RouteKey, LedgerEntry>>,
    pub reads: AtomicU32,
    pub writes: AtomicU32,
    pub fail_reads: AtomicBool,
    pub fail_writes: AtomicBool,
}

impl MemoryLedger {
    /// A ledger that already owns these routes (as if sync-routes had written them).
    pub fn owning(entries: impl IntoIterator<Item = LedgerEntry>) -> Self {
        let ledger = Self::default();
        ledger.lock().extend(
            entries
                .into_iter()
                .map(|e| ((e.table_id.clone(), e.destination.clone()), e)),
        );
        ledger
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<RouteKey, LedgerEntry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next hop recorded for a route, if it is owned.
    pub fn next_hop(&self, table_id: &str, destination: &Destination) -> Option<String> {
        self.lock()
            .get(&(table_id.to_owned(), destination.clone()))
            .map(|e| e.next_hop.id.clone())
    }
}

impl Ledger for MemoryLedger {
    fn owned<'a>(
        &'a self,
        keys: &'a [RouteKey],
    ) -> Pin<Box<dyn Future<Output = Result<Owned, AwsError>> + Send + 'a>> {
        Box::pin(async move {
            self.reads.fetch_add(1, Ordering::Relaxed);
            if self.fail_reads.load(Ordering::Relaxed) {
                return Err(AwsError {
                    operation: "BatchGetItem",
                    code: Some("ResourceNotFoundException".into()),
                    message: "the ledger is unreachable".into(),
                    retry: RetryClass::Permanent,
                });
            }
            let entries = self.lock();
            Ok(keys
                .iter()
                .filter_map(|key| {
                    entries
                        .get(key)
                        .map(|e| (key.clone(), e.next_hop.id.clone()))
                })
                .collect())
        })
    }

    fn apply<'a>(
        &'a self,
        changes: &'a [LedgerChange],
    ) -> Pin<Box<dyn Future<Output = Result<(), LedgerWriteError>> + Send + 'a>> {
        Box::pin(async move {
            self.writes.fetch_add(1, Ordering::Relaxed);
            if self.fail_writes.load(Ordering::Relaxed) {
                return Err(LedgerWriteError {
                    failed: changes.len() as u32,
                    message: "the ledger is unreachable".into(),
                });
            }
            let mut entries = self.lock();
            for change in changes {
                match change {
                    LedgerChange::Record(entry) => {
                        entries.insert(change.key(), entry.clone());
                    }
                    LedgerChange::Forget(key) => {
                        entries.remove(key);
                    }
                }
            }
            Ok(())
        })
    }
}
