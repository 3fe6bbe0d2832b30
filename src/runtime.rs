//! Wiring shared by the entry points: AWS clients built once per process, logging, and
//! the deadline every retry must respect.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::retry::RetryConfig;
use aws_config::stalled_stream_protection::StalledStreamProtectionConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use tokio::time::Instant;

use std::sync::Arc;

use crate::adapters::dynamodb::DynamoLedger;
use crate::adapters::ec2::Ec2RouteTables;
use crate::adapters::lambda::LambdaHandOff;
use crate::adapters::sns::SnsNotifier;
use crate::adapters::sqs::SqsContinuation;
use crate::config::Config;
use crate::domain::plan::TargetKind;
use crate::domain::sync::Syncer;
use crate::fleet::Fleet;

pub type AwsSyncer = Syncer<Ec2RouteTables, SnsNotifier>;

/// Time kept back from the invocation's deadline to hand the rest on (`hand_off_timeouts`,
/// 800 ms; the hand-offs go out at once), then publish the notice (`notice_timeouts`,
/// 450 ms) and return the report: a thirtieth of the time left, within these bounds (2 s of
/// a 60 s invocation, 1.5 s of a 10 s one).
const DEADLINE_MARGIN_MAX: Duration = Duration::from_millis(2000);
const DEADLINE_MARGIN_MIN: Duration = Duration::from_millis(1500);
/// With deletes on, the ledger records the request's writes after them, possibly past the
/// deadline, before the hand-off and the notice: each of its calls is bounded by this
/// (`ledger_timeouts`), and the deadline keeps as much more.
const LEDGER_OPERATION_TIMEOUT: Duration = Duration::from_millis(700);

/// The SDK configuration every client starts from. Stalled-stream protection is off: it
/// wraps every response body in a throughput monitor with its own timers, and every call
/// this function makes already has an attempt timeout (EC2 10 s, the calls after the
/// deadline 400-600 ms) that ends a stalled answer sooner.
async fn shared_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
        .load()
        .await
}

/// Builds the engine and its clients once. The SDK's own variables (`AWS_REGION`,
/// `AWS_ENDPOINT_URL`, credentials) apply, so the function can point at an emulator.
pub async fn build(config: &Config) -> (AwsSyncer, Option<String>) {
    let shared = shared_config().await;
    build_with(config, &shared)
}

/// The engines of every account and region the function works in (one, unless it is an
/// organization's hub): on Lambda with its hand-off, else as `build`.
pub async fn fleet(config: &Config, on_lambda: bool) -> Fleet {
    let shared = shared_config().await;
    let (syncer, region) = match on_lambda {
        true => build_for_lambda_with(config, &shared),
        false => build_with(config, &shared),
    };
    Fleet::new(syncer, region, config, shared)
}

/// As `build_with`, on Lambda: what an invocation cannot finish goes back on the function's
/// work queue (`SYNC_QUEUE_URL`), or without one to a new asynchronous invocation of this
/// function (`AWS_LAMBDA_FUNCTION_NAME`, set by Lambda).
pub fn build_for_lambda_with(config: &Config, shared: &SdkConfig) -> (AwsSyncer, Option<String>) {
    let (syncer, region) = build_with(config, shared);
    let syncer = match (&config.queue_url, std::env::var("AWS_LAMBDA_FUNCTION_NAME")) {
        (Some(queue_url), _) => {
            let sqs_config = aws_sdk_sqs::config::Builder::from(shared)
                .retry_config(RetryConfig::standard().with_max_attempts(2))
                .timeout_config(hand_off_timeouts())
                .build();
            let client = aws_sdk_sqs::Client::from_conf(sqs_config);
            syncer.with_hand_off(Arc::new(SqsContinuation::new(client, queue_url.clone())))
        }
        (None, Ok(name)) if !name.is_empty() => {
            let lambda_config = aws_sdk_lambda::config::Builder::from(shared)
                .retry_config(RetryConfig::standard().with_max_attempts(2))
                .timeout_config(hand_off_timeouts())
                .build();
            let client = aws_sdk_lambda::Client::from_conf(lambda_config);
            syncer.with_hand_off(Arc::new(LambdaHandOff::new(client, name)))
        }
        _ => syncer,
    };
    (syncer, region)
}

