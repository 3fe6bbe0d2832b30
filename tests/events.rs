//! The sample events in events/ are what the README tells people to invoke with: each must
//! parse to the request (or the ignore) it is named for.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sync_routes::adapters::trigger::{parse, Trigger};
use sync_routes::domain::plan::{Destination, Target, TargetKind};
use sync_routes::domain::request::{MainRoute, NamedRoute, RequestSource, Subject, SyncRequest};

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

/// The route table and destination of a route request.
fn route(r: &SyncRequest) -> (&str, String, Option<&str>, Option<&MainRoute>) {
    match &r.subject {
        Subject::Route {
            table_id,
            vpc_id,
            destination,
            expected,
        } => (
            table_id.as_str(),
            destination.to_string(),
            vpc_id.as_deref(),
            expected.as_ref(),
        ),
        other => panic!("expected a route request, got {other:?}"),
    }
}

#[test]
fn cloudtrail_create_route() {
    let r = request("cloudtrail-create-route.json");
    let eni = Target::new(TargetKind::NetworkInterface, "eni-0a1b2c3d4e5f60010");
    assert_eq!(
        route(&r),
        (
            "rtb-0a1b2c3d4e5f60001",
            "10.100.0.0/16".to_owned(),
            None,
            Some(&MainRoute::To(eni))
        )
    );
    assert!(!r.dry_run);
    // 2026-11-24T09:30:12Z
    let event_time = UNIX_EPOCH + Duration::from_secs(1_795_512_612);
    assert_eq!(
        r.source,
        RequestSource::CloudTrail {
            event_name: "CreateRoute".into(),
            event_id: Some("8d3a1c52-0b7e-4f0a-9c1d-5e6f7a8b9c0d".into()),
            caller: Some(
                "arn:aws:sts::123456789012:assumed-role/NetworkFailover/failover-script".into()
            ),
            event_time: Some(event_time),
            waits: 0,
        }
    );
}

