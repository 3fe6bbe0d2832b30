//! SQS: the function's own work queue, where what an invocation could not finish goes back
//! as one message (`SYNC_QUEUE_URL`, set by the CDK app). The event source mapping delivers
//! it like any other event, within the mapping's maximum concurrency, so a failover bigger
//! than one invocation goes on at the bucket's pace, and a fresh event that EC2's reads do
//! not show yet is tried again after a delay rather than at once.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use aws_sdk_sqs::Client;

use crate::adapters::trigger::hand_off_payload;
use crate::domain::ports::HandOff;
use crate::domain::request::SyncRequest;

/// SQS delays a message by at most 15 minutes.
const MAX_DELAY: Duration = Duration::from_secs(900);

pub struct SqsContinuation {
    client: Client,
    queue_url: String,
}

impl SqsContinuation {
    pub fn new(client: Client, queue_url: String) -> Self {
        Self { client, queue_url }
    }

    async fn send(&self, body: String, delay: Duration) -> Result<(), String> {
        let delay = delay.min(MAX_DELAY).as_secs() as i32;
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .delay_seconds(delay)
            .send()
            .await
            .map(drop)
            .map_err(|e| aws_sdk_sqs::error::DisplayErrorContext(&e).to_string())
    }
}

impl HandOff for SqsContinuation {
    fn hand_off<'a>(
        &'a self,
        request: &'a SyncRequest,
        delay: Duration,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            let payload = hand_off_payload(request)
                .ok_or_else(|| format!("{:?} cannot be handed on", request.subject))?;
            self.send(payload, delay).await
        })
    }

    fn resend<'a>(
        &'a self,
        payload: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(self.send(payload.to_owned(), Duration::ZERO))
    }

    fn send_after<'a>(
        &'a self,
        payload: &'a str,
        delay: Duration,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(self.send(payload.to_owned(), delay))
    }
}
