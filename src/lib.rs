//! sync-routes: copies routes written to a VPC's main route table into its custom route
//! tables. Three layers:
//! - `domain`: pure decisions and the sync engine, behind small ports (no AWS types);
//! - `adapters`: EC2, SNS and the event formats, translating to and from the domain;
//! - `handler` and `main.rs`: the thin entry points (Lambda runtime, `invoke FILE`).

pub mod adapters {
    pub mod dynamodb;
    pub mod ec2;
    pub mod emf;
    pub mod lambda;
    pub mod memory;
    pub mod pacer;
    pub mod retry;
    pub mod sns;
    pub mod sqs;
    pub mod trigger;
}
pub mod domain {
    pub mod hand_off;
    pub mod notice;
    pub mod outcome;
    pub mod ownership;
    pub mod plan;
    pub mod ports;
    pub mod report;
    pub mod request;
    pub mod sync;
    pub mod write;
}
pub mod config;
pub mod fleet;
pub mod handler;
pub mod runtime;
pub mod summary;
pub mod watch;
