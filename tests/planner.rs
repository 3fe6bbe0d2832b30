//! The planner, table-driven: every refusal and every per-table outcome, every scope, plus
//! the property that applying a plan and planning again leaves nothing to do.

use proptest::prelude::*;
use sync_routes::adapters::memory::apply_write;
use sync_routes::domain::plan::{
    believe_own_writes, plan_delete, plan_table, reconcile, Action, Destination, DestinationFilter,
    OwnWrite, Policy, Refusal, Route, RouteOrigin, RouteState, RouteTable, Scope, SkipReason,
    TableSkip, Target, TargetKind, VpcPlan, SKIP_TAG,
};
use sync_routes::domain::sync::{RouteWrite, WriteMode};

const VPC: &str = "vpc-0000000000000000a";
const MAIN: &str = "rtb-00000000000000001";
const DEST: &str = "10.1.0.0/16";

fn dest(s: &str) -> Destination {
    if s.starts_with("pl-") {
        Destination::PrefixList(s.into())
    } else {
        Destination::Cidr(s.parse().unwrap())
    }
}

fn eni(id: &str) -> Target {
    Target::new(TargetKind::NetworkInterface, id)
}

fn igw(id: &str) -> Target {
    Target::new(TargetKind::InternetGateway, id)
}

fn route(d: &str, target: Target) -> Route {
    Route {
        destination: dest(d),
        target,
        state: RouteState::Active,
        origin: RouteOrigin::CreateRoute,
    }
}

fn local() -> Route {
    Route {
        destination: dest("10.0.0.0/16"),
        target: Target::new(TargetKind::Local, "local"),
        state: RouteState::Active,
        origin: RouteOrigin::CreateRouteTable,
    }
}

fn table(id: &str, is_main: bool, routes: Vec<Route>) -> RouteTable {
    let mut all = vec![local()];
    all.extend(routes);
    RouteTable::new(id, VPC, is_main, all)
}

fn main_with(routes: Vec<Route>) -> RouteTable {
    table(MAIN, true, routes)
}

fn custom_id(n: u32) -> String {
    format!("rtb-1000000000000000{n}")
}

fn custom(n: u32, routes: Vec<Route>) -> RouteTable {
    table(&custom_id(n), false, routes)
}

fn one(tables: &[RouteTable], d: &str, policy: &Policy) -> Result<VpcPlan, Refusal> {
    reconcile(tables, &Scope::destination(dest(d)), policy)
}

#[test]
fn refusals_name_the_reason() {
    let with = |mutate: fn(&mut Route)| {
        let mut r = route(DEST, eni("eni-1"));
        mutate(&mut r);
        vec![main_with(vec![r]), custom(1, vec![])]
    };
    let scoped = Policy {
        destinations: Some(vec![DestinationFilter::Within(
            "10.2.0.0/16".parse().unwrap(),
        )]),
        ..Policy::default()
    };
    let cases: Vec<(&str, Vec<RouteTable>, &str, Policy, &str)> = vec![
        // (case, tables, destination, policy, expected code)
        (
            "no such route",
            with(|_| {}),
            "10.2.0.0/16",
            Policy::default(),
            "route-not-in-main-table",
        ),
        (
            "local route",
            with(|_| {}),
            "10.0.0.0/16",
            Policy::default(),
            "local-route",
        ),
        (
            "propagated",
            with(|r| r.origin = RouteOrigin::EnableVgwRoutePropagation),
            DEST,
            Policy::default(),
            "propagated-route",
        ),
        (
            "route server",
            with(|r| r.origin = RouteOrigin::Advertisement),
            DEST,
            Policy::default(),
            "not-created-by-create-route",
        ),
        (
            "other origin",
            with(|r| r.origin = RouteOrigin::Other("CreateVpcEndpoint".into())),
            DEST,
            Policy::default(),
            "not-created-by-create-route",
        ),
        (
            "blackhole",
            with(|r| r.state = RouteState::Blackhole),
            DEST,
            Policy::default(),
            "route-not-active",
        ),
        (
            "internet gateway",
            with(|r| r.target = igw("igw-1")),
            DEST,
            Policy::default(),
            "target-kind-not-allowed",
        ),
        (
            "transit gateway",
            with(|r| r.target = Target::new(TargetKind::TransitGateway, "tgw-1")),
            DEST,
            Policy::default(),
            "target-kind-not-allowed",
        ),
        (
            "outside SYNC_DESTINATIONS",
            with(|_| {}),
            DEST,
            scoped,
            "destination-out-of-scope",
        ),
        (
            "no custom tables",
            vec![main_with(vec![route(DEST, eni("eni-1"))])],
            DEST,
            Policy::default(),
            "no-custom-tables",
        ),
        (
            "no main table",
            vec![custom(1, vec![])],
            DEST,
            Policy::default(),
            "no-main-table",
        ),
    ];
    for (case, tables, destination, policy, code) in cases {
        let refusal = one(&tables, destination, &policy).expect_err(case);
        assert_eq!(refusal.code(), code, "{case}: {refusal}");
        assert!(!refusal.to_string().is_empty());
    }
}

