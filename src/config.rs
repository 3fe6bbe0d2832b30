//! Configuration, parsed once at start from the environment. A bad value stops the
//! function with a message that names the variable and what it accepts.

use std::collections::BTreeSet;

use ipnet::IpNet;

use crate::domain::plan::{DestinationFilter, Policy, TargetKind};
use crate::domain::sync::SyncSettings;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `SNS_TOPIC_ARN`: where change notices go; unset or empty means no notices.
    pub sns_topic_arn: Option<String>,
    /// `SYNC_TARGET_KINDS`, `SYNC_DESTINATIONS`, `SYNC_VPC_IDS`, `SYNC_PROPAGATE_DELETES`.
    pub policy: Policy,
    /// `SYNC_MAX_CONCURRENT_WRITES`.
    pub max_concurrent_writes: usize,
    /// `SYNC_QUEUE_URL`: the function's own work queue, where unfinished work goes back
    /// (the CDK app sets it); unset: an asynchronous Invoke of the function instead.
    pub queue_url: Option<String>,
    /// `SYNC_LEDGER_TABLE`: the DynamoDB table recording the routes sync-routes wrote.
    /// Required with deletes on (only owned routes are ever deleted), unused without.
    pub ledger_table: Option<String>,
    /// `SYNC_MAX_DELETES`: the most routes one request deletes (default 10).
    pub max_deletes: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}={value:?} is not valid: {accepts}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub value: String,
    pub accepts: String,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// `lookup` stands in for the environment, so tests need not mutate the process's.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let defaults = SyncSettings::default();
        let sns_topic_arn = match lookup("SNS_TOPIC_ARN").map(|v| v.trim().to_owned()) {
            None => None,
            Some(v) if v.is_empty() => None,
            Some(v) if v.starts_with("arn:") && v.split(':').count() == 6 => Some(v),
            Some(v) => return Err(ConfigError {
                variable: "SNS_TOPIC_ARN",
                value: v,
                accepts:
                    "an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME), or unset for no notices"
                        .into(),
            }),
        };
        let set = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let mut policy = Policy::default();
        if let Some(v) = set("SYNC_TARGET_KINDS") {
            policy.allowed_kinds = parse_kinds(&v)?;
        }
        if let Some(v) = set("SYNC_DESTINATIONS") {
            policy.destinations = Some(parse_destinations(&v)?);
        }
        if let Some(v) = set("SYNC_VPC_IDS") {
            policy.vpc_ids = Some(parse_vpc_ids(&v)?);
        }
        policy.propagate_deletes = match set("SYNC_PROPAGATE_DELETES").as_deref().map(str::trim) {
            None | Some("false") => false,
            Some("true") if policy.destinations.is_some() => true,
            Some(v) => {
                return Err(ConfigError {
                    variable: "SYNC_PROPAGATE_DELETES",
                    value: v.to_owned(),
                    accepts: if v == "true" {
                        "true only together with SYNC_DESTINATIONS: deletes need an explicit scope (set SYNC_DESTINATIONS to the CIDRs and prefix lists whose deletions may be copied)".into()
                    } else {
                        "true or false (default false)".into()
                    },
                })
            }
        };
        let max_concurrent_writes = match lookup("SYNC_MAX_CONCURRENT_WRITES") {
            None => defaults.max_concurrent_writes,
            Some(v) => match v.trim().parse::<usize>() {
                Ok(n @ 1..=64) => n,
                _ => {
                    return Err(ConfigError {
                        variable: "SYNC_MAX_CONCURRENT_WRITES",
                        value: v,
                        accepts: "a whole number from 1 to 64 (default 16)".into(),
                    })
                }
            },
        };
        let queue_url = match lookup("SYNC_QUEUE_URL").map(|v| v.trim().to_owned()) {
            None => None,
            Some(v) if v.is_empty() => None,
            Some(v) if (v.starts_with("https://") || v.starts_with("http://")) && v.matches('/').count() >= 4 => Some(v),
            Some(v) => {
                return Err(ConfigError {
                    variable: "SYNC_QUEUE_URL",
                    value: v,
                    accepts: "an SQS queue URL (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME), or unset to hand work on by invoking the function".into(),
                })
            }
        };
        let ledger_table = set("SYNC_LEDGER_TABLE").map(|v| v.trim().to_owned());
        if let Some(table) = &ledger_table {
            // DynamoDB's rule for table names: 3 to 255 of [a-zA-Z0-9_.-].
            let valid = (3..=255).contains(&table.len())
                && table
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
            if !valid {
                return Err(ConfigError {
                    variable: "SYNC_LEDGER_TABLE",
                    value: table.clone(),
                    accepts: "a DynamoDB table name (3 to 255 letters, digits, _ . -)".into(),
                });
            }
        }
        if policy.propagate_deletes && ledger_table.is_none() {
            return Err(ConfigError {
                variable: "SYNC_PROPAGATE_DELETES",
                value: "true".into(),
                accepts: "true only together with SYNC_LEDGER_TABLE: only routes that sync-routes wrote are deleted, and that table records them (the CDK app creates it with propagateDeletes)".into(),
            });
        }
        let max_deletes = match set("SYNC_MAX_DELETES") {
            None => defaults.max_deletes,
            Some(v) => match v.trim().parse::<u32>() {
                Ok(n @ 1..=100_000) => n,
                _ => return Err(ConfigError {
                    variable: "SYNC_MAX_DELETES",
                    value: v,
                    accepts:
                        "a whole number from 1 (default 10): the most routes one request deletes"
                            .into(),
                }),
            },
        };
        // Without deletes the ledger is never consulted: no call, no latency.
        let ledger_table = ledger_table.filter(|_| policy.propagate_deletes);
        Ok(Self {
            sns_topic_arn,
            policy,
            max_concurrent_writes,
            queue_url,
            ledger_table,
            max_deletes,
        })
    }

    pub fn sync_settings(&self) -> SyncSettings {
        SyncSettings {
            policy: self.policy.clone(),
            max_concurrent_writes: self.max_concurrent_writes,
            max_deletes: self.max_deletes,
            ..SyncSettings::default()
        }
    }
}

