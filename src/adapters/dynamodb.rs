//! DynamoDB: the ledger of the routes sync-routes wrote (`SYNC_LEDGER_TABLE`, created by the
//! CDK app with `propagateDeletes`). One item per route in a custom table, keyed by
//! `RouteTableId` and `Destination`, holding the next hop written, when, and what caused it.
//! Two calls only, so the role needs only them: BatchGetItem (ownership of a plan's deletes)
//! and BatchWriteItem (records and forgets).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_dynamodb::types::{
    AttributeValue, DeleteRequest, KeysAndAttributes, PutRequest, WriteRequest,
};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, SecondsFormat, Utc};

use crate::domain::ownership::{LedgerChange, Owned, RouteKey};
use crate::domain::plan::Destination;
use crate::domain::ports::{AwsError, Ledger, LedgerWriteError, RetryClass};

/// DynamoDB's limits per call.
const MAX_GET_KEYS: usize = 100;
const MAX_WRITE_ITEMS: usize = 25;
/// Rounds of unprocessed items (DynamoDB returns them when a partition is busy) retried
/// before giving up: ownership unknown means no delete, a record lost means unowned.
const UNPROCESSED_ROUNDS: u32 = 4;

pub struct DynamoLedger {
    client: Client,
    table: String,
}

impl DynamoLedger {
    pub fn new(client: Client, table: String) -> Self {
        Self { client, table }
    }

    async fn owned_chunk(&self, keys: &[RouteKey]) -> Result<Owned, AwsError> {
        let mut owned = Owned::new();
        let mut pending = Some(
            KeysAndAttributes::builder()
                .set_keys(Some(keys.iter().map(item_key).collect()))
                .projection_expression("RouteTableId, Destination, NextHop")
                // Another invocation may have recorded a write a moment ago.
                .consistent_read(true)
                .build()
                .map_err(|e| build_error("BatchGetItem", e))?,
        );
        for round in 0..UNPROCESSED_ROUNDS {
            let Some(request) = pending.take() else {
                break;
            };
            if round > 0 {
                tokio::time::sleep(Duration::from_millis(25 << round)).await;
            }
            let output = self
                .client
                .batch_get_item()
                .request_items(&self.table, request)
                .send()
                .await
                .map_err(|e| aws_error("BatchGetItem", &e))?;
            for item in output
                .responses
                .unwrap_or_default()
                .remove(&self.table)
                .unwrap_or_default()
            {
                if let (Some(table), Some(destination), Some(next_hop)) = (
                    text(&item, "RouteTableId"),
                    text(&item, "Destination").and_then(parse_destination),
                    text(&item, "NextHop"),
                ) {
                    owned.insert((table.to_owned(), destination), next_hop.to_owned());
                }
            }
            pending = output
                .unprocessed_keys
                .and_then(|mut left| left.remove(&self.table))
                .filter(|left| !left.keys.is_empty());
        }
        match pending {
            None => Ok(owned),
            Some(left) => Err(AwsError {
                operation: "BatchGetItem",
                code: Some("UnprocessedKeys".into()),
                message: format!(
                    "{} keys still unprocessed after {UNPROCESSED_ROUNDS} rounds",
                    left.keys.len()
                ),
                retry: RetryClass::Throttled,
            }),
        }
    }

    /// Writes one chunk; returns how many of its changes were not applied, and why.
    async fn apply_chunk(&self, changes: &[&LedgerChange]) -> Result<(), LedgerWriteError> {
        let mut pending: Vec<WriteRequest> = Vec::with_capacity(changes.len());
        for change in changes {
            pending.push(write_request(change).map_err(|e| LedgerWriteError {
                failed: changes.len() as u32,
                message: e.to_string(),
            })?);
        }
        for round in 0..UNPROCESSED_ROUNDS {
            if pending.is_empty() {
                return Ok(());
            }
            if round > 0 {
                tokio::time::sleep(Duration::from_millis(25 << round)).await;
            }
            let output = self
                .client
                .batch_write_item()
                .request_items(&self.table, pending.clone())
                .send()
                .await
                .map_err(|e| LedgerWriteError {
                    failed: pending.len() as u32,
                    message: aws_error("BatchWriteItem", &e).to_string(),
                })?;
            pending = output
                .unprocessed_items
                .and_then(|mut left| left.remove(&self.table))
                .unwrap_or_default();
        }
        match pending.len() {
            0 => Ok(()),
            n => Err(LedgerWriteError {
                failed: n as u32,
                message: format!("still unprocessed after {UNPROCESSED_ROUNDS} rounds"),
            }),
        }
    }
}

