//! Configuration, parsed once at start from the environment. A bad value stops the
//! function with a message that names the variable and what it accepts.

use std::collections::BTreeSet;

use crate::domain::plan::{Policy, TargetKind};
use crate::domain::sync::SyncSettings;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `SNS_TOPIC_ARN`: where change notices go; unset or empty means no notices.
    pub sns_topic_arn: Option<String>,
    /// `SYNC_TARGET_KINDS` and `SYNC_MAX_CONCURRENT_WRITES`.
    pub policy: Policy,
    pub max_concurrent_writes: usize,
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
        let policy = match lookup("SYNC_TARGET_KINDS") {
            None => Policy::default(),
            Some(v) if v.trim().is_empty() => Policy::default(),
            Some(v) => parse_kinds(&v)?,
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
        Ok(Self {
            sns_topic_arn,
            policy,
            max_concurrent_writes,
        })
    }

    pub fn sync_settings(&self) -> SyncSettings {
        SyncSettings {
            policy: self.policy.clone(),
            max_concurrent_writes: self.max_concurrent_writes,
        }
    }
}

fn parse_kinds(value: &str) -> Result<Policy, ConfigError> {
    let mut allowed_kinds = BTreeSet::new();
    for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let kind = TargetKind::from_name(name).ok_or_else(|| ConfigError {
            variable: "SYNC_TARGET_KINDS",
            value: value.to_owned(),
            accepts: format!(
                "a comma-separated list of: {} (default network-interface)",
                TargetKind::COPYABLE.map(|(n, _)| n).join(", ")
            ),
        })?;
        allowed_kinds.insert(kind);
    }
    Ok(Policy { allowed_kinds })
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
    }
}
