//! Resolves template intrinsics (`Ref`, `Fn::GetAtt`, `Fn::Sub`, `Fn::Join`) against a deployed
//! CloudFormation stack, so each function gets the environment AWS would give it.

use std::collections::HashMap;

use serde_json::Value;

use crate::{Error, Result};

/// A deployed resource: its type and physical id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployed {
    pub resource_type: String,
    pub physical_id: String,
}

/// What the runner knows of a deployed stack.
#[derive(Debug, Clone, Default)]
pub struct StackContext {
    pub stack_name: String,
    pub region: String,
    pub account_id: String,
    pub parameters: HashMap<String, String>,
    pub resources: HashMap<String, Deployed>,
}

impl StackContext {
    /// Reads the stack's parameters and resources from CloudFormation.
    pub async fn load(client: &aws_sdk_cloudformation::Client, stack: &str, region: &str) -> Result<Self> {
        let err = |reason: String| Error::Stack { stack: stack.to_string(), reason };
        let described =
            client.describe_stacks().stack_name(stack).send().await.map_err(|e| err(format!("describe-stacks failed: {} (is it deployed? run localstack/provision.sh)", display_sdk(&e))))?;
        let s = described.stacks().first().ok_or_else(|| err("not found".into()))?;
        let status = s.stack_status().map(|st| st.as_str().to_string()).unwrap_or_default();
        if !status.ends_with("_COMPLETE") || status.contains("ROLLBACK") || status.starts_with("DELETE") {
            return Err(err(format!("status is {status}, not a completed deployment")));
        }
        let account_id = s.stack_id().and_then(|arn| arn.split(':').nth(4)).unwrap_or("000000000000").to_string();
        let parameters = s.parameters().iter().filter_map(|p| Some((p.parameter_key()?.to_string(), p.parameter_value()?.to_string()))).collect();
        let mut resources = HashMap::new();
        let mut pages = client.list_stack_resources().stack_name(stack).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| err(format!("list-stack-resources failed: {}", display_sdk(&e))))?;
            for r in page.stack_resource_summaries() {
                if let (Some(id), Some(ty), Some(phys)) = (r.logical_resource_id(), r.resource_type(), r.physical_resource_id()) {
                    resources.insert(id.to_string(), Deployed { resource_type: ty.into(), physical_id: phys.into() });
                }
            }
        }
        Ok(Self { stack_name: stack.into(), region: region.into(), account_id, parameters, resources })
    }

    /// Resolves a template value to a string.
    pub fn resolve(&self, v: &Value) -> Result<String> {
        match v {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            Value::Object(m) if m.len() == 1 => {
                let Some((k, arg)) = m.iter().next() else { return Err(self.err(v, "empty intrinsic")) };
                match k.as_str() {
                    "Ref" => self.reference(arg.as_str().ok_or_else(|| self.err(v, "Ref takes a name"))?),
                    "Fn::GetAtt" => {
                        let parts: Vec<&str> = match arg {
                            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                            Value::String(s) => s.splitn(2, '.').collect(),
                            _ => vec![],
                        };
                        let [res, attr] = parts[..] else { return Err(self.err(v, "GetAtt takes [Resource, Attribute]")) };
                        self.get_att(res, attr)
                    }
                    "Fn::Sub" => match arg {
                        Value::String(s) => self.sub(s, &HashMap::new()),
                        Value::Array(a) if a.len() == 2 => {
                            let text = a[0].as_str().ok_or_else(|| self.err(v, "Sub's first item must be a string"))?;
                            let mut vars = HashMap::new();
                            for (name, val) in a[1].as_object().into_iter().flatten() {
                                vars.insert(name.clone(), self.resolve(val)?);
                            }
                            self.sub(text, &vars)
                        }
                        _ => Err(self.err(v, "Sub takes a string or [string, {vars}]")),
                    },
                    "Fn::Join" => {
                        let (Some(delim), Some(items)) = (arg.get(0).and_then(Value::as_str), arg.get(1).and_then(Value::as_array)) else {
                            return Err(self.err(v, "Join takes [delimiter, [items]]"));
                        };
                        let items: Vec<String> = items.iter().map(|i| self.resolve(i)).collect::<Result<_>>()?;
                        Ok(items.join(delim))
                    }
                    other => Err(self.err(v, &format!("{other} is not supported by the local runner"))),
                }
            }
            _ => Err(self.err(v, "expected a string, a number or an intrinsic function")),
        }
    }

    fn err(&self, v: &Value, reason: &str) -> Error {
        Error::Resolve { what: v.to_string(), reason: reason.to_string() }
    }

    fn deployed(&self, name: &str) -> Result<&Deployed> {
        self.resources
            .get(name)
            .ok_or_else(|| Error::Resolve { what: name.to_string(), reason: format!("no such resource in stack {} (a parameter, a typo, or a conditional resource?)", self.stack_name) })
    }

    fn reference(&self, name: &str) -> Result<String> {
        match name {
            "AWS::Region" => return Ok(self.region.clone()),
            "AWS::AccountId" => return Ok(self.account_id.clone()),
            "AWS::StackName" => return Ok(self.stack_name.clone()),
            "AWS::Partition" => return Ok("aws".into()),
            "AWS::URLSuffix" => return Ok("amazonaws.com".into()),
            _ => {}
        }
        if let Some(p) = self.parameters.get(name) {
            return Ok(p.clone());
        }
        // For every type the runner meets, Ref is the physical id (bucket name, queue URL,
        // topic ARN, key id, alias name, secret ARN, parameter name, role name).
        Ok(self.deployed(name)?.physical_id.clone())
    }

    /// `Fn::GetAtt` for the attributes our templates use.
    pub fn get_att(&self, name: &str, attr: &str) -> Result<String> {
        let d = self.deployed(name)?;
        let (region, account, id) = (&self.region, &self.account_id, &d.physical_id);
        let last = |s: &str| s.rsplit(['/', ':']).next().unwrap_or(s).to_string();
        Ok(match (d.resource_type.as_str(), attr) {
            ("AWS::S3::Bucket", "Arn") => format!("arn:aws:s3:::{id}"),
            ("AWS::S3::Bucket", "DomainName") => format!("{id}.s3.amazonaws.com"),
            ("AWS::SQS::Queue", "Arn") => format!("arn:aws:sqs:{region}:{account}:{}", last(id)),
            ("AWS::SQS::Queue", "QueueName") => last(id),
            ("AWS::SQS::Queue", "QueueUrl") => id.clone(),
            ("AWS::SNS::Topic", "TopicArn") => id.clone(),
            ("AWS::SNS::Topic", "TopicName") => last(id),
            ("AWS::KMS::Key", "Arn") => format!("arn:aws:kms:{region}:{account}:key/{id}"),
            ("AWS::KMS::Key", "KeyId") => id.clone(),
            ("AWS::IAM::Role", "Arn") => format!("arn:aws:iam::{account}:role/{id}"),
            ("AWS::SecretsManager::Secret", "Id") => id.clone(),
            (ty, attr) => {
                return Err(Error::Resolve { what: format!("{name}.{attr}"), reason: format!("GetAtt {attr} of {ty} is not supported by the local runner") });
            }
        })
    }

    fn sub(&self, text: &str, vars: &HashMap<String, String>) -> Result<String> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after.find('}').ok_or_else(|| Error::Resolve { what: text.to_string(), reason: "unclosed ${ in Sub".into() })?;
            let name = &after[..end];
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            } else if let Some(v) = vars.get(name) {
                out.push_str(v);
            } else if let Some((res, attr)) = name.split_once('.').filter(|_| !name.starts_with("AWS::")) {
                out.push_str(&self.get_att(res, attr)?);
            } else {
                out.push_str(&self.reference(name)?);
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// The queue URL for a queue ARN (LocalStack path-style: `{endpoint}/{account}/{name}`), looked
    /// up among the stack's queues first.
    pub fn queue_url_for_arn(&self, arn: &str) -> Option<String> {
        let name = arn.rsplit(':').next()?;
        self.resources.values().find(|d| d.resource_type == "AWS::SQS::Queue" && d.physical_id.rsplit('/').next() == Some(name)).map(|d| d.physical_id.clone())
    }
}