#[test]
fn refusal_messages_are_specific() {
    let refusal = one(
        &[
            main_with(vec![route(DEST, igw("igw-1"))]),
            custom(1, vec![]),
        ],
        DEST,
        &Policy::default(),
    )
    .unwrap_err();
    assert_eq!(
        refusal,
        Refusal::TargetKindNotAllowed {
            destination: dest(DEST),
            target: "igw-1".into(),
            kind: TargetKind::InternetGateway,
            allowed: "network-interface".into(),
        }
    );
    assert_eq!(
        refusal.to_string(),
        "the route for 10.1.0.0/16 points at igw-1 (internet-gateway); allowed next hops: \
         network-interface (set SYNC_TARGET_KINDS to change)"
    );
}

/// The main table can hold a static and a propagated route for one destination, in any
/// order: the static one is in effect, and it is synced.
#[test]
fn a_static_route_beside_a_propagated_one_is_synced() {
    let propagated = Route {
        origin: RouteOrigin::EnableVgwRoutePropagation,
        ..route(
            DEST,
            Target::new(TargetKind::VirtualPrivateGateway, "vgw-1"),
        )
    };
    for routes in [
        vec![propagated.clone(), route(DEST, eni("eni-1"))],
        vec![route(DEST, eni("eni-1")), propagated.clone()],
    ] {
        let plan = one(
            &[main_with(routes), custom(1, vec![])],
            DEST,
            &Policy::default(),
        )
        .expect("the static route is eligible");
        assert_eq!(plan.routes[0].target, Some(eni("eni-1")));
        assert_eq!(plan.routes[0].actions[0].action, Action::Create);
    }
}

#[test]
fn every_per_table_outcome() {
    let propagated = Route {
        origin: RouteOrigin::EnableVgwRoutePropagation,
        ..route(
            DEST,
            Target::new(TargetKind::VirtualPrivateGateway, "vgw-1"),
        )
    };
    let stale_blackhole = Route {
        state: RouteState::Blackhole,
        ..route(DEST, eni("eni-old"))
    };
    let route_server = Route {
        origin: RouteOrigin::Advertisement,
        ..route(DEST, eni("eni-rs"))
    };
    let vpce = Target::new(TargetKind::VpcEndpoint, "vpce-1");
    let cases: Vec<(&str, Vec<Route>, Action)> = vec![
        ("missing", vec![], Action::Create),
        (
            "other routes only",
            vec![route("10.9.0.0/16", eni("eni-9"))],
            Action::Create,
        ),
        (
            "same target",
            vec![route(DEST, eni("eni-new"))],
            Action::Unchanged,
        ),
        (
            "older eni",
            vec![route(DEST, eni("eni-old"))],
            Action::Replace {
                before: eni("eni-old"),
            },
        ),
        (
            "blackholed eni",
            vec![stale_blackhole],
            Action::Replace {
                before: eni("eni-old"),
            },
        ),
        (
            "internet gateway",
            vec![route(DEST, igw("igw-1"))],
            Action::Skip(SkipReason::ConflictingTarget {
                destination: dest(DEST),
                existing: igw("igw-1"),
            }),
        ),
        (
            "firewall endpoint",
            vec![route(DEST, vpce.clone())],
            Action::Skip(SkipReason::ConflictingTarget {
                destination: dest(DEST),
                existing: vpce,
            }),
        ),
        (
            "nat gateway",
            vec![route(DEST, Target::new(TargetKind::NatGateway, "nat-1"))],
            Action::Skip(SkipReason::ConflictingTarget {
                destination: dest(DEST),
                existing: Target::new(TargetKind::NatGateway, "nat-1"),
            }),
        ),
        (
            "propagated only",
            vec![propagated.clone()],
            Action::Skip(SkipReason::PropagatedRouteInTable {
                destination: dest(DEST),
                existing: Target::new(TargetKind::VirtualPrivateGateway, "vgw-1"),
            }),
        ),
        (
            "route server's ENI route",
            vec![route_server],
            Action::Skip(SkipReason::ForeignOrigin {
                destination: dest(DEST),
                existing: eni("eni-rs"),
                origin: RouteOrigin::Advertisement,
            }),
        ),
        // A static route next to a propagated one is ours to keep in step.
        (
            "propagated and static",
            vec![propagated, route(DEST, eni("eni-old"))],
            Action::Replace {
                before: eni("eni-old"),
            },
        ),
    ];
    for (case, routes, expected) in cases {
        let action = plan_table(&custom(1, routes), &dest(DEST), &eni("eni-new"));
        assert_eq!(action, expected, "{case}");
    }
}

