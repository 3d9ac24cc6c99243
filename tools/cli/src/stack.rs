//! Settings of a deployed stack: the environment first, then the stack's outputs.

use std::collections::HashMap;

use alkasba_ingest::settings::Settings;
use anyhow::{Context, Result};

pub async fn stack_outputs(sdk: &aws_config::SdkConfig, stack: &str) -> Result<HashMap<String, String>> {
    let cfn = aws_sdk_cloudformation::Client::new(sdk);
    let out = cfn.describe_stacks().stack_name(stack).send().await.with_context(|| format!("describing stack {stack}"))?;
    let s = out.stacks().first().with_context(|| format!("stack {stack} not found"))?;
    Ok(s.outputs().iter().filter_map(|o| Some((o.output_key()?.to_string(), o.output_value()?.to_string()))).collect())
}

/// Settings from the environment, then the stack's outputs.
pub async fn settings(sdk: &aws_config::SdkConfig, stack: Option<&str>) -> Result<Settings> {
    let outputs = match stack {
        Some(s) => stack_outputs(sdk, s).await?,
        None => HashMap::new(),
    };
    let from_stack = |k: &str| -> Option<String> {
        let key = match k {
            "LAKE_ROOT" => "LakeRoot",
            "FETCH_QUEUE_URL" => "FetchTasksQueueUrl",
            "FETCH_DLQ_URL" => "FetchTasksDlqUrl",
            "PII_KEY_ID" => "PiiKeyArn",
            "STACK_NAME" => return stack.map(str::to_string),
            _ => return None,
        };
        outputs.get(key).cloned()
    };
    Ok(Settings::from_lookup(|k| std::env::var(k).ok().filter(|v| !v.is_empty()).or_else(|| from_stack(k)))?)
}