fn list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|n| !n.is_empty())
}

/// A list setting that names nothing (`","`) would silently sync nothing, or admit nothing:
/// refused, with what the variable accepts. Unset (or empty) means the default.
fn non_empty<T>(
    variable: &'static str,
    value: &str,
    accepts: &str,
    items: impl IntoIterator<Item = T>,
) -> Result<Vec<T>, ConfigError> {
    let items: Vec<T> = items.into_iter().collect();
    if items.is_empty() {
        return Err(ConfigError {
            variable,
            value: value.to_owned(),
            accepts: format!(
                "{accepts}; this names none (leave the variable unset for the default)"
            ),
        });
    }
    Ok(items)
}

fn parse_kinds(value: &str) -> Result<BTreeSet<TargetKind>, ConfigError> {
    non_empty(
        "SYNC_TARGET_KINDS",
        value,
        &format!(
            "a comma-separated list of: {} (default network-interface)",
            TargetKind::COPYABLE.map(|(n, _)| n).join(", ")
        ),
        list(value),
    )?;
    let mut allowed_kinds = BTreeSet::new();
    for name in list(value) {
        let kind = TargetKind::from_name(name).ok_or_else(|| ConfigError {
            variable: "SYNC_TARGET_KINDS",
            value: value.to_owned(),
            accepts: format!(
                "a comma-separated list of: {} (default network-interface){}",
                TargetKind::COPYABLE.map(|(n, _)| n).join(", "),
                if name == "gateway" {
                    "; `gateway` was split into internet-gateway, virtual-private-gateway, vpc-endpoint and odb-network, so that one never replaces another: name the ones you mean"
                } else {
                    ""
                }
            ),
        })?;
        allowed_kinds.insert(kind);
    }
    Ok(allowed_kinds)
}