/// The calls made after the deadline must end within the margin kept for them: each is
/// bounded as a whole, retries included. The hand-off carries the work that is left, so it
/// gets the larger share: a lost one costs the record's redelivery after the visibility
/// timeout (a minute or more), a lost notice only a log line. An attempt may take most of
/// it (a slow answer is better waited for than sent again), and a quick failure (a reset
/// connection) leaves room for a second.
fn hand_off_timeouts() -> TimeoutConfig {
    bounded(Duration::from_millis(600), HAND_OFF_OPERATION_TIMEOUT)
}

/// The notice goes out after the hand-offs, in what is left of the margin.
fn notice_timeouts() -> TimeoutConfig {
    bounded(Duration::from_millis(400), NOTICE_OPERATION_TIMEOUT)
}

fn bounded(attempt: Duration, operation: Duration) -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_millis(300))
        .operation_attempt_timeout(attempt)
        .operation_timeout(operation)
        .build()
}

const HAND_OFF_OPERATION_TIMEOUT: Duration = Duration::from_millis(800);
const NOTICE_OPERATION_TIMEOUT: Duration = Duration::from_millis(450);

/// As `build`, from an SDK configuration made elsewhere (tests point it at an emulator).
pub fn build_with(config: &Config, shared: &SdkConfig) -> (AwsSyncer, Option<String>) {
    let region = shared.region().map(|r| r.to_string());
    let notifier = config.sns_topic_arn.clone().map(|topic| {
        let sns_config = aws_sdk_sns::config::Builder::from(shared)
            .retry_config(RetryConfig::standard().with_max_attempts(2))
            .timeout_config(notice_timeouts())
            .build();
        SnsNotifier::new(aws_sdk_sns::Client::from_conf(sns_config), topic)
    });
    let mut syncer = Syncer::new(
        ec2_route_tables(config, shared),
        notifier,
        config.sync_settings(),
    );
    if let Some(table) = &config.ledger_table {
        let dynamodb_config = aws_sdk_dynamodb::config::Builder::from(shared)
            .retry_config(RetryConfig::standard().with_max_attempts(2))
            .timeout_config(ledger_timeouts())
            .build();
        let client = aws_sdk_dynamodb::Client::from_conf(dynamodb_config);
        syncer = syncer.with_ledger(Arc::new(DynamoLedger::new(client, table.clone())));
    }
    (syncer, region)
}

/// An engine for a member account and region of an organization's hub: its own EC2 client
/// (and so its own pacing of that account's buckets), the hub's notices and ledger.
pub fn assemble_member(config: &Config, ec2_shared: &SdkConfig, hub: &AwsSyncer) -> AwsSyncer {
    let mut syncer = Syncer::new(
        ec2_route_tables(config, ec2_shared),
        hub.notifier().cloned(),
        config.sync_settings(),
    );
    if let Some(ledger) = hub.ledger() {
        syncer = syncer.with_ledger(ledger.clone());
    }
    syncer
}

fn ec2_route_tables(config: &Config, ec2_shared: &SdkConfig) -> Ec2RouteTables {
    let ec2_config = aws_sdk_ec2::config::Builder::from(ec2_shared)
        // `adapters::retry` retries EC2 calls against the invocation's deadline.
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_attempt_timeout(Duration::from_secs(10))
                .build(),
        )
        .build();
    let mut ec2 = Ec2RouteTables::new(aws_sdk_ec2::Client::from_conf(ec2_config));
    if config
        .policy
        .allowed_kinds
        .contains(&TargetKind::VpcEndpoint)
    {
        ec2 = ec2.telling_endpoint_types_apart();
    }
    ec2
}

