//! The entry point: the Lambda runtime, or `sync-routes invoke FILE` to run the same
//! handler once on a file with the caller's AWS credentials.

// The AWS SDK's futures nest deeply; computing their layout needs more than the default.
#![recursion_limit = "256"]

use std::process::ExitCode;
use std::time::Duration;

use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use serde_json::value::RawValue;
use sync_routes::adapters::trigger;
use sync_routes::config::Config;
use sync_routes::{handler, runtime, summary};

const USAGE: &str = "\
usage:
  sync-routes                 serve the Lambda Runtime API (AWS_LAMBDA_RUNTIME_API must be set)
  sync-routes invoke [--json] FILE
                              run the handler once on FILE (an event JSON, - for stdin) with
                              your AWS credentials; print a summary on a terminal, the JSON
                              report otherwise or with --json; exit 1 if it failed
  sync-routes watch --vpc VPC [--vpc VPC ...] --interval SECONDS [--dry-run]
                              every interval, read the named VPCs' tables (one call) and sync
                              whatever differs; SIGINT or SIGTERM ends it (exit 0)

environment:
  SNS_TOPIC_ARN               topic for change notices (unset: no notices)
  SYNC_TARGET_KINDS           next-hop kinds to copy (default network-interface)
  SYNC_VPC_IDS                VPCs to act on (default every VPC)
  SYNC_DESTINATIONS           CIDRs and pl- ids in scope (default every destination)
  SYNC_PROPAGATE_DELETES      true: copy deletions (needs SYNC_DESTINATIONS)
  SYNC_MAX_CONCURRENT_WRITES  route writes in flight per request (default 16)
  SYNC_QUEUE_URL              the work queue, where unfinished work goes back (unset: the
                              function invokes itself)
  SYNC_LEDGER_TABLE           with deletes: the DynamoDB table of the routes it wrote
  SYNC_MAX_DELETES            most routes one request deletes (default 10)
  SYNC_MEMBER_ROLE_NAME       an organization's hub: the role it assumes in member accounts
                              (with SYNC_ACCOUNT_ID, SYNC_MEMBER_EXTERNAL_ID,
                              SYNC_MEMBER_ACCOUNTS, SYNC_MEMBER_REGIONS)
  AWS_REGION, AWS_PROFILE, AWS_ENDPOINT_URL ...  the AWS SDK's own settings";

/// How long `invoke` may retry before it reports; a Lambda invocation uses its deadline.
const INVOKE_BUDGET: Duration = Duration::from_secs(60);

/// An HTTP request is answered within this (API Gateway's integration times out at 29 s).
const HTTP_ANSWER_WITHIN: Duration = Duration::from_secs(27);

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    if matches!(args.as_slice(), ["-h" | "--help" | "help"]) {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    runtime::init_logging();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            tracing::error!(error = %error, "bad configuration");
            eprintln!("sync-routes: {error}");
            return ExitCode::from(2);
        }
    };
    match args.as_slice() {
        [] if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() => serve(&config).await,
        ["watch", ..] => watch(config, &args[1..]).await,
        ["invoke", file] => invoke(&config, file, false).await,
        ["invoke", "--json", file] => invoke(&config, file, true).await,
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

async fn serve(config: &Config) -> ExitCode {
    let fleet = runtime::fleet(config, true).await;
    let fleet = &fleet;
    let handler = service_fn(move |event: LambdaEvent<Box<RawValue>>| async move {
        let payload = event.payload.get();
        if let Some(batch) = trigger::sqs_batch(payload) {
            // The work queue's event source mapping: never a Lambda error, which would make
            // SQS deliver the whole batch again; the failed records are named instead.
            let deadline = runtime::deadline_from_epoch_ms(event.context.deadline, config);
            let response = fleet.handle_batch(batch, deadline).await;
            return serde_json::to_value(response).map_err(|e| Diagnostic {
                error_type: "Serialize".to_owned(),
                error_message: e.to_string(),
            });
        }
        let http = trigger::is_http(payload);
        let deadline = if http {
            // API Gateway gives up at 29 s: answer by 27 s, with 202 and what was handed on.
            runtime::deadline_from_epoch_ms(
                event
                    .context
                    .deadline
                    .min(runtime::epoch_ms_in(HTTP_ANSWER_WITHIN)),
                config,
            )
        } else {
            runtime::deadline_from_epoch_ms(event.context.deadline, config)
        };
        let report = fleet.handle(payload, deadline).await;
        if http {
            // The original tool's HTTP API: the caller gets a status and the report.
            return serde_json::to_value(handler::http_response(&report)).map_err(|e| Diagnostic {
                error_type: "Serialize".to_owned(),
                error_message: e.to_string(),
            });
        }
        if report.is_failure() {
            // A failed invocation lets Lambda retry and, after that, keep the event in
            // the failure destination. The report rides along in the error message.
            return Err(Diagnostic {
                error_type: "SyncFailed".to_owned(),
                error_message: serde_json::to_string(&report).unwrap_or(report.message),
            });
        }
        serde_json::to_value(&report).map_err(|e| Diagnostic {
            error_type: "Serialize".to_owned(),
            error_message: e.to_string(),
        })
    });
    match lambda_runtime::run(handler).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = %error, "the Lambda runtime stopped");
            ExitCode::FAILURE
        }
    }
}

async fn watch(mut config: Config, args: &[&str]) -> ExitCode {
    let args = match sync_routes::watch::parse_args(args) {
        Ok(args) => args,
        Err(error) => {
            eprintln!(
                "sync-routes watch: {error}\nusage: {}",
                sync_routes::watch::USAGE
            );
            return ExitCode::from(2);
        }
    };
    // The named VPCs are the scope: each pass reads exactly those, in one call.
    config.policy.vpc_ids = Some(args.vpcs.iter().cloned().collect());
    let (syncer, _) = runtime::build(&config).await;
    let syncer = syncer.continued_by_next_pass();
    match sync_routes::watch::watch(&syncer, &args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("sync-routes watch: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn invoke(config: &Config, file: &str, json: bool) -> ExitCode {
    let payload = if file == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(file)
    };
    let payload = match payload {
        Ok(payload) => payload,
        Err(error) => {
            eprintln!("sync-routes: cannot read {file}: {error}");
            return ExitCode::from(2);
        }
    };
    let fleet = runtime::fleet(config, false).await;
    let deadline = tokio::time::Instant::now() + INVOKE_BUDGET;
    let report = fleet.handle(&payload, deadline).await;
    if json || !std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        match serde_json::to_string_pretty(&report) {
            Ok(json) => println!("{json}"),
            Err(error) => eprintln!("sync-routes: cannot print the report: {error}"),
        }
    } else {
        print!("{}", summary::human_summary(&report));
    }
    if report.is_failure() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