fn parse_destinations(value: &str) -> Result<Vec<DestinationFilter>, ConfigError> {
    let bad = |accepts: String| ConfigError {
        variable: "SYNC_DESTINATIONS",
        value: value.to_owned(),
        accepts,
    };
    non_empty(
        "SYNC_DESTINATIONS",
        value,
        "a comma-separated list of CIDR blocks and pl- prefix list ids",
        list(value),
    )?;
    list(value)
        .map(|entry| {
            if entry.starts_with("pl-") {
                return Ok(DestinationFilter::PrefixList(entry.to_owned()));
            }
            let net: IpNet = entry.parse().map_err(|_| {
                bad(format!("a comma-separated list of CIDR blocks and pl- prefix list ids; {entry:?} is neither"))
            })?;
            if net.trunc() != net {
                return Err(bad(format!("{entry} has host bits set; did you mean {}?", net.trunc())));
            }
            Ok(DestinationFilter::Within(net))
        })
        .collect()
}

fn parse_vpc_ids(value: &str) -> Result<BTreeSet<String>, ConfigError> {
    non_empty(
        "SYNC_VPC_IDS",
        value,
        "a comma-separated list of VPC ids (vpc- and 8 or 17 hex digits)",
        list(value),
    )?;
    list(value)
        .map(|id| {
            let hex = id.strip_prefix("vpc-").unwrap_or("");
            if (8..=17).contains(&hex.len()) && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                Ok(id.to_owned())
            } else {
                Err(ConfigError {
                    variable: "SYNC_VPC_IDS",
                    value: value.to_owned(),
                    accepts: format!("a comma-separated list of VPC ids (vpc- and 8 or 17 hex digits); {id:?} is not one"),
                })
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_lookup(|name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn defaults_copy_eni_routes_without_notices() {
        let c = config(&[]).unwrap();
        assert_eq!(c.sns_topic_arn, None);
        assert_eq!(c.policy, Policy::default());
        assert_eq!(c.max_concurrent_writes, 16);
    }

    #[test]
    fn reads_every_setting() {
        let c = config(&[
            ("SNS_TOPIC_ARN", "arn:aws:sns:us-east-1:123456789012:alerts"),
            ("SYNC_TARGET_KINDS", "network-interface, transit-gateway"),
            ("SYNC_MAX_CONCURRENT_WRITES", "4"),
        ])
        .unwrap();
        assert_eq!(
            c.sns_topic_arn.as_deref(),
            Some("arn:aws:sns:us-east-1:123456789012:alerts")
        );
        assert_eq!(
            c.policy.allowed_kinds,
            BTreeSet::from([TargetKind::NetworkInterface, TargetKind::TransitGateway])
        );
        assert_eq!(c.max_concurrent_writes, 4);
    }

    #[test]
    fn bad_values_name_the_variable_and_what_it_accepts() {
        let e = config(&[("SYNC_TARGET_KINDS", "eni")]).unwrap_err();
        assert_eq!(e.variable, "SYNC_TARGET_KINDS");
        assert!(
            e.to_string().contains("network-interface, transit-gateway"),
            "{e}"
        );
        let e = config(&[("SNS_TOPIC_ARN", "alerts")]).unwrap_err();
        assert_eq!(e.variable, "SNS_TOPIC_ARN");
        let e = config(&[("SYNC_MAX_CONCURRENT_WRITES", "0")]).unwrap_err();
        assert_eq!(e.variable, "SYNC_MAX_CONCURRENT_WRITES");
        let e = config(&[("SYNC_TARGET_KINDS", "gateway")]).unwrap_err();
        assert!(
            e.to_string().contains("was split into internet-gateway"),
            "{e}"
        );
        let e = config(&[("SYNC_DESTINATIONS", "10.1.0.1/16")]).unwrap_err();
        assert!(e.to_string().contains("did you mean 10.1.0.0/16"), "{e}");
        let e = config(&[("SYNC_VPC_IDS", "vpc-1, subnet-12345678")]).unwrap_err();
        assert_eq!(e.variable, "SYNC_VPC_IDS");
        let e = config(&[("SYNC_QUEUE_URL", "sync-routes-work")]).unwrap_err();
        assert_eq!(e.variable, "SYNC_QUEUE_URL");
        let url = "https://sqs.us-east-1.amazonaws.com/123456789012/SyncRoutesWork";
        assert_eq!(
            config(&[("SYNC_QUEUE_URL", url)])
                .unwrap()
                .queue_url
                .as_deref(),
            Some(url)
        );
    }

    #[test]
    fn reads_the_scope() {
        let c = config(&[
            ("SYNC_DESTINATIONS", "10.0.0.0/8, pl-0123456789abcdef0"),
            ("SYNC_VPC_IDS", "vpc-0123456789abcdef0,vpc-11111111"),
            ("SYNC_PROPAGATE_DELETES", "true"),
            ("SYNC_LEDGER_TABLE", "SyncRoutes-Ledger_1.a"),
            ("SYNC_MAX_DELETES", "25"),
        ])
        .unwrap();
        assert_eq!(c.ledger_table.as_deref(), Some("SyncRoutes-Ledger_1.a"));
        assert_eq!(c.max_deletes, 25);
        assert_eq!(c.sync_settings().max_deletes, 25);
        assert_eq!(
            c.policy.destinations,
            Some(vec![
                DestinationFilter::Within("10.0.0.0/8".parse().unwrap()),
                DestinationFilter::PrefixList("pl-0123456789abcdef0".into()),
            ])
        );
        assert_eq!(
            c.policy.vpc_ids,
            Some(BTreeSet::from([
                "vpc-0123456789abcdef0".to_owned(),
                "vpc-11111111".to_owned()
            ]))
        );
        assert!(c.policy.propagate_deletes);
    }

    /// A list that names nothing would sync nothing (or admit nothing): refused at start.
    #[test]
    fn list_settings_that_name_nothing_are_refused() {
        for variable in ["SYNC_TARGET_KINDS", "SYNC_DESTINATIONS", "SYNC_VPC_IDS"] {
            for value in [",", " , ,", ";"] {
                if value == ";" && variable != "SYNC_TARGET_KINDS" {
                    continue;
                }
                let e = config(&[(variable, value)]).unwrap_err();
                assert_eq!(e.variable, variable, "{value:?}");
                assert!(e.to_string().contains("comma-separated list"), "{e}");
            }
        }
        let e = config(&[("SYNC_TARGET_KINDS", ",")]).unwrap_err();
        assert!(e.to_string().contains("names none"), "{e}");
        assert!(e.to_string().contains("network-interface"), "{e}");
        // Unset or empty: the default.
        assert_eq!(
            config(&[("SYNC_TARGET_KINDS", "")]).unwrap().policy,
            Policy::default()
        );
    }

    /// Deletes need an explicit scope: the function refuses to start without one.
    #[test]
    fn deletes_without_destinations_are_refused() {
        let e = config(&[("SYNC_PROPAGATE_DELETES", "true")]).unwrap_err();
        assert_eq!(e.variable, "SYNC_PROPAGATE_DELETES");
        assert!(e.to_string().contains("SYNC_DESTINATIONS"), "{e}");
        let e = config(&[
            ("SYNC_PROPAGATE_DELETES", "yes"),
            ("SYNC_DESTINATIONS", "10.0.0.0/8"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("true or false"), "{e}");
        assert!(!config(&[]).unwrap().policy.propagate_deletes);
    }

    /// Only owned routes are deleted, so deletes need the ledger that records ownership;
    /// without deletes it is never used (no call, no latency), whatever the variable says.
    #[test]
    fn deletes_need_the_ledger_and_a_valid_budget() {
        let scope = ("SYNC_DESTINATIONS", "10.0.0.0/8");
        let e = config(&[("SYNC_PROPAGATE_DELETES", "true"), scope]).unwrap_err();
        assert_eq!(e.variable, "SYNC_PROPAGATE_DELETES");
        assert!(e.to_string().contains("SYNC_LEDGER_TABLE"), "{e}");
        let e = config(&[("SYNC_LEDGER_TABLE", "a b")]).unwrap_err();
        assert_eq!(e.variable, "SYNC_LEDGER_TABLE");
        let c = config(&[("SYNC_LEDGER_TABLE", "Ledger")]).unwrap();
        assert_eq!(c.ledger_table, None);
        assert_eq!(c.max_deletes, 10);
        for bad in ["0", "-1", "ten", "1.5"] {
            let e = config(&[("SYNC_MAX_DELETES", bad)]).unwrap_err();
            assert_eq!(e.variable, "SYNC_MAX_DELETES", "{bad}");
        }
    }
}
