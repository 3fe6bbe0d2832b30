//! The planner, table-driven: every refusal and every per-table outcome, plus the property
//! that applying a plan and planning again leaves nothing to do.

use ipnet::IpNet;
use proptest::prelude::*;
use sync_routes::domain::plan::{
    plan, plan_table, Action, Destination, Policy, Refusal, Route, RouteOrigin, RouteState,
    RouteTable, SkipReason, Target, TargetKind,
};

const VPC: &str = "vpc-0000000000000000a";
const MAIN: &str = "rtb-00000000000000001";

fn cidr(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn eni(id: &str) -> Target {
    Target::new(TargetKind::NetworkInterface, id)
}

fn route(dest: &str, target: Target) -> Route {
    Route {
        destination: Destination::Cidr(cidr(dest)),
        target,
        state: RouteState::Active,
        origin: RouteOrigin::CreateRoute,
    }
}

fn local() -> Route {
    Route {
        destination: Destination::Cidr(cidr("10.0.0.0/16")),
        target: Target::new(TargetKind::Local, "local"),
        state: RouteState::Active,
        origin: RouteOrigin::CreateRouteTable,
    }
}

fn table(id: &str, is_main: bool, routes: Vec<Route>) -> RouteTable {
    let mut all = vec![local()];
    all.extend(routes);
    RouteTable {
        id: id.into(),
        vpc_id: VPC.into(),
        is_main,
        routes: all,
    }
}

fn main_with(r: Route) -> RouteTable {
    table(MAIN, true, vec![r])
}

fn custom(n: u32, routes: Vec<Route>) -> RouteTable {
    table(&format!("rtb-1000000000000000{n}"), false, routes)
}

#[test]
fn refusals_name_the_reason() {
    let dest = "10.1.0.0/16";
    let with = |mutate: fn(&mut Route)| {
        let mut r = route(dest, eni("eni-1"));
        mutate(&mut r);
        vec![main_with(r), custom(1, vec![])]
    };
    let cases: Vec<(&str, Vec<RouteTable>, &str, &str, &str)> = vec![
        // (case, tables, table asked about, destination, expected code)
        (
            "unknown table",
            with(|_| {}),
            "rtb-99999999999999999",
            dest,
            "unknown-table",
        ),
        (
            "custom table",
            with(|_| {}),
            "rtb-10000000000000001",
            dest,
            "not-main-table",
        ),
        (
            "no such route",
            with(|_| {}),
            MAIN,
            "10.2.0.0/16",
            "route-not-in-main-table",
        ),
        (
            "local route",
            with(|_| {}),
            MAIN,
            "10.0.0.0/16",
            "local-route",
        ),
        (
            "propagated",
            with(|r| r.origin = RouteOrigin::EnableVgwRoutePropagation),
            MAIN,
            dest,
            "propagated-route",
        ),
        (
            "other origin",
            with(|r| r.origin = RouteOrigin::Other("CreateVpcEndpoint".into())),
            MAIN,
            dest,
            "not-created-by-create-route",
        ),
        (
            "blackhole",
            with(|r| r.state = RouteState::Blackhole),
            MAIN,
            dest,
            "route-not-active",
        ),
        (
            "internet gateway",
            with(|r| r.target = Target::new(TargetKind::Gateway, "igw-1")),
            MAIN,
            dest,
            "target-kind-not-allowed",
        ),
        (
            "transit gateway",
            with(|r| r.target = Target::new(TargetKind::TransitGateway, "tgw-1")),
            MAIN,
            dest,
            "target-kind-not-allowed",
        ),
        (
            "no custom tables",
            vec![main_with(route(dest, eni("eni-1")))],
            MAIN,
            dest,
            "no-custom-tables",
        ),
    ];
    for (case, tables, table_id, destination, code) in cases {
        let refusal =
            plan(&tables, table_id, cidr(destination), &Policy::default()).expect_err(case);
        assert_eq!(refusal.code(), code, "{case}: {refusal}");
        assert!(!refusal.to_string().is_empty());
    }
}

#[test]
fn refusal_messages_are_specific() {
    let tables = vec![
        main_with(route("10.1.0.0/16", eni("eni-1"))),
        custom(1, vec![]),
    ];
    let refusal = plan(
        &tables,
        "rtb-10000000000000001",
        cidr("10.1.0.0/16"),
        &Policy::default(),
    )
    .unwrap_err();
    assert_eq!(
        refusal.to_string(),
        "rtb-10000000000000001 is not the main route table of vpc-0000000000000000a \
         (the main table is rtb-00000000000000001); only routes of the main table are synced"
    );
    let mut r = route("10.1.0.0/16", Target::new(TargetKind::Gateway, "igw-1"));
    r.state = RouteState::Active;
    let refusal = plan(
        &[main_with(r), custom(1, vec![])],
        MAIN,
        cidr("10.1.0.0/16"),
        &Policy::default(),
    )
    .unwrap_err();
    assert_eq!(
        refusal,
        Refusal::TargetKindNotAllowed {
            destination: cidr("10.1.0.0/16"),
            target: "igw-1".into(),
            kind: TargetKind::Gateway,
            allowed: "network-interface".into(),
        }
    );
}

#[test]
fn every_per_table_outcome() {
    let dest = "10.1.0.0/16";
    let propagated = Route {
        origin: RouteOrigin::EnableVgwRoutePropagation,
        ..route(dest, Target::new(TargetKind::Gateway, "vgw-1"))
    };
    let stale_blackhole = Route {
        state: RouteState::Blackhole,
        ..route(dest, eni("eni-old"))
    };
    let cases: Vec<(&str, Vec<Route>, Action)> = vec![
        ("missing", vec![], Action::Create),
        (
            "other routes only",
            vec![route("10.9.0.0/16", eni("eni-9"))],
            Action::Create,
        ),
        (
            "same target",
            vec![route(dest, eni("eni-new"))],
            Action::Unchanged,
        ),
        (
            "older eni",
            vec![route(dest, eni("eni-old"))],
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
            vec![route(dest, Target::new(TargetKind::Gateway, "igw-1"))],
            Action::Skip(SkipReason::ConflictingTarget {
                destination: cidr(dest),
                existing: Target::new(TargetKind::Gateway, "igw-1"),
            }),
        ),
        (
            "nat gateway",
            vec![route(dest, Target::new(TargetKind::NatGateway, "nat-1"))],
            Action::Skip(SkipReason::ConflictingTarget {
                destination: cidr(dest),
                existing: Target::new(TargetKind::NatGateway, "nat-1"),
            }),
        ),
        (
            "propagated only",
            vec![propagated.clone()],
            Action::Skip(SkipReason::PropagatedRouteInTable {
                destination: cidr(dest),
                existing: Target::new(TargetKind::Gateway, "vgw-1"),
            }),
        ),
        // A static route next to a propagated one is ours to keep in step.
        (
            "propagated and static",
            vec![propagated, route(dest, eni("eni-old"))],
            Action::Replace {
                before: eni("eni-old"),
            },
        ),
    ];
    for (case, routes, expected) in cases {
        let action = plan_table(&custom(1, routes), cidr(dest), &eni("eni-new"));
        assert_eq!(action, expected, "{case}");
    }
}

#[test]
fn a_plan_covers_every_custom_table_in_id_order() {
    let dest = "10.1.0.0/16";
    let tables = vec![
        custom(3, vec![route(dest, eni("eni-old"))]),
        main_with(route(dest, eni("eni-new"))),
        custom(1, vec![]),
        custom(2, vec![route(dest, eni("eni-new"))]),
        custom(
            4,
            vec![route(dest, Target::new(TargetKind::Gateway, "igw-1"))],
        ),
    ];
    let plan = plan(&tables, MAIN, cidr(dest), &Policy::default()).unwrap();
    assert_eq!(plan.vpc_id, VPC);
    assert_eq!(plan.main_table_id, MAIN);
    assert_eq!(plan.target, eni("eni-new"));
    let actions: Vec<_> = plan
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
fn other_target_kinds_can_be_allowed() {
    let dest = "10.1.0.0/16";
    let tgw = Target::new(TargetKind::TransitGateway, "tgw-1");
    let tables = vec![main_with(route(dest, tgw.clone())), custom(1, vec![])];
    let policy = Policy {
        allowed_kinds: [TargetKind::NetworkInterface, TargetKind::TransitGateway].into(),
    };
    let plan = plan(&tables, MAIN, cidr(dest), &policy).unwrap();
    assert_eq!(plan.target, tgw);
    assert_eq!(plan.actions[0].action, Action::Create);
}

#[test]
fn ipv6_destinations_are_planned_like_ipv4() {
    let dest = "2001:db8:1::/48";
    let tables = vec![main_with(route(dest, eni("eni-1"))), custom(1, vec![])];
    let plan = plan(&tables, MAIN, cidr(dest), &Policy::default()).unwrap();
    assert_eq!(plan.actions[0].action, Action::Create);
}

/// Applies a plan the way EC2 would, for the property test.
fn apply(tables: &mut [RouteTable], plan: &sync_routes::domain::plan::Plan) {
    for step in plan.writes() {
        let t = tables.iter_mut().find(|t| t.id == step.table_id).unwrap();
        t.routes.retain(|r| {
            !(r.destination == Destination::Cidr(plan.destination)
                && r.origin == RouteOrigin::CreateRoute)
        });
        t.routes
            .push(route(&plan.destination.to_string(), plan.target.clone()));
    }
}

fn arb_target() -> impl Strategy<Value = Target> {
    prop_oneof![
        (0..3u8).prop_map(|n| eni(&format!("eni-{n}"))),
        Just(Target::new(TargetKind::Gateway, "igw-1")),
        Just(Target::new(TargetKind::NatGateway, "nat-1")),
    ]
}

fn arb_custom_route(dest: &'static str) -> impl Strategy<Value = Option<Route>> {
    prop_oneof![
        Just(None),
        arb_target().prop_map(move |t| Some(route(dest, t))),
        arb_target().prop_map(move |t| Some(Route {
            state: RouteState::Blackhole,
            ..route(dest, t)
        })),
        Just(Some(Route {
            origin: RouteOrigin::EnableVgwRoutePropagation,
            ..route(dest, Target::new(TargetKind::Gateway, "vgw-1"))
        })),
    ]
}

proptest! {
    /// Applying a plan and planning again yields nothing to do: the sync is idempotent, so
    /// duplicate events cost reads and never writes.
    #[test]
    fn applying_a_plan_then_planning_again_yields_nothing_to_do(
        main_target in (0..3u8).prop_map(|n| eni(&format!("eni-{n}"))),
        customs in proptest::collection::vec(arb_custom_route("10.1.0.0/16"), 1..6),
    ) {
        let dest = cidr("10.1.0.0/16");
        let mut tables = vec![main_with(route("10.1.0.0/16", main_target.clone()))];
        for (i, r) in customs.into_iter().enumerate() {
            tables.push(custom(i as u32, r.into_iter().collect()));
        }
        let first = plan(&tables, MAIN, dest, &Policy::default()).unwrap();
        apply(&mut tables, &first);
        let second = plan(&tables, MAIN, dest, &Policy::default()).unwrap();
        prop_assert_eq!(second.writes().count(), 0);
        // Skipped tables are skipped for the same reason both times, and never touched.
        for (a, b) in first.actions.iter().zip(&second.actions) {
            if let Action::Skip(_) = a.action {
                prop_assert_eq!(&a.action, &b.action);
            }
        }
        // Every table we wrote now routes the destination to the main table's target.
        for step in first.writes() {
            let t = tables.iter().find(|t| t.id == step.table_id).unwrap();
            prop_assert!(t.routes.iter().any(|r| r.destination == Destination::Cidr(dest) && r.target == main_target));
        }
    }
}