impl Ledger for DynamoLedger {
    fn owned<'a>(
        &'a self,
        keys: &'a [RouteKey],
    ) -> Pin<Box<dyn Future<Output = Result<Owned, AwsError>> + Send + 'a>> {
        Box::pin(async move {
            // BatchGetItem refuses a request that names one key twice.
            let mut unique: Vec<RouteKey> = keys.to_vec();
            unique.sort();
            unique.dedup();
            let mut owned = Owned::new();
            for chunk in unique.chunks(MAX_GET_KEYS) {
                owned.extend(self.owned_chunk(chunk).await?);
            }
            Ok(owned)
        })
    }

    fn apply<'a>(
        &'a self,
        changes: &'a [LedgerChange],
    ) -> Pin<Box<dyn Future<Output = Result<(), LedgerWriteError>> + Send + 'a>> {
        Box::pin(async move {
            // BatchWriteItem refuses a request that names one key twice: the last change of
            // a key is what its table holds.
            let mut last: BTreeMap<RouteKey, &LedgerChange> = BTreeMap::new();
            for change in changes {
                last.insert(change.key(), change);
            }
            let unique: Vec<&LedgerChange> = last.into_values().collect();
            let mut failed = 0;
            let mut first_error = None;
            for chunk in unique.chunks(MAX_WRITE_ITEMS) {
                if let Err(error) = self.apply_chunk(chunk).await {
                    failed += error.failed;
                    first_error.get_or_insert(error.message);
                }
            }
            match first_error {
                None => Ok(()),
                Some(message) => Err(LedgerWriteError { failed, message }),
            }
        })
    }
}

fn item_key((table, destination): &RouteKey) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("RouteTableId".to_owned(), AttributeValue::S(table.clone())),
        (
            "Destination".to_owned(),
            AttributeValue::S(destination.to_string()),
        ),
    ])
}

fn write_request(
    change: &LedgerChange,
) -> Result<WriteRequest, aws_sdk_dynamodb::error::BuildError> {
    Ok(match change {
        LedgerChange::Record(entry) => {
            let mut item = item_key(&(entry.table_id.clone(), entry.destination.clone()));
            let written_at: DateTime<Utc> = entry.written_at.into();
            for (name, value) in [
                ("VpcId", entry.vpc_id.clone()),
                ("NextHop", entry.next_hop.id.clone()),
                ("NextHopKind", entry.next_hop.kind.name().to_owned()),
                (
                    "WrittenAt",
                    written_at.to_rfc3339_opts(SecondsFormat::Millis, true),
                ),
                ("Request", entry.request.clone()),
            ] {
                item.insert(name.to_owned(), AttributeValue::S(value));
            }
            WriteRequest::builder()
                .put_request(PutRequest::builder().set_item(Some(item)).build()?)
                .build()
        }
        LedgerChange::Forget(key) => WriteRequest::builder()
            .delete_request(
                DeleteRequest::builder()
                    .set_key(Some(item_key(key)))
                    .build()?,
            )
            .build(),
    })
}

fn text<'a>(item: &'a HashMap<String, AttributeValue>, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

fn parse_destination(text: &str) -> Option<Destination> {
    if text.starts_with("pl-") {
        Some(Destination::PrefixList(text.to_owned()))
    } else {
        text.parse().ok().map(Destination::Cidr)
    }
}

fn aws_error<E, R>(
    operation: &'static str,
    error: &aws_sdk_dynamodb::error::SdkError<E, R>,
) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let code = error.code().map(str::to_owned);
    let retry = match code.as_deref() {
        Some(
            "ProvisionedThroughputExceededException"
            | "ThrottlingException"
            | "RequestLimitExceeded",
        ) => RetryClass::Throttled,
        Some(_) => RetryClass::Permanent,
        None => RetryClass::Transient,
    };
    AwsError {
        operation,
        code,
        message: DisplayErrorContext(error).to_string(),
        retry,
    }
}

fn build_error(operation: &'static str, error: aws_sdk_dynamodb::error::BuildError) -> AwsError {
    AwsError {
        operation,
        code: None,
        message: error.to_string(),
        retry: RetryClass::Permanent,
    }
}