/// DynamoDB answers in milliseconds; the ledger is consulted before deletes and written after
/// the route writes, possibly past the deadline, so each call is bounded well inside the
/// margin kept for the end of the invocation.
fn ledger_timeouts() -> TimeoutConfig {
    bounded(Duration::from_millis(300), LEDGER_OPERATION_TIMEOUT)
}

/// Epoch milliseconds `after` from now.
pub fn epoch_ms_in(after: Duration) -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    now + after.as_millis() as u64
}

/// The instant to stop retrying, from Lambda's deadline in epoch milliseconds, keeping the
/// margin for what comes after it (`deadline_margin`).
pub fn deadline_from_epoch_ms(deadline_ms: u64, config: &Config) -> Instant {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let remaining = Duration::from_millis(deadline_ms.saturating_sub(now_ms));
    let usable = remaining
        .checked_sub(deadline_margin(remaining, config))
        .unwrap_or(remaining / 2);
    Instant::now() + usable
}

/// A thirtieth of the time left, within `DEADLINE_MARGIN_MIN`..`DEADLINE_MARGIN_MAX`, and with
/// the ledger on at least `LEDGER_OPERATION_TIMEOUT` more than the minimum: every call after the deadline
/// must end before Lambda's.
fn deadline_margin(remaining: Duration, config: &Config) -> Duration {
    let floor = match config.ledger_table {
        Some(_) => DEADLINE_MARGIN_MIN + LEDGER_OPERATION_TIMEOUT,
        None => DEADLINE_MARGIN_MIN,
    };
    (remaining / 30).clamp(floor, DEADLINE_MARGIN_MAX.max(floor))
}

/// JSON lines on stderr (stdout stays clean for `invoke`'s report). The level comes from
/// `RUST_LOG`, else Lambda's `AWS_LAMBDA_LOG_LEVEL`, else info.
///
/// Ours rather than `lambda_runtime::tracing::init_default_subscriber`: that one writes text
/// unless the function is set to JSON logs, and then nests each event's fields under
/// `fields`, while the CDK app's metric filters read `$.decision` at the top level; and it
/// writes to stdout, which `invoke` keeps for the report.
pub fn init_logging() {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .or_else(|| {
            std::env::var("AWS_LAMBDA_LOG_LEVEL")
                .ok()
                .map(|l| l.to_lowercase())
        })
        .unwrap_or_else(|| "info".to_owned());
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Config {
        Config::from_pairs(vars).expect("a valid configuration")
    }

    /// The calls after the deadline fit the margin: the hand-off (800 ms) and the notice
    /// (450 ms) in 1.5 s, and with the ledger its write (700 ms) besides, whatever the timeout.
    #[test]
    fn the_margin_keeps_room_for_every_call_after_the_deadline() {
        assert!(
            HAND_OFF_OPERATION_TIMEOUT + NOTICE_OPERATION_TIMEOUT + Duration::from_millis(200)
                <= DEADLINE_MARGIN_MIN
        );
        let plain = config(&[]);
        let with_ledger = config(&[
            ("SYNC_PROPAGATE_DELETES", "true"),
            ("SYNC_DESTINATIONS", "10.0.0.0/8"),
            ("SYNC_LEDGER_TABLE", "sync-routes-ledger"),
        ]);
        assert!(with_ledger.ledger_table.is_some());
        let ten_s = Duration::from_secs(10);
        let sixty_s = Duration::from_secs(60);
        assert_eq!(deadline_margin(ten_s, &plain), Duration::from_millis(1500));
        assert_eq!(
            deadline_margin(sixty_s, &plain),
            Duration::from_millis(2000)
        );
        assert_eq!(
            deadline_margin(ten_s, &with_ledger),
            Duration::from_millis(2200)
        );
        assert_eq!(
            deadline_margin(sixty_s, &with_ledger),
            Duration::from_millis(2200)
        );
        assert_eq!(
            deadline_margin(Duration::from_secs(900), &with_ledger),
            Duration::from_millis(2200)
        );
    }
}