/// Formats an SDK error with its source chain (the SDK's Display alone says only "service error").
pub fn display_sdk(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx() -> StackContext {
        let mut resources = HashMap::new();
        resources.insert("Bucket".into(), Deployed { resource_type: "AWS::S3::Bucket".into(), physical_id: "my-lake".into() });
        resources.insert("Q".into(), Deployed { resource_type: "AWS::SQS::Queue".into(), physical_id: "http://127.0.0.1:4566/000000000000/stack-Q-ABC".into() });
        StackContext { stack_name: "st".into(), region: "us-east-1".into(), account_id: "000000000000".into(), parameters: HashMap::from([("Mode".into(), "local".into())]), resources }
    }

    #[test]
    fn resolves_intrinsics() {
        let c = ctx();
        assert_eq!(c.resolve(&json!({"Ref": "Bucket"})).unwrap(), "my-lake");
        assert_eq!(c.resolve(&json!({"Ref": "Mode"})).unwrap(), "local");
        assert_eq!(c.resolve(&json!({"Fn::Sub": "s3://${Bucket}/ops/${AWS::Region}/${!x}"})).unwrap(), "s3://my-lake/ops/us-east-1/${x}");
        assert_eq!(c.resolve(&json!({"Fn::GetAtt": ["Q", "Arn"]})).unwrap(), "arn:aws:sqs:us-east-1:000000000000:stack-Q-ABC");
        assert_eq!(c.resolve(&json!({"Fn::Sub": "${Q.QueueName}"})).unwrap(), "stack-Q-ABC");
        assert_eq!(c.resolve(&json!({"Fn::Join": ["-", ["a", {"Ref": "Bucket"}]]})).unwrap(), "a-my-lake");
        assert_eq!(c.queue_url_for_arn("arn:aws:sqs:us-east-1:000000000000:stack-Q-ABC").as_deref(), Some("http://127.0.0.1:4566/000000000000/stack-Q-ABC"));
    }

    #[test]
    fn names_what_cannot_be_resolved() {
        let c = ctx();
        let e = c.resolve(&json!({"Ref": "Nope"})).unwrap_err().to_string();
        assert!(e.contains("Nope") && e.contains("st"), "{e}");
        let e = c.resolve(&json!({"Fn::GetAtt": ["Bucket", "WebsiteURL"]})).unwrap_err().to_string();
        assert!(e.contains("WebsiteURL"), "{e}");
        let e = c.resolve(&json!({"Fn::If": ["C", "a", "b"]})).unwrap_err().to_string();
        assert!(e.contains("Fn::If"), "{e}");
    }
}
