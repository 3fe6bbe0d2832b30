//! Lambda: hands a request that met its deadline on to a new asynchronous invocation of this
//! same function, for a deployment without a work queue (`SYNC_QUEUE_URL` unset; the CDK app
//! always has one, see `adapters::sqs`).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

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

impl LambdaHandOff {
    async fn invoke(&self, payload: String) -> Result<(), String> {
        self.client
            .invoke()
            .function_name(&self.function_name)
            .invocation_type(InvocationType::Event)
            .payload(Blob::new(payload))
            .send()
            .await
            .map(drop)
            .map_err(|e| aws_sdk_lambda::error::DisplayErrorContext(&e).to_string())
    }
}

impl HandOff for LambdaHandOff {
    /// An asynchronous Invoke cannot wait: `delay` is not kept (the next invocation backs
    /// off by itself).
    fn hand_off<'a>(
        &'a self,
        request: &'a SyncRequest,
        _delay: Duration,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            let payload = hand_off_payload(request)
                .ok_or_else(|| format!("{:?} cannot be handed on", request.subject))?;
            self.invoke(payload).await
        })
    }

    fn resend<'a>(
        &'a self,
        payload: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(self.invoke(payload.to_owned()))
    }
}
