//! SNS: sends a change notice. Uses the SDK's standard retries (a few attempts): a notice
//! is worth a short wait, never the route work.

use aws_sdk_sns::types::MessageAttributeValue;
use aws_sdk_sns::Client;

use crate::domain::notice::Notice;
use crate::domain::sync::Notifier;

/// Cheap to clone (the client is a handle): an organization's hub shares one among its
/// engines.
#[derive(Clone)]
pub struct SnsNotifier {
    client: Client,
    topic_arn: String,
}

impl SnsNotifier {
    pub fn new(client: Client, topic_arn: String) -> Self {
        Self { client, topic_arn }
    }
}

impl Notifier for SnsNotifier {
    async fn publish(&self, notice: &Notice) -> Result<(), String> {
        let mut request = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(&notice.subject)
            .message(&notice.body);
        for (name, value) in &notice.attributes {
            let attribute = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(|e| e.to_string())?;
            request = request.message_attributes(*name, attribute);
        }
        request
            .send()
            .await
            .map(drop)
            .map_err(|e| aws_sdk_sns::error::DisplayErrorContext(&e).to_string())
    }
}
