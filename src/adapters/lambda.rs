//! Lambda: hands a reconcile that met its deadline on to a new asynchronous invocation of
//! this same function. The event waits in Lambda's queue like any other (within the
//! function's reserved concurrency), so a failover bigger than one invocation goes on at the
//! bucket's pace instead of timing out and filling the failure queue.

use std::future::Future;
use std::pin::Pin;

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use aws_sdk_lambda::Client;

use crate::adapters::trigger::hand_off_payload;
use crate::domain::request::SyncRequest;
use crate::domain::sync::HandOff;

pub struct LambdaHandOff {
    client: Client,
    /// `AWS_LAMBDA_FUNCTION_NAME`, which Lambda sets for every function.
    function_name: String,
}

impl LambdaHandOff {
    pub fn new(client: Client, function_name: String) -> Self {
        Self {
            client,
            function_name,
        }
    }
}

impl HandOff for LambdaHandOff {
    fn hand_off<'a>(
        &'a self,
        request: &'a SyncRequest,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            let payload = hand_off_payload(request)
                .ok_or_else(|| format!("{:?} cannot be handed on", request.subject))?;
            self.client
                .invoke()
                .function_name(&self.function_name)
                .invocation_type(InvocationType::Event)
                .payload(Blob::new(payload))
                .send()
                .await
                .map(drop)
                .map_err(|e| aws_sdk_lambda::error::DisplayErrorContext(&e).to_string())
        })
    }
}
