//! The sample events in events/ are what the README tells people to invoke with: each must
//! parse to the request (or the ignore) it is named for.

use sync_routes::adapters::trigger::{parse, Trigger};
use sync_routes::domain::request::{RequestSource, SyncRequest};

fn sample(name: &str) -> Trigger {
    let path = format!("{}/events/{name}", env!("CARGO_MANIFEST_DIR"));
    let payload = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    parse(&payload, Some("us-east-1")).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn request(name: &str) -> SyncRequest {
    match sample(name) {
        Trigger::Sync(request) => request,
        other => panic!("{name}: expected a sync request, got {other:?}"),
    }
}

#[test]
fn cloudtrail_create_route() {
    let r = request("cloudtrail-create-route.json");
    assert_eq!(r.route_table_id, "rtb-0a1b2c3d4e5f60001");
    assert_eq!(r.destination.to_string(), "10.100.0.0/16");
    assert_eq!((r.vpc_id, r.dry_run), (None, false));
    assert_eq!(
        r.source,
        RequestSource::CloudTrail {
            event_name: "CreateRoute".into(),
            event_id: Some("8d3a1c52-0b7e-4f0a-9c1d-5e6f7a8b9c0d".into()),
            caller: Some(
                "arn:aws:sts::123456789012:assumed-role/NetworkFailover/failover-script".into()
            ),
        }
    );
}

#[test]
fn cloudtrail_replace_route_from_another_account_without_an_arn() {
    let r = request("cloudtrail-replace-route.json");
    assert_eq!(r.route_table_id, "rtb-0a1b2c3d4e5f60001");
    match r.source {
        RequestSource::CloudTrail {
            event_name, caller, ..
        } => {
            assert_eq!(event_name, "ReplaceRoute");
            assert_eq!(caller.as_deref(), Some("account 210987654321"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn cloudtrail_failed_call_is_ignored_with_its_error() {
    match sample("cloudtrail-failed-call.json") {
        Trigger::Ignore(why) => assert!(why.contains("RouteAlreadyExists"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn cloudtrail_custom_table_is_a_request_the_engine_refuses_after_one_read() {
    // Parsing cannot know the table is custom; the sync's first read can (tests/sync_moto.rs).
    let r = request("cloudtrail-custom-table.json");
    assert_eq!(r.route_table_id, "rtb-0a1b2c3d4e5f60002");
}

#[test]
fn manual_requests() {
    let sync = request("manual-sync.json");
    assert_eq!(sync.vpc_id.as_deref(), Some("vpc-0a1b2c3d4e5f60000"));
    assert_eq!((sync.dry_run, sync.source), (false, RequestSource::Manual));
    let dry = request("manual-dry-run.json");
    assert!(dry.dry_run);
    assert_eq!(dry.destination, sync.destination);
}

#[test]
fn every_sample_is_covered_here() {
    let dir = format!("{}/events", env!("CARGO_MANIFEST_DIR"));
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "cloudtrail-create-route.json",
            "cloudtrail-custom-table.json",
            "cloudtrail-failed-call.json",
            "cloudtrail-replace-route.json",
            "manual-dry-run.json",
            "manual-sync.json"
        ]
    );
}

#[test]
fn an_event_from_another_region_is_ignored() {
    let path = format!(
        "{}/events/cloudtrail-create-route.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let payload = std::fs::read_to_string(path).unwrap();
    match parse(&payload, Some("eu-west-1")).unwrap() {
        Trigger::Ignore(why) => assert!(why.contains("us-east-1") && why.contains("eu-west-1")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn ipv6_and_prefix_list_destinations() {
    let path = format!(
        "{}/events/cloudtrail-create-route.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut event: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let params = &mut event["detail"]["requestParameters"];
    params
        .as_object_mut()
        .unwrap()
        .remove("destinationCidrBlock");
    params["destinationIpv6CidrBlock"] = "2001:db8:1::/48".into();
    match parse(&event.to_string(), None).unwrap() {
        Trigger::Sync(r) => assert_eq!(r.destination.to_string(), "2001:db8:1::/48"),
        other => panic!("{other:?}"),
    }
    let params = &mut event["detail"]["requestParameters"];
    params
        .as_object_mut()
        .unwrap()
        .remove("destinationIpv6CidrBlock");
    params["destinationPrefixListId"] = "pl-0123456789abcdef0".into();
    let error = parse(&event.to_string(), None).unwrap_err();
    assert!(error.to_string().contains("prefix lists"), "{error}");
}
