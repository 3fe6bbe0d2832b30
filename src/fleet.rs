//! An organization's hub (`SYNC_MEMBER_ROLE_NAME` set): one deployment that works in many
//! accounts and regions. Each payload is worked where it belongs: an event forwarded from a
//! member keeps its own `account` and `region`, a manual request may name them. Work in
//! another account goes through that account's member role (AssumeRole with the external
//! id); each (account, region) has an engine of its own, so its EC2 client, its pacing of
//! EC2's buckets (which are per account and region) and its caches are its own, while the
//! notices, the work queue and the ledger stay the hub's. Without a role name this is the
//! one engine it always was, at no cost.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_config::sts::AssumeRoleProvider;
use aws_config::{Region, SdkConfig};
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{future, ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use futures::stream::{self, StreamExt};
use tokio::time::Instant;

use crate::adapters::trigger::{self, hand_off_payload, Location, Trigger};
use crate::config::{Config, Members};
use crate::domain::ports::HandOff;
use crate::domain::report::{AccountWork, Outcome, Report};
use crate::domain::request::{RequestSource, Subject, SyncRequest};
use crate::handler;
use crate::runtime::{self, AwsSyncer};

/// Assumed credentials are refreshed this long before they expire (an hour by default), so
/// that no call goes out with credentials about to lapse.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(300);

/// Member sweeps queued at once by a hub's sweep.
const QUEUED_AT_ONCE: usize = 16;

pub struct Fleet {
    home: AwsSyncer,
    home_region: Option<String>,
    hub: Option<Hub>,
}

struct Hub {
    members: Members,
    home_region: String,
    config: Config,
    /// The hub's own configuration: its credentials (the function's role) for STS, SNS, the
    /// queue and the ledger.
    shared: SdkConfig,
    /// The hub's work queue, where member engines' continuations go too.
    queue: Option<Arc<dyn HandOff>>,
    roles: tokio::sync::Mutex<HashMap<String, Arc<MemberRole>>>,
    engines: tokio::sync::Mutex<HashMap<(String, String), Arc<AwsSyncer>>>,
}

/// Where a payload is worked.
enum Place {
    Home,
    Elsewhere(Arc<AwsSyncer>, String),
}

impl Fleet {
    /// `home` is the engine of the function's own account and region; `shared` its SDK
    /// configuration, from which member engines are made.
    pub fn new(
        home: AwsSyncer,
        home_region: Option<String>,
        config: &Config,
        shared: SdkConfig,
    ) -> Self {
        let hub = config.members.clone().map(|members| Hub {
            home_region: home_region.clone().unwrap_or_else(|| "us-east-1".into()),
            members,
            config: config.clone(),
            shared,
            queue: home.hand_off_port().cloned(),
            roles: Default::default(),
            engines: Default::default(),
        });
        let home = match &hub {
            Some(hub) => home.in_account(&hub.members.home_account, &hub.home_region),
            None => home,
        };
        Self {
            home,
            home_region,
            hub,
        }
    }

    /// Handles one payload where it belongs; a hub's scheduled sweep also covers every
    /// member account and region.
    pub async fn handle(&self, payload: &str, deadline: Instant) -> Report {
        let region = self.home_region.as_deref();
        let Some(hub) = &self.hub else {
            return handler::handle(&self.home, region, payload, deadline).await;
        };
        let location = match trigger::location_of(payload) {
            Ok(location) => location,
            Err(error) => {
                tracing::warn!(decision = "rejected", error = %error);
                return handler::finish(Report::without_plan(
                    Outcome::Rejected,
                    "invalid-input",
                    error.to_string(),
                ));
            }
        };
        match hub.place(&location, &self.home).await {
            Ok(Place::Home) => {
                // The members' sweeps go out first, so that they run while the hub sweeps its
                // own account.
                let members = match scheduled_sweep(payload, region) {
                    Some(dry_run) => self.sweep_members(hub, dry_run, deadline).await,
                    None => Vec::new(),
                };
                let mut report = handler::handle(&self.home, region, payload, deadline).await;
                tell_member_sweeps(&mut report, members);
                report
            }
            Ok(Place::Elsewhere(engine, region)) => {
                handler::handle(&engine, Some(&region), payload, deadline).await
            }
            Err(refusal) => handler::finish(refusal.report()),
        }
    }

    /// A batch from the work queue: its records grouped by where they are worked, each
    /// group handled by its engine (route events coalesced per main table as always). The
    /// records of an account whose role cannot be assumed fail (SQS delivers them again, then
    /// keeps them in the dead-letter queue); nothing else does.
    pub async fn handle_batch(&self, batch: SqsEvent, deadline: Instant) -> SqsBatchResponse {
        let region = self.home_region.as_deref();
        let Some(hub) = &self.hub else {
            return handler::handle_batch(&self.home, region, batch, deadline).await;
        };
        let mut groups: BTreeMap<Location, Vec<SqsMessage>> = BTreeMap::new();
        let mut sweeps = Vec::new();
        for record in batch.records {
            let body = record.body.as_deref().unwrap_or_default();
            // A record that names no valid place is the home engine's to reject.
            let location = trigger::location_of(body).unwrap_or_default();
            let location = hub.normalize(&location);
            if hub.is_home(&location) && scheduled_sweep(body, region).is_some() {
                sweeps.push(record);
            } else {
                groups.entry(location).or_default().push(record);
            }
        }
        let mut failed: Vec<String> = Vec::new();
        for record in sweeps {
            let report = self
                .handle(record.body.as_deref().unwrap_or_default(), deadline)
                .await;
            if report.is_failure() && report.calls.hand_offs == 0 {
                failed.extend(record.message_id);
            }
        }
        let responses: Vec<SqsBatchResponse> = stream::iter(groups)
            .map(|(location, records)| async move {
                let ids: Vec<String> = records
                    .iter()
                    .filter_map(|r| r.message_id.clone())
                    .collect();
                let mut group = SqsEvent::default();
                group.records = records;
                match hub.place(&location, &self.home).await {
                    Ok(Place::Home) => {
                        handler::handle_batch(&self.home, region, group, deadline).await
                    }
                    Ok(Place::Elsewhere(engine, region)) => {
                        handler::handle_batch(&engine, Some(&region), group, deadline).await
                    }
                    Err(refusal) => {
                        handler::finish(refusal.report());
                        let mut response = SqsBatchResponse::default();
                        for id in ids {
                            response.add_failure(id);
                        }
                        response
                    }
                }
            })
            .buffer_unordered(4)
            .collect()
            .await;
        let mut response = SqsBatchResponse::default();
        for id in failed {
            response.add_failure(id);
        }
        for part in responses {
            response
                .batch_item_failures
                .extend(part.batch_item_failures);
        }
        response
    }

    /// The hub's scheduled sweep covers each member account in each member region: each
    /// (account, region) is queued as a reconcile of its own, so that a sweep of hundreds of
    /// accounts never has to fit in one invocation and each is paced by its own buckets.
    /// Without a queue (a run from a laptop) they run here, one after the other.
    async fn sweep_members(&self, hub: &Hub, dry_run: bool, deadline: Instant) -> Vec<AccountWork> {
        let locations = hub.sweep_targets();
        let payload = |location: &Location| {
            let request = serde_json::json!({"reconcile": true, "dry-run": dry_run});
            trigger::stamp(&request.to_string(), location)
        };
        match self.home.hand_off_port() {
            Some(queue) => {
                stream::iter(locations)
                    .map(|location| {
                        let body = payload(&location);
                        async move {
                            let (outcome, message) = match queue.resend(&body).await {
                                Ok(()) => ("queued".to_owned(), "reconcile queued".to_owned()),
                                Err(error) => (
                                    "failed".to_owned(),
                                    format!("could not queue its reconcile: {error}"),
                                ),
                            };
                            account_work(&location, outcome, message)
                        }
                    })
                    .buffer_unordered(QUEUED_AT_ONCE)
                    .collect()
                    .await
            }
            None => {
                let mut done = Vec::new();
                for location in locations {
                    let body = payload(&location);
                    let member = match hub.place(&location, &self.home).await {
                        Ok(Place::Elsewhere(engine, region)) => {
                            handler::handle(&engine, Some(&region), &body, deadline).await
                        }
                        Ok(Place::Home) => continue,
                        Err(refusal) => handler::finish(refusal.report()),
                    };
                    done.push(account_work(
                        &location,
                        member.outcome.name().to_owned(),
                        member.message,
                    ));
                }
                done
            }
        }
    }
}

/// The report of the hub's own sweep says what became of the members' sweeps.
fn tell_member_sweeps(report: &mut Report, mut done: Vec<AccountWork>) {
    if done.is_empty() {
        return;
    }
    // Queued in no particular order; read in one.
    done.sort_by(|a, b| (&a.account, &a.region).cmp(&(&b.account, &b.region)));
    let failed = done.iter().filter(|w| w.outcome == "failed").count();
    let failed_note = match failed {
        0 => String::new(),
        n => format!(", {n} failed"),
    };
    report.message.push_str(&format!(
        "; {} member account-regions swept{failed_note}",
        done.len()
    ));
    if failed > 0 {
        // The schedule's retry sweeps again, the member accounts that failed included.
        report.outcome = Outcome::Failed;
    }
    report.accounts = done;
}

fn account_work(location: &Location, outcome: String, message: String) -> AccountWork {
    AccountWork {
        account: location.account.clone().unwrap_or_default(),
        region: location.region.clone().unwrap_or_default(),
        outcome,
        message,
    }
}

/// Whether a payload is the scheduled sweep, and if so whether it is a dry run.
fn scheduled_sweep(payload: &str, region: Option<&str>) -> Option<bool> {
    match trigger::parse(payload, region) {
        Ok(Trigger::Sync(SyncRequest {
            subject: Subject::Reconcile { vpc_id: None, .. },
            source: RequestSource::Schedule,
            dry_run,
        })) => Some(dry_run),
        _ => None,
    }
}

/// Why a payload's account cannot be worked in: it names the account and the role.
struct Refusal {
    account: String,
    region: String,
    message: String,
}

impl Refusal {
    fn report(self) -> Report {
        tracing::error!(decision = "member-refused", account = %self.account, region = %self.region, error = %self.message);
        let mut report = Report::without_plan(Outcome::Failed, "member-role", self.message);
        report.account = Some(self.account);
        report.region = Some(self.region);
        report
    }
}

impl Hub {
    fn normalize(&self, location: &Location) -> Location {
        Location {
            account: Some(
                location
                    .account
                    .clone()
                    .unwrap_or_else(|| self.members.home_account.clone()),
            ),
            region: Some(
                location
                    .region
                    .clone()
                    .unwrap_or_else(|| self.home_region.clone()),
            ),
        }
    }

    fn is_home(&self, location: &Location) -> bool {
        location.account.as_deref() == Some(&self.members.home_account)
            && location.region.as_deref() == Some(&self.home_region)
    }

    /// Every member account (`SYNC_MEMBER_ACCOUNTS`) in every member region
    /// (`SYNC_MEMBER_REGIONS`, default the hub's own).
    fn sweep_targets(&self) -> Vec<Location> {
        let regions = match self.members.regions.as_slice() {
            [] => std::slice::from_ref(&self.home_region),
            regions => regions,
        };
        let accounts = self.members.accounts.as_deref().unwrap_or_default();
        accounts
            .iter()
            .filter(|a| **a != self.members.home_account)
            .flat_map(|account| {
                regions.iter().map(move |region| Location {
                    account: Some(account.clone()),
                    region: Some(region.clone()),
                })
            })
            .collect()
    }

    fn role_arn(&self, account: &str, region: &str) -> String {
        format!(
            "arn:{}:iam::{account}:role/{}",
            partition(region),
            self.members.role_name
        )
    }

    /// The engine for a location: the function's own, or one for that account and region
    /// (made once, its member role's credentials checked on every use and refreshed before
    /// they expire).
    async fn place(&self, location: &Location, home: &AwsSyncer) -> Result<Place, Refusal> {
        let location = self.normalize(location);
        if self.is_home(&location) {
            return Ok(Place::Home);
        }
        let account = location.account.clone().unwrap_or_default();
        let region = location.region.clone().unwrap_or_default();
        let refusal = |message: String| Refusal {
            account: account.clone(),
            region: region.clone(),
            message,
        };
        if account == self.members.home_account {
            // The hub's role writes routes in its own region only, and member roles are for
            // other accounts: a change there is a separate deployment's (README).
            return Err(refusal(format!(
                "the hub works in its own account {account} only in its own region {}; deploy a sync-routes stack in {region} for this account's routes there, nothing was done",
                self.home_region
            )));
        }
        if let Some(accounts) = &self.members.accounts {
            if !accounts.contains(&account) {
                return Err(refusal(format!(
                    "account {account} is not in SYNC_MEMBER_ACCOUNTS: the hub does not assume {} there, and did nothing",
                    self.role_arn(&account, &region)
                )));
            }
        }
        let role = self.role(&account, &region).await;
        if let Err(error) = role.credentials().await {
            return Err(refusal(format!(
                "could not assume {} in account {account} ({}): {error}; nothing was done in that account",
                role.role_arn,
                match self.members.external_id {
                    Some(_) => "with SYNC_MEMBER_EXTERNAL_ID",
                    None => "without an external id",
                }
            )));
        }
        let mut engines = self.engines.lock().await;
        let key = (account.clone(), region.clone());
        if let Some(engine) = engines.get(&key) {
            return Ok(Place::Elsewhere(engine.clone(), region));
        }
        let mut ec2_config = self.shared.to_builder();
        ec2_config.set_region(Some(Region::new(region.clone())));
        ec2_config
            .set_credentials_provider(Some(SharedCredentialsProvider::new(RoleCredentials(role))));
        let mut engine = runtime::assemble_member(&self.config, &ec2_config.build(), home)
            .in_account(&account, &region);
        if let Some(queue) = &self.queue {
            engine = engine.with_hand_off(Arc::new(Stamped {
                inner: queue.clone(),
                location: location.clone(),
            }));
        }
        let engine = Arc::new(engine);
        engines.insert(key, engine.clone());
        tracing::info!(decision = "member-engine", account = %account, region = %region);
        Ok(Place::Elsewhere(engine, region))
    }

    async fn role(&self, account: &str, region: &str) -> Arc<MemberRole> {
        let mut roles = self.roles.lock().await;
        if let Some(role) = roles.get(account) {
            return role.clone();
        }
        let role_arn = self.role_arn(account, region);
        let mut builder = AssumeRoleProvider::builder(&role_arn)
            .session_name("sync-routes")
            .region(Region::new(self.home_region.clone()))
            .configure(&self.shared);
        if let Some(external_id) = &self.members.external_id {
            builder = builder.external_id(external_id);
        }
        let role = Arc::new(MemberRole {
            role_arn,
            provider: builder.build().await,
            cached: tokio::sync::Mutex::new(None),
        });
        roles.insert(account.to_owned(), role.clone());
        role
    }
}

/// The partition of a region, for the role's ARN.
fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// One member account's role: its credentials, assumed once and kept until they near expiry
/// (every region of the account shares them).
#[derive(Debug)]
struct MemberRole {
    role_arn: String,
    provider: AssumeRoleProvider,
    cached: tokio::sync::Mutex<Option<Credentials>>,
}

impl MemberRole {
    async fn credentials(&self) -> Result<Credentials, String> {
        let mut cached = self.cached.lock().await;
        if let Some(credentials) = cached.as_ref() {
            let fresh = credentials
                .expiry()
                .is_none_or(|at| at > SystemTime::now() + REFRESH_BEFORE_EXPIRY);
            if fresh {
                return Ok(credentials.clone());
            }
        }
        let credentials = self
            .provider
            .provide_credentials()
            .await
            .map_err(|e| aws_sdk_ec2::error::DisplayErrorContext(&e).to_string())?;
        *cached = Some(credentials.clone());
        Ok(credentials)
    }
}

/// The member role as the EC2 client's credentials provider.
#[derive(Debug)]
struct RoleCredentials(Arc<MemberRole>);

impl ProvideCredentials for RoleCredentials {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            self.0
                .credentials()
                .await
                .map_err(CredentialsError::provider_error)
        })
    }
}

/// A member engine's continuations: on the hub's queue, with the account and region written
/// in, so that the next invocation works them in the same place.
struct Stamped {
    inner: Arc<dyn HandOff>,
    location: Location,
}

impl HandOff for Stamped {
    fn hand_off<'a>(
        &'a self,
        request: &'a SyncRequest,
        delay: Duration,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            let payload = hand_off_payload(request)
                .ok_or_else(|| format!("{:?} cannot be handed on", request.subject))?;
            self.inner
                .send_after(&trigger::stamp(&payload, &self.location), delay)
                .await
        })
    }

    fn resend<'a>(
        &'a self,
        payload: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            self.inner
                .resend(&trigger::stamp(payload, &self.location))
                .await
        })
    }
}