#[test]
fn cloudtrail_replace_route_from_another_account_without_an_arn() {
    let r = request("cloudtrail-replace-route.json");
    assert_eq!(route(&r).0, "rtb-0a1b2c3d4e5f60001");
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
        Trigger::Ignore(why) => assert!(why.contains("Client.RouteAlreadyExists"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn cloudtrail_custom_table_is_a_request_the_engine_refuses_after_one_read() {
    // Parsing cannot know the table is custom; the sync's first read can (tests/sync_moto.rs).
    let r = request("cloudtrail-custom-table.json");
    assert_eq!(route(&r).0, "rtb-0a1b2c3d4e5f60002");
}

#[test]
fn manual_requests() {
    let sync = request("manual-sync.json");
    assert_eq!(route(&sync).2, Some("vpc-0a1b2c3d4e5f60000"));
    assert_eq!(route(&sync).3, None);
    assert_eq!(
        (sync.dry_run, &sync.source),
        (false, &RequestSource::Manual)
    );
    let dry = request("manual-dry-run.json");
    assert!(dry.dry_run);
    assert_eq!(route(&dry).1, route(&sync).1);
}

#[test]
fn a_prefix_list_route_from_vmware_cloud() {
    let r = request("cloudtrail-create-route-prefix-list.json");
    match &r.subject {
        Subject::Route { destination, .. } => assert_eq!(
            destination,
            &Destination::PrefixList("pl-0a1b2c3d4e5f60020".into())
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_new_table_is_backfilled_by_id_and_vpc_from_the_response() {
    let r = request("cloudtrail-create-route-table.json");
    assert_eq!(
        r.subject,
        Subject::NewTable {
            table_id: "rtb-0a1b2c3d4e5f60005".into(),
            vpc_id: "vpc-0a1b2c3d4e5f60000".into()
        }
    );
}

#[test]
fn an_association_change_names_the_table() {
    let r = request("cloudtrail-replace-route-table-association.json");
    assert_eq!(
        r.subject,
        Subject::Association {
            table_id: "rtb-0a1b2c3d4e5f60002".into()
        }
    );
}

#[test]
fn a_delete_expects_the_route_gone() {
    let r = request("cloudtrail-delete-route.json");
    assert_eq!(route(&r).3, Some(&MainRoute::Gone));
}

#[test]
fn the_schedule_and_a_manual_reconcile_sweep() {
    let sweep = request("scheduled-sweep.json");
    assert_eq!(sweep.subject, Subject::reconcile(None));
    assert_eq!(sweep.source, RequestSource::Schedule);
    let one = request("manual-reconcile.json");
    assert_eq!(
        one.subject,
        Subject::reconcile(Some("vpc-0a1b2c3d4e5f60000".into()))
    );
    assert_eq!(one.source, RequestSource::Manual);
    match parse(r#"{"reconcile": true, "dry-run": true}"#, None).unwrap() {
        Trigger::Sync(r) => {
            assert_eq!(r.subject, Subject::reconcile(None));
            assert!(r.dry_run);
        }
        other => panic!("{other:?}"),
    }
}

/// Issue 16: a person who means a large delete names the VPC and the budget; adopt records
/// the routes sync-routes would have written (`events/manual-adopt-dry-run.json`).
#[test]
fn a_delete_budget_and_adopt_are_asked_for_by_hand() {
    match parse(
        r#"{"reconcile": true, "vpc-id": "vpc-0a1b2c3d4e5f60000", "max-deletes": 40}"#,
        None,
    )
    .unwrap()
    {
        Trigger::Sync(r) => assert_eq!(
            r.subject,
            Subject::Reconcile {
                vpc_id: Some("vpc-0a1b2c3d4e5f60000".into()),
                max_deletes: Some(40),
            }
        ),
        other => panic!("{other:?}"),
    }
    let adopt = request("manual-adopt-dry-run.json");
    assert_eq!(
        adopt.subject,
        Subject::Adopt {
            vpc_id: Some("vpc-0a1b2c3d4e5f60000".into())
        }
    );
    assert!(adopt.dry_run);
    match parse(r#"{"reconcile": true, "adopt": true}"#, None).unwrap() {
        Trigger::Sync(r) => assert_eq!(r.subject, Subject::Adopt { vpc_id: None }),
        other => panic!("{other:?}"),
    }
    for (payload, says) in [
        (
            r#"{"reconcile": true, "max-deletes": 40}"#,
            "needs \"vpc-id\"",
        ),
        (
            r#"{"reconcile": true, "vpc-id": "vpc-0a1b2c3d4e5f60000", "route-table-id": "rtb-0a1b2c3d4e5f60001", "max-deletes": 4}"#,
            "one VPC at a time",
        ),
        (
            r#"{"reconcile": true, "vpc-id": "vpc-0a1b2c3d4e5f60000", "max-deletes": -1}"#,
            "expected u32",
        ),
        (
            r#"{"reconcile": true, "adopt": true, "vpc-id": "vpc-0a1b2c3d4e5f60000", "route-table-id": "rtb-0a1b2c3d4e5f60001"}"#,
            "it writes and deletes none",
        ),
    ] {
        let error = parse(payload, None).unwrap_err().to_string();
        assert!(error.contains(says), "{payload}: {error}");
    }
}

#[test]
fn bad_reconcile_requests_are_rejected_with_the_reason() {
    for (payload, says) in [
        (r#"{"reconcile": "yes"}"#, "expected a boolean"),
        (r#"{"reconcile": false}"#, "must be true"),
        (
            r#"{"reconcile": true, "vpc-id": "vpc-12"}"#,
            "not a valid VPC id",
        ),
        (
            r#"{"reconcile": true, "vpc": "vpc-12345678"}"#,
            "unknown field",
        ),
    ] {
        let error = parse(payload, None).unwrap_err().to_string();
        assert!(error.contains(says), "{payload}: {error}");
    }
}

/// EC2 stores the network of a CIDR with host bits; CloudTrail records what was sent.
#[test]
fn cloudtrail_host_bits_are_cleared_but_a_manual_request_is_told() {
    let mut event = sample_json("cloudtrail-create-route.json");
    event["detail"]["requestParameters"]["destinationCidrBlock"] = "10.181.0.18/16".into();
    match parse(&event.to_string(), None).unwrap() {
        Trigger::Sync(r) => assert_eq!(route(&r).1, "10.181.0.0/16"),
        other => panic!("{other:?}"),
    }
    let error = parse(
        r#"{"route-table-id": "rtb-0a1b2c3d4e5f60001", "destination-cidr-block": "10.181.0.18/16"}"#,
        None,
    )
    .unwrap_err();
    assert!(
        error.to_string().contains("did you mean 10.181.0.0/16"),
        "{error}"
    );
}

/// A read right after the call may not show it: the event says what the call wrote, in
/// the kind DescribeRouteTables will report.
#[test]
fn the_written_next_hop_is_named_as_ec2_reports_it() {
    let cases = [
        (
            "gatewayId",
            "vpce-0123456789abcdef0",
            Some((TargetKind::VpcEndpoint, "vpce-0123456789abcdef0")),
        ),
        (
            "gatewayId",
            "igw-0123456789abcdef0",
            Some((TargetKind::InternetGateway, "igw-0123456789abcdef0")),
        ),
        (
            "gatewayId",
            "nat-0123456789abcdef0",
            Some((TargetKind::NatGateway, "nat-0123456789abcdef0")),
        ),
        (
            "vpcEndpointId",
            "vpce-0123456789abcdef0",
            Some((TargetKind::VpcEndpoint, "vpce-0123456789abcdef0")),
        ),
        (
            "transitGatewayId",
            "tgw-0123456789abcdef0",
            Some((TargetKind::TransitGateway, "tgw-0123456789abcdef0")),
        ),
        // An instance route is reported with its ENI, which the event does not name.
        ("instanceId", "i-0123456789abcdef0", None),
    ];
    for (field, id, want) in cases {
        let mut event = sample_json("cloudtrail-create-route.json");
        let params = event["detail"]["requestParameters"]
            .as_object_mut()
            .unwrap();
        params.remove("networkInterfaceId");
        params.insert(field.into(), id.into());
        let Trigger::Sync(r) = parse(&event.to_string(), None).unwrap() else {
            panic!("{field}")
        };
        let want = want.map(|(kind, id)| MainRoute::To(Target::new(kind, id)));
        assert_eq!(route(&r).3, want.as_ref(), "{field}");
    }
}

fn sample_json(name: &str) -> serde_json::Value {
    let path = format!("{}/events/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn event_times_are_read_from_cloudtrail() {
    let mut event = sample_json("cloudtrail-create-route.json");
    event["detail"]["eventTime"] = "2026-11-24T09:31:00Z".into();
    let Trigger::Sync(r) = parse(&event.to_string(), None).unwrap() else {
        panic!()
    };
    let RequestSource::CloudTrail { event_time, .. } = r.source else {
        panic!()
    };
    assert_eq!(
        event_time,
        Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_512_660))
    );
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
            "cloudtrail-create-route-prefix-list.json",
            "cloudtrail-create-route-table.json",
            "cloudtrail-create-route.json",
            "cloudtrail-custom-table.json",
            "cloudtrail-delete-route.json",
            "cloudtrail-failed-call.json",
            "cloudtrail-replace-route-table-association.json",
            "cloudtrail-replace-route.json",
            "manual-adopt-dry-run.json",
            "manual-dry-run.json",
            "manual-reconcile.json",
            "manual-sync.json",
            "scheduled-sweep.json"
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
        Trigger::Sync(r) => assert_eq!(route(&r).1, "2001:db8:1::/48"),
        other => panic!("{other:?}"),
    }
    let params = &mut event["detail"]["requestParameters"];
    params
        .as_object_mut()
        .unwrap()
        .remove("destinationIpv6CidrBlock");
    params["destinationPrefixListId"] = "pl-0123456789abcdef0".into();
    match parse(&event.to_string(), None).unwrap() {
        Trigger::Sync(r) => assert_eq!(route(&r).1, "pl-0123456789abcdef0"),
        other => panic!("{other:?}"),
    }
    event["detail"]["requestParameters"]["destinationPrefixListId"] = "pl-xyz".into();
    let error = parse(&event.to_string(), None).unwrap_err();
    assert!(error.to_string().contains("prefix list id"), "{error}");
}

/// A hand-off is a reconcile request the function sends itself: it parses back to the
/// same request, hops included.
#[test]
fn a_hand_off_payload_parses_back_to_its_request() {
    let request = SyncRequest {
        subject: Subject::reconcile(Some("vpc-0a1b2c3d4e5f60000".into())),
        dry_run: true,
        source: RequestSource::HandOff { hops: 3 },
    };
    // A person's larger delete budget goes on with the reconcile it was given for.
    let meant = SyncRequest {
        subject: Subject::Reconcile {
            vpc_id: Some("vpc-0a1b2c3d4e5f60000".into()),
            max_deletes: Some(25),
        },
        dry_run: false,
        source: RequestSource::HandOff { hops: 1 },
    };
    let route = |destination: Destination| SyncRequest {
        subject: Subject::Route {
            table_id: "rtb-0a1b2c3d4e5f60001".into(),
            vpc_id: Some("vpc-0a1b2c3d4e5f60000".into()),
            destination,
            expected: None,
        },
        dry_run: false,
        source: RequestSource::HandOff { hops: 1 },
    };
    let backfill = SyncRequest {
        subject: Subject::NewTable {
            table_id: "rtb-0a1b2c3d4e5f60005".into(),
            vpc_id: "vpc-0a1b2c3d4e5f60000".into(),
        },
        dry_run: false,
        source: RequestSource::HandOff { hops: 2 },
    };
    let routes = SyncRequest {
        subject: Subject::Routes {
            table_id: "rtb-0a1b2c3d4e5f60001".into(),
            vpc_id: Some("vpc-0a1b2c3d4e5f60000".into()),
            routes: ["10.100.0.0/16", "2001:db8::/48"]
                .iter()
                .map(|d| Destination::Cidr(d.parse().unwrap()))
                .chain([Destination::PrefixList("pl-0123456789abcdef0".into())])
                .map(|destination| NamedRoute {
                    destination,
                    expected: None,
                    source: RequestSource::Manual,
                })
                .collect(),
        },
        dry_run: false,
        source: RequestSource::HandOff { hops: 4 },
    };
    for request in [
        request,
        meant,
        routes,
        route(Destination::Cidr("10.100.0.0/16".parse().unwrap())),
        route(Destination::Cidr("2001:db8::/48".parse().unwrap())),
        route(Destination::PrefixList("pl-0123456789abcdef0".into())),
        backfill,
    ] {
        let payload = sync_routes::adapters::trigger::hand_off_payload(&request).unwrap();
        match parse(&payload, None).unwrap() {
            Trigger::Sync(parsed) => assert_eq!(parsed, request, "{payload}"),
            other => panic!("{other:?}"),
        }
    }
}

/// A route event handed on while EC2's reads did not show it yet parses back to the same
/// request: the same expected next hop (for every kind that names one), the same event
/// time (so the next invocation judges its age alike), and one more wait.
#[test]
fn a_waiting_event_parses_back_to_the_same_event() {
    let event_time = SystemTime::UNIX_EPOCH + Duration::from_millis(1_764_000_000_123);
    let waiting = |destination: Destination, expected: Option<MainRoute>, name: &str| SyncRequest {
        subject: Subject::Route {
            table_id: "rtb-0a1b2c3d4e5f60001".into(),
            vpc_id: None,
            destination,
            expected,
        },
        dry_run: false,
        source: RequestSource::CloudTrail {
            event_name: name.into(),
            event_id: Some("8d3a1c52-0b7e-4f0a-9c1d-5e6f7a8b9c0d".into()),
            caller: Some("arn:aws:sts::123456789012:assumed-role/NetworkFailover/x".into()),
            event_time: Some(event_time),
            waits: 2,
        },
    };
    let cidr = || Destination::Cidr("10.100.0.0/16".parse().unwrap());
    let to = |kind, id: &str| Some(MainRoute::To(Target::new(kind, id)));
    for request in [
        waiting(
            cidr(),
            to(TargetKind::NetworkInterface, "eni-0a1b2c3d4e5f60001"),
            "ReplaceRoute",
        ),
        waiting(
            cidr(),
            to(TargetKind::TransitGateway, "tgw-0a1b2c3d4e5f60001"),
            "CreateRoute",
        ),
        waiting(
            cidr(),
            to(TargetKind::VpcEndpoint, "vpce-0a1b2c3d4e5f60001"),
            "CreateRoute",
        ),
        waiting(
            cidr(),
            to(TargetKind::InternetGateway, "igw-0a1b2c3d4e5f60001"),
            "CreateRoute",
        ),
        waiting(
            Destination::Cidr("2001:db8::/48".parse().unwrap()),
            to(TargetKind::NetworkInterface, "eni-0a1b2c3d4e5f60001"),
            "CreateRoute",
        ),
        waiting(
            Destination::PrefixList("pl-0123456789abcdef0".into()),
            to(TargetKind::NetworkInterface, "eni-0a1b2c3d4e5f60001"),
            "ReplaceRoute",
        ),
        waiting(cidr(), Some(MainRoute::Gone), "DeleteRoute"),
    ] {
        let payload = sync_routes::adapters::trigger::hand_off_payload(&request).unwrap();
        match parse(&payload, Some("us-east-1")).unwrap() {
            Trigger::Sync(parsed) => assert_eq!(parsed, request, "{payload}"),
            other => panic!("{other:?}"),
        }
    }
}