/// An internet gateway and a firewall endpoint both arrive in EC2's GatewayId: with both
/// kinds allowed, one still never replaces the other.
#[test]
fn kinds_that_share_gateway_id_never_replace_one_another() {
    let policy = Policy {
        allowed_kinds: [TargetKind::InternetGateway, TargetKind::VpcEndpoint].into(),
        ..Policy::default()
    };
    let vpce = Target::new(TargetKind::VpcEndpoint, "vpce-0123456789abcdef0");
    let tables = [
        main_with(vec![route("0.0.0.0/0", igw("igw-1"))]),
        custom(1, vec![route("0.0.0.0/0", vpce.clone())]),
        custom(2, vec![route("0.0.0.0/0", igw("igw-old"))]),
    ];
    let plan = one(&tables, "0.0.0.0/0", &policy).unwrap();
    let actions: Vec<_> = plan.routes[0].actions.iter().map(|a| &a.action).collect();
    assert_eq!(
        actions,
        [
            &Action::Skip(SkipReason::ConflictingTarget {
                destination: dest("0.0.0.0/0"),
                existing: vpce
            }),
            &Action::Replace {
                before: igw("igw-old")
            },
        ]
    );
}

/// An S3 or DynamoDB gateway endpoint's route reads like a GWLB endpoint route, but it is
/// the endpoint's association with the table: never copied (a named request is refused),
/// never replaced or deleted in a custom table. GWLB endpoint routes are synced as before.
#[test]
fn gateway_endpoint_routes_are_never_copied_or_replaced() {
    let policy = Policy {
        allowed_kinds: [TargetKind::NetworkInterface, TargetKind::VpcEndpoint].into(),
        destinations: Some(vec![
            DestinationFilter::PrefixList("pl-63a5400a".into()),
            DestinationFilter::PrefixList("pl-0123456789abcdef0".into()),
        ]),
        propagate_deletes: true,
        ..Policy::default()
    };
    let s3 = Target::new(TargetKind::GatewayEndpoint, "vpce-0000000000000000a");
    let gwlb = Target::new(TargetKind::VpcEndpoint, "vpce-0000000000000000b");
    let tables = [
        main_with(vec![
            route("pl-63a5400a", s3.clone()),
            route("pl-0123456789abcdef0", gwlb.clone()),
        ]),
        // Associated with the S3 endpoint too.
        custom(1, vec![route("pl-63a5400a", s3.clone())]),
        custom(2, vec![]),
    ];
    let refusal = one(&tables, "pl-63a5400a", &policy).unwrap_err();
    assert_eq!(refusal.code(), "gateway-endpoint-route");
    assert!(
        refusal.to_string().contains("gateway endpoint"),
        "{refusal}"
    );

    let plan = reconcile(&tables, &Scope::vpc(), &policy).unwrap();
    let planned: Vec<_> = plan
        .routes
        .iter()
        .map(|r| {
            (
                r.destination.to_string(),
                r.actions
                    .iter()
                    .map(|a| a.action.clone())
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    assert_eq!(
        planned,
        [(
            "pl-0123456789abcdef0".to_owned(),
            vec![Action::Create, Action::Create]
        )],
        "only the GWLB route is copied; the S3 association is not a route to copy or delete"
    );

    // A main route for the same prefix list to an ENI never replaces the association.
    let tables = [
        main_with(vec![route("pl-63a5400a", eni("eni-1"))]),
        custom(1, vec![route("pl-63a5400a", s3.clone())]),
    ];
    let plan = one(&tables, "pl-63a5400a", &policy).unwrap();
    assert_eq!(
        plan.routes[0].actions[0].action.clone(),
        Action::Skip(SkipReason::GatewayEndpointRoute {
            destination: dest("pl-63a5400a"),
            existing: s3.clone(),
        })
    );
    assert_eq!(
        plan_delete(&tables[1], &dest("pl-63a5400a"), &policy),
        Action::Skip(SkipReason::GatewayEndpointRoute {
            destination: dest("pl-63a5400a"),
            existing: s3,
        })
    );
}

/// A re-read that still shows what our acknowledged write replaced is taken as lagging:
/// the write is believed. One that shows anything else is believed as read.
#[test]
fn a_read_that_lags_our_own_writes_is_corrected_by_them() {
    let write = |table: &str, before: Option<Target>, after: Option<Target>| OwnWrite {
        vpc_id: VPC.into(),
        table_id: table.into(),
        destination: dest("10.1.0.0/16"),
        before,
        after,
    };
    let mut tables = vec![
        custom(1, vec![route("10.1.0.0/16", eni("eni-old"))]), // lagging replace
        custom(2, vec![]),                                     // lagging create
        custom(3, vec![route("10.1.0.0/16", eni("eni-other"))]), // someone wrote since
        custom(4, vec![route("10.1.0.0/16", eni("eni-old"))]), // lagging delete
    ];
    let writes = [
        write(&custom_id(1), Some(eni("eni-old")), Some(eni("eni-new"))),
        write(&custom_id(2), None, Some(eni("eni-new"))),
        write(&custom_id(3), Some(eni("eni-old")), Some(eni("eni-new"))),
        write(&custom_id(4), Some(eni("eni-old")), None),
        write("rtb-10000000000000009", None, Some(eni("eni-new"))), // deleted since
    ];
    assert_eq!(believe_own_writes(&mut tables, &writes), 3);
    let shown = |t: &RouteTable| {
        t.route_for(&dest("10.1.0.0/16"))
            .map(|r| r.target.id.clone())
    };
    assert_eq!(
        tables.iter().map(shown).collect::<Vec<_>>(),
        [
            Some("eni-new".into()),
            Some("eni-new".into()),
            Some("eni-other".into()),
            None
        ]
    );
}

#[test]
fn a_plan_covers_every_custom_table_in_id_order() {
    let tables = vec![
        custom(3, vec![route(DEST, eni("eni-old"))]),
        main_with(vec![route(DEST, eni("eni-new"))]),
        custom(1, vec![]),
        custom(2, vec![route(DEST, eni("eni-new"))]),
        custom(4, vec![route(DEST, igw("igw-1"))]),
    ];
    let plan = one(&tables, DEST, &Policy::default()).unwrap();
    assert_eq!(plan.vpc_id, VPC);
    assert_eq!(plan.main_table_id, MAIN);
    assert_eq!(plan.routes.len(), 1);
    assert_eq!(plan.routes[0].target, Some(eni("eni-new")));
    let actions: Vec<_> = plan.routes[0]
        .actions
        .iter()
        .map(|a| (a.table_id.as_str(), &a.action))
        .collect();
    assert_eq!(actions.len(), 4);
    assert_eq!(actions[0], ("rtb-10000000000000001", &Action::Create));
    assert_eq!(actions[1], ("rtb-10000000000000002", &Action::Unchanged));
    assert_eq!(
        actions[2],
        (
            "rtb-10000000000000003",
            &Action::Replace {
                before: eni("eni-old")
            }
        )
    );
    assert!(matches!(
        actions[3].1,
        Action::Skip(SkipReason::ConflictingTarget { .. })
    ));
    assert_eq!(plan.writes().count(), 2);
}

#[test]
fn gateway_tables_and_tagged_tables_are_left_alone_whole() {
    let mut edge = custom(1, vec![]);
    edge.gateway_association = Some("igw-0123456789abcdef0".into());
    let mut tagged = custom(2, vec![]);
    tagged.tags.insert(SKIP_TAG.into(), "True".into());
    let mut other_tag = custom(3, vec![]);
    other_tag.tags.insert(SKIP_TAG.into(), "no".into());
    let tables = [
        main_with(vec![route(DEST, eni("eni-1"))]),
        edge,
        tagged,
        other_tag,
    ];
    let plan = one(&tables, DEST, &Policy::default()).unwrap();
    assert_eq!(
        plan.skipped_tables,
        [
            (
                custom_id(1),
                TableSkip::GatewayTable {
                    gateway: "igw-0123456789abcdef0".into()
                }
            ),
            (custom_id(2), TableSkip::OptedOut),
        ]
    );
    assert_eq!(plan.routes[0].actions.len(), 1);
    assert_eq!(plan.routes[0].actions[0].table_id, custom_id(3));
}

#[test]
fn other_target_kinds_can_be_allowed() {
    let tgw = Target::new(TargetKind::TransitGateway, "tgw-1");
    let tables = vec![main_with(vec![route(DEST, tgw.clone())]), custom(1, vec![])];
    let policy = Policy {
        allowed_kinds: [TargetKind::NetworkInterface, TargetKind::TransitGateway].into(),
        ..Policy::default()
    };
    let plan = one(&tables, DEST, &policy).unwrap();
    assert_eq!(plan.routes[0].target, Some(tgw));
    assert_eq!(plan.routes[0].actions[0].action, Action::Create);
}

#[test]
fn ipv6_and_prefix_list_destinations_are_planned_like_ipv4() {
    for d in ["2001:db8:1::/48", "pl-0123456789abcdef0"] {
        let tables = vec![main_with(vec![route(d, eni("eni-1"))]), custom(1, vec![])];
        let plan = one(&tables, d, &Policy::default()).unwrap();
        assert_eq!(plan.routes[0].destination, dest(d));
        assert_eq!(plan.routes[0].actions[0].action, Action::Create);
    }
}

/// A whole-VPC reconcile takes every eligible main route, in scope, and skips the rest
/// quietly (nobody asked about them).
#[test]
fn a_vpc_reconcile_takes_every_eligible_route_in_scope() {
    let tables = [
        main_with(vec![
            route("10.1.0.0/16", eni("eni-1")),
            route("10.2.0.0/16", eni("eni-2")),
            route("192.168.0.0/16", eni("eni-3")),
            route("pl-0123456789abcdef0", eni("eni-4")),
            route("0.0.0.0/0", igw("igw-1")),
            Route {
                state: RouteState::Blackhole,
                ..route("10.3.0.0/16", eni("eni-gone"))
            },
        ]),
        custom(1, vec![]),
    ];
    let destinations = |plan: &VpcPlan| -> Vec<String> {
        plan.routes
            .iter()
            .map(|r| r.destination.to_string())
            .collect()
    };
    let all = reconcile(&tables, &Scope::vpc(), &Policy::default()).unwrap();
    assert_eq!(
        destinations(&all),
        [
            "10.1.0.0/16",
            "10.2.0.0/16",
            "192.168.0.0/16",
            "pl-0123456789abcdef0"
        ]
    );
    let scoped = Policy {
        destinations: Some(vec![
            DestinationFilter::Within("10.0.0.0/8".parse().unwrap()),
            DestinationFilter::PrefixList("pl-0123456789abcdef0".into()),
        ]),
        ..Policy::default()
    };
    let plan = reconcile(&tables, &Scope::vpc(), &scoped).unwrap();
    assert_eq!(
        destinations(&plan),
        ["10.1.0.0/16", "10.2.0.0/16", "pl-0123456789abcdef0"]
    );
    // A new table: the same routes, that table only.
    let mut with_new = tables.to_vec();
    with_new.push(custom(2, vec![]));
    let plan = reconcile(&with_new, &Scope::table(&custom_id(2)), &Policy::default()).unwrap();
    assert_eq!(plan.writes().count(), 4);
    assert!(plan.writes().all(|(_, t)| t.table_id == custom_id(2)));
    assert_eq!(
        reconcile(&with_new, &Scope::table(MAIN), &Policy::default())
            .unwrap_err()
            .code(),
        "is-main-table"
    );
    assert_eq!(
        reconcile(
            &with_new,
            &Scope::table("rtb-99999999999999999"),
            &Policy::default()
        )
        .unwrap_err()
        .code(),
        "unknown-table"
    );
}

fn deleting() -> Policy {
    Policy {
        destinations: Some(vec![DestinationFilter::Within(
            "10.0.0.0/8".parse().unwrap(),
        )]),
        propagate_deletes: true,
        ..Policy::default()
    }
}

/// With deletes on, a route gone from the main table goes from the custom tables, only
/// where it is ours: static, a synced kind, in scope, in a table without the skip tag.
#[test]
fn deletes_touch_only_our_routes_in_scope() {
    let vgw = Target::new(TargetKind::VirtualPrivateGateway, "vgw-1");
    let cases: Vec<(&str, Route, Action)> = vec![
        (
            "static eni",
            route(DEST, eni("eni-1")),
            Action::Delete {
                before: eni("eni-1"),
            },
        ),
        (
            "internet gateway",
            route(DEST, igw("igw-1")),
            Action::Skip(SkipReason::ConflictingTarget {
                destination: dest(DEST),
                existing: igw("igw-1"),
            }),
        ),
        (
            "propagated",
            Route {
                origin: RouteOrigin::EnableVgwRoutePropagation,
                ..route(DEST, vgw.clone())
            },
            Action::Skip(SkipReason::PropagatedRouteInTable {
                destination: dest(DEST),
                existing: vgw,
            }),
        ),
        (
            "route server",
            Route {
                origin: RouteOrigin::Advertisement,
                ..route(DEST, eni("eni-rs"))
            },
            Action::Skip(SkipReason::ForeignOrigin {
                destination: dest(DEST),
                existing: eni("eni-rs"),
                origin: RouteOrigin::Advertisement,
            }),
        ),
    ];
    for (case, r, expected) in cases {
        assert_eq!(
            plan_delete(&custom(1, vec![r]), &dest(DEST), &deleting()),
            expected,
            "{case}"
        );
    }
    assert_eq!(
        plan_delete(&custom(1, vec![]), &dest(DEST), &deleting()),
        Action::Unchanged
    );

    // Whole VPC: 10.1 is gone from main (delete), 10.2 is still there (kept, even though
    // its main route is a blackhole), 172.16 is out of scope (kept).
    let tables = [
        main_with(vec![Route {
            state: RouteState::Blackhole,
            ..route("10.2.0.0/16", eni("eni-2"))
        }]),
        custom(
            1,
            vec![
                route(DEST, eni("eni-1")),
                route("10.2.0.0/16", eni("eni-2")),
                route("172.16.0.0/12", eni("eni-3")),
            ],
        ),
    ];
    let plan = reconcile(&tables, &Scope::vpc(), &deleting()).unwrap();
    let writes: Vec<_> = plan
        .writes()
        .map(|(r, t)| (r.destination.to_string(), t.action.clone()))
        .collect();
    assert_eq!(
        writes,
        [(
            DEST.to_owned(),
            Action::Delete {
                before: eni("eni-1")
            }
        )]
    );
    // Deletes off: the same tables plan no write at all.
    let plan = reconcile(&tables, &Scope::vpc(), &Policy::default()).unwrap();
    assert_eq!(plan.writes().count(), 0);
    // A single-destination request for a gone route, deletes off: refused, as before.
    assert_eq!(
        one(&tables, DEST, &Policy::default()).unwrap_err().code(),
        "route-not-in-main-table"
    );
}

/// Applies a plan the way EC2 would, for the property test.
fn apply(tables: &mut [RouteTable], plan: &VpcPlan) {
    for (route, table) in plan.writes() {
        let mode = match table.action {
            Action::Create => WriteMode::Create,
            Action::Replace { .. } => WriteMode::Replace,
            _ => WriteMode::Delete,
        };
        let write = RouteWrite {
            table_id: table.table_id.clone(),
            destination: route.destination.clone(),
            target: route.target.clone(),
            mode,
            dry_run: false,
        };
        apply_write(tables, &write).expect("a planned write is one EC2 accepts");
    }
}

const DESTINATIONS: [&str; 4] = [
    "10.1.0.0/16",
    "10.2.0.0/16",
    "pl-0123456789abcdef0",
    "172.16.0.0/12",
];

fn arb_target() -> impl Strategy<Value = Target> {
    prop_oneof![
        (0..3u8).prop_map(|n| eni(&format!("eni-{n}"))),
        Just(igw("igw-1")),
        Just(Target::new(TargetKind::VpcEndpoint, "vpce-1")),
        Just(Target::new(TargetKind::NatGateway, "nat-1")),
    ]
}

/// Any route a table might hold for a destination: ours or not, active or not.
fn arb_route(d: &'static str) -> impl Strategy<Value = Option<Route>> {
    prop_oneof![
        Just(None),
        arb_target().prop_map(move |t| Some(route(d, t))),
        arb_target().prop_map(move |t| Some(Route {
            state: RouteState::Blackhole,
            ..route(d, t)
        })),
        Just(Some(Route {
            origin: RouteOrigin::EnableVgwRoutePropagation,
            ..route(d, Target::new(TargetKind::VirtualPrivateGateway, "vgw-1"))
        })),
        Just(Some(Route {
            origin: RouteOrigin::Advertisement,
            ..route(d, eni("eni-rs"))
        })),
    ]
}

fn arb_table() -> impl Strategy<Value = ([Option<Route>; 4], u8)> {
    (
        DESTINATIONS.map(arb_route),
        // 0: a subnet's table, 1: a gateway table, 2: tagged sync-routes:skip=true
        prop_oneof![6 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8)],
    )
}

fn arb_policy() -> impl Strategy<Value = Policy> {
    (any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(scoped, deletes, more_kinds)| Policy {
        allowed_kinds: if more_kinds {
            [TargetKind::NetworkInterface, TargetKind::InternetGateway].into()
        } else {
            [TargetKind::NetworkInterface].into()
        },
        destinations: (scoped || deletes).then(|| {
            vec![
                DestinationFilter::Within("10.0.0.0/8".parse().unwrap()),
                DestinationFilter::PrefixList("pl-0123456789abcdef0".into()),
            ]
        }),
        vpc_ids: None,
        propagate_deletes: deletes,
    })
}

proptest! {
    /// Applying a plan and planning again yields nothing to do, for every scope: the sync
    /// is idempotent, so duplicate events and repeated sweeps cost reads, never writes.
    /// And it never touches what is not ours.
    #[test]
    fn applying_a_plan_then_planning_again_yields_nothing_to_do(
        main_routes in DESTINATIONS.map(arb_route),
        customs in proptest::collection::vec(arb_table(), 1..5),
        policy in arb_policy(),
        pick in 0..DESTINATIONS.len(),
    ) {
        let mut tables = vec![main_with(main_routes.into_iter().flatten().collect())];
        for (i, (routes, kind)) in customs.into_iter().enumerate() {
            let mut t = custom(i as u32, routes.into_iter().flatten().collect());
            match kind {
                1 => t.gateway_association = Some("igw-1".into()),
                2 => { t.tags.insert(SKIP_TAG.into(), "true".into()); }
                _ => {}
            }
            tables.push(t);
        }
        let before = tables.clone();
        for scope in [Scope::vpc(), Scope::destination(dest(DESTINATIONS[pick])), Scope::table(&custom_id(0))] {
            let mut tables = before.clone();
            let Ok(first) = reconcile(&tables, &scope, &policy) else { continue };
            apply(&mut tables, &first);
            let second = reconcile(&tables, &scope, &policy).expect("planned once, plans again");
            prop_assert_eq!(second.writes().count(), 0, "{:?}", second);
            for (old, new) in before.iter().zip(&tables) {
                // The main table, gateway tables and tagged tables are never written.
                if old.is_main || old.gateway_association.is_some() || old.tags.contains_key(SKIP_TAG) {
                    prop_assert_eq!(old, new);
                }
                // Routes that are not ours (another origin, or a kind not synced) stay.
                for r in &old.routes {
                    let ours = r.origin == RouteOrigin::CreateRoute && policy.allowed_kinds.contains(&r.target.kind);
                    if !ours {
                        prop_assert!(new.routes.contains(r), "{:?} lost {:?}", new.id, r);
                    }
                }
            }
            // Every route written points where the main table points.
            for (route, table) in first.writes() {
                let t = tables.iter().find(|t| t.id == table.table_id).unwrap();
                let now = t.route_for(&route.destination).map(|r| r.target.clone());
                prop_assert_eq!(now, route.target.clone());
            }
        }
    }
}
