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
    /// An organization's hub (`SYNC_MEMBER_ROLE_NAME` set): how it works in member accounts.
    pub members: Option<Members>,
}

/// The hub's access to the organization's member accounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Members {
    /// `SYNC_ACCOUNT_ID`: the hub's own account (the CDK app sets it); requests from any
    /// other account are worked in that account, through its member role.
    pub home_account: String,
    /// `SYNC_MEMBER_ROLE_NAME`: the role assumed in a member account.
    pub role_name: String,
    /// `SYNC_MEMBER_EXTERNAL_ID`: the external id the member role's trust requires.
    pub external_id: Option<String>,
    /// `SYNC_MEMBER_ACCOUNTS`: the accounts the sweep covers; when set, the only ones the
    /// hub works in. Unset: any account whose events reach the hub (its bus admits only the
    /// organization's).
    pub accounts: Option<Vec<String>>,
    /// `SYNC_MEMBER_REGIONS`: the regions of each member account the sweep covers (default
    /// the hub's own region).
    pub regions: Vec<String>,
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

    /// The configuration these variables give, for unit tests.
    #[cfg(test)]
    pub(crate) fn from_pairs(vars: &[(&str, &str)]) -> Result<Self, ConfigError> {
        Self::from_lookup(|name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        })
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
        let members = parse_members(&set)?;
        // Without deletes the ledger is never consulted: no call, no latency.
        let ledger_table = ledger_table.filter(|_| policy.propagate_deletes);
        Ok(Self {
            sns_topic_arn,
            policy,
            max_concurrent_writes,
            queue_url,
            ledger_table,
            max_deletes,
            members,
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

fn parse_members(set: &impl Fn(&str) -> Option<String>) -> Result<Option<Members>, ConfigError> {
    let Some(role_name) = set("SYNC_MEMBER_ROLE_NAME").map(|v| v.trim().to_owned()) else {
        for variable in [
            "SYNC_MEMBER_EXTERNAL_ID",
            "SYNC_MEMBER_ACCOUNTS",
            "SYNC_MEMBER_REGIONS",
        ] {
            if let Some(value) = set(variable) {
                return Err(ConfigError {
                    variable,
                    value,
                    accepts:
                        "a value only together with SYNC_MEMBER_ROLE_NAME (an organization's hub)"
                            .into(),
                });
            }
        }
        return Ok(None);
    };
    // IAM's rule for role names: 1 to 64 of [\w+=,.@-].
    if role_name.len() > 64
        || !role_name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c))
    {
        return Err(ConfigError {
            variable: "SYNC_MEMBER_ROLE_NAME",
            value: role_name,
            accepts: "an IAM role name (up to 64 letters, digits and _+=,.@-), such as sync-routes-member".into(),
        });
    }
    let account = |variable: &'static str, value: &str| -> Result<String, ConfigError> {
        if value.len() == 12 && value.chars().all(|c| c.is_ascii_digit()) {
            Ok(value.to_owned())
        } else {
            Err(ConfigError {
                variable,
                value: value.to_owned(),
                accepts: "12-digit AWS account ids".into(),
            })
        }
    };
    let home_account = match set("SYNC_ACCOUNT_ID") {
        Some(v) => account("SYNC_ACCOUNT_ID", v.trim())?,
        None => {
            return Err(ConfigError {
                variable: "SYNC_ACCOUNT_ID",
                value: String::new(),
                accepts: "the hub's own 12-digit account id, required with SYNC_MEMBER_ROLE_NAME (the CDK app sets it)".into(),
            })
        }
    };
    let accounts = match set("SYNC_MEMBER_ACCOUNTS") {
        None => None,
        Some(v) => Some(non_empty(
            "SYNC_MEMBER_ACCOUNTS",
            &v,
            "a comma-separated list of 12-digit account ids",
            list(&v)
                .map(|a| account("SYNC_MEMBER_ACCOUNTS", a))
                .collect::<Result<Vec<_>, _>>()?,
        )?),
    };
    let regions = match set("SYNC_MEMBER_REGIONS") {
        None => Vec::new(),
        Some(v) => {
            let regions = list(&v)
                .map(|r| {
                    if is_region(r) {
                        Ok(r.to_owned())
                    } else {
                        Err(ConfigError {
                            variable: "SYNC_MEMBER_REGIONS",
                            value: r.to_owned(),
                            accepts: "region names such as eu-west-1".into(),
                        })
                    }
                })
                .collect::<Result<Vec<_>, _>>()?;
            non_empty(
                "SYNC_MEMBER_REGIONS",
                &v,
                "a comma-separated list of region names",
                regions,
            )?
        }
    };
    Ok(Some(Members {
        home_account,
        role_name,
        external_id: set("SYNC_MEMBER_EXTERNAL_ID").map(|v| v.trim().to_owned()),
        accounts,
        regions,
    }))
}

/// A region name: `us-east-1`, `eu-central-2`, `us-gov-west-1`, `cn-north-1`.
pub fn is_region(name: &str) -> bool {
    let parts: Vec<&str> = name.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
        && parts[parts.len() - 1].chars().all(|c| c.is_ascii_digit())
        && !parts[parts.len() - 1].is_empty()
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
        Config::from_pairs(vars)
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

    /// An organization's hub: the member settings need the role name, and are checked.
    #[test]
    fn reads_the_member_settings_of_a_hub() {
        let c = config(&[
            ("SYNC_MEMBER_ROLE_NAME", "sync-routes-member"),
            ("SYNC_ACCOUNT_ID", "111111111111"),
            ("SYNC_MEMBER_EXTERNAL_ID", "s3cr3t-but-not-secret"),
            ("SYNC_MEMBER_ACCOUNTS", "222222222222, 333333333333"),
            ("SYNC_MEMBER_REGIONS", "eu-west-1,us-gov-west-1"),
        ])
        .unwrap();
        assert_eq!(
            c.members,
            Some(Members {
                home_account: "111111111111".into(),
                role_name: "sync-routes-member".into(),
                external_id: Some("s3cr3t-but-not-secret".into()),
                accounts: Some(vec!["222222222222".into(), "333333333333".into()]),
                regions: vec!["eu-west-1".into(), "us-gov-west-1".into()],
            })
        );
        assert_eq!(config(&[]).unwrap().members, None);
        let role = ("SYNC_MEMBER_ROLE_NAME", "sync-routes-member");
        let home = ("SYNC_ACCOUNT_ID", "111111111111");
        for (env, variable) in [
            (
                vec![("SYNC_MEMBER_ACCOUNTS", "222222222222")],
                "SYNC_MEMBER_ACCOUNTS",
            ),
            (vec![role], "SYNC_ACCOUNT_ID"),
            (vec![role, ("SYNC_ACCOUNT_ID", "1111")], "SYNC_ACCOUNT_ID"),
            (
                vec![role, home, ("SYNC_MEMBER_ACCOUNTS", "22222222222x")],
                "SYNC_MEMBER_ACCOUNTS",
            ),
            (
                vec![role, home, ("SYNC_MEMBER_ACCOUNTS", ",")],
                "SYNC_MEMBER_ACCOUNTS",
            ),
            (
                vec![role, home, ("SYNC_MEMBER_REGIONS", "eu-west")],
                "SYNC_MEMBER_REGIONS",
            ),
            (
                vec![("SYNC_MEMBER_ROLE_NAME", "a role"), home],
                "SYNC_MEMBER_ROLE_NAME",
            ),
        ] {
            let e = config(&env).unwrap_err();
            assert_eq!(e.variable, variable, "{env:?}: {e}");
        }
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
